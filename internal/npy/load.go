package npy

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
)

// Array is a numeric array loaded whole, its values widened to float64.
type Array struct {
	Shape []int
	Data  []float64
}

// maxLoad bounds what LoadNPZ reads: it is for weights and reference
// outputs, not datasets (which pipeline streams).
const maxLoad = 1 << 30

// LoadNPZ reads every array of a small .npz (np.savez or np.savez_compressed)
// of floats, integers or bools, C order, keyed by name without ".npy".
func LoadNPZ(path string) (map[string]*Array, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer zr.Close()
	out := map[string]*Array{}
	for _, f := range zr.File {
		a, err := loadMember(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, f.Name, err)
		}
		out[strings.TrimSuffix(f.Name, ".npy")] = a
	}
	return out, nil
}

func loadMember(f *zip.File) (*Array, error) {
	size := int64(f.UncompressedSize64)
	if size > maxLoad {
		return nil, fmt.Errorf("%d bytes, more than the %d LoadNPZ reads", size, maxLoad)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	h, err := ReadHeader(rc, size)
	if err != nil {
		return nil, err
	}
	if h.Fortran {
		return nil, fmt.Errorf("Fortran order is not supported")
	}
	n, ok := Count(h.Shape, (size-h.Len)/int64(max(h.DType.Size, 1)))
	if !ok {
		return nil, fmt.Errorf("shape %v does not fit in %d bytes", h.Shape, size-h.Len)
	}
	raw := make([]byte, n*int64(h.DType.Size))
	if _, err := io.ReadFull(rc, raw); err != nil {
		return nil, fmt.Errorf("array data: %w", err)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if h.DType.Big {
		bo = binary.BigEndian
	}
	a := &Array{Data: make([]float64, n)}
	for _, d := range h.Shape {
		a.Shape = append(a.Shape, int(d))
	}
	sz := h.DType.Size
	for i := range a.Data {
		b := raw[i*sz : (i+1)*sz]
		switch {
		case h.DType.Kind == 'f' && sz == 8:
			a.Data[i] = math.Float64frombits(bo.Uint64(b))
		case h.DType.Kind == 'f' && sz == 4:
			a.Data[i] = float64(math.Float32frombits(bo.Uint32(b)))
		case (h.DType.Kind == 'i' || h.DType.Kind == 'u' || h.DType.Kind == 'b') && sz == 1:
			if h.DType.Kind == 'i' {
				a.Data[i] = float64(int8(b[0]))
			} else {
				a.Data[i] = float64(b[0])
			}
		case h.DType.Kind == 'i' && sz == 4:
			a.Data[i] = float64(int32(bo.Uint32(b)))
		case h.DType.Kind == 'i' && sz == 8:
			a.Data[i] = float64(int64(bo.Uint64(b)))
		case h.DType.Kind == 'u' && sz == 4:
			a.Data[i] = float64(bo.Uint32(b))
		case h.DType.Kind == 'u' && sz == 8:
			a.Data[i] = float64(bo.Uint64(b))
		default:
			return nil, fmt.Errorf("dtype %s is not supported", h.DType.Str)
		}
	}
	return a, nil
}

// Float32 returns the array's values as float32.
func (a *Array) Float32() []float32 {
	out := make([]float32, len(a.Data))
	for i, v := range a.Data {
		out[i] = float32(v)
	}
	return out
}
