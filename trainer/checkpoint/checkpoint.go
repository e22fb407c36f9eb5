// Package checkpoint owns certmix's checkpoint format. A checkpoint is a
// safetensors file (https://huggingface.co/docs/safetensors):
// an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype (always F32 here), shape and byte range, then the tensors' bytes.
// The header's "__metadata__" holds strings: the training state that is not
// a tensor (step, epoch, schedule, sampler state as JSON) and "xxh64", the
// checksum of the tensor bytes, so that a truncated or damaged checkpoint is
// refused. Readers in Python: safetensors.numpy.load_file.
package checkpoint

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/cespare/xxhash/v2"

	"certmix/shards"
)

// File is a set of named float32 tensors and string metadata.
type File struct {
	Tensors map[string]Tensor
	Meta    map[string]string
}

// Tensor is a named array of a checkpoint.
type Tensor struct {
	Shape []int
	Data  []float32
}

// ErrDamaged is wrapped by errors about malformed checkpoints.
var ErrDamaged = errors.New("malformed checkpoint")

type tensorHeader struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// maxHeader bounds the JSON header a reader accepts.
const maxHeader = 100 << 20

// Marshal encodes the checkpoint, tensors in name order.
func (c *File) Marshal() ([]byte, error) {
	names := make([]string, 0, len(c.Tensors))
	for n := range c.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{}
	var data bytes.Buffer
	for _, n := range names {
		t := c.Tensors[n]
		count := 1
		for _, d := range t.Shape {
			count *= d
		}
		if count != len(t.Data) {
			return nil, fmt.Errorf("tensor %s: shape %v holds %d values, data has %d", n, t.Shape, count, len(t.Data))
		}
		start := int64(data.Len())
		buf := make([]byte, 4*len(t.Data))
		for i, v := range t.Data {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		data.Write(buf)
		header[n] = tensorHeader{DType: "F32", Shape: t.Shape, Offsets: [2]int64{start, int64(data.Len())}}
	}
	meta := map[string]string{}
	for k, v := range c.Meta {
		meta[k] = v
	}
	meta["xxh64"] = fmt.Sprintf("%016x", xxhash.Sum64(data.Bytes()))
	header["__metadata__"] = meta
	h, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(out, h...)
	return append(out, data.Bytes()...), nil
}

// Unmarshal decodes and checks a checkpoint.
func Unmarshal(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%d bytes, shorter than a header: %w", len(b), ErrDamaged)
	}
	n := binary.LittleEndian.Uint64(b)
	if n > maxHeader || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("header of %d bytes in a %d-byte file: %w", n, len(b), ErrDamaged)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		return nil, fmt.Errorf("header: %v: %w", err, ErrDamaged)
	}
	data := b[8+n:]
	c := &File{Tensors: map[string]Tensor{}, Meta: map[string]string{}}
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &c.Meta); err != nil {
			return nil, fmt.Errorf("metadata: %v: %w", err, ErrDamaged)
		}
		delete(raw, "__metadata__")
	}
	if sum := fmt.Sprintf("%016x", xxhash.Sum64(data)); c.Meta["xxh64"] != sum {
		return nil, fmt.Errorf("tensor bytes have xxh64 %s, the header says %q (truncated or damaged): %w", sum, c.Meta["xxh64"], ErrDamaged)
	}
	delete(c.Meta, "xxh64")
	for name, r := range raw {
		var th tensorHeader
		if err := json.Unmarshal(r, &th); err != nil {
			return nil, fmt.Errorf("tensor %s: %v: %w", name, err, ErrDamaged)
		}
		count := int64(1)
		for _, d := range th.Shape {
			if d < 0 || (d > 0 && count > int64(len(data))/4/int64(d)) {
				return nil, fmt.Errorf("tensor %s: shape %v is larger than the file: %w", name, th.Shape, ErrDamaged)
			}
			count *= int64(d)
		}
		lo, hi := th.Offsets[0], th.Offsets[1]
		if th.DType != "F32" || lo < 0 || hi < lo || hi > int64(len(data)) || hi-lo != 4*count {
			return nil, fmt.Errorf("tensor %s: %s %v at bytes %d..%d of %d: %w", name, th.DType, th.Shape, lo, hi, len(data), ErrDamaged)
		}
		t := Tensor{Shape: th.Shape, Data: make([]float32, count)}
		for i := range t.Data {
			t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[lo+4*int64(i):]))
		}
		c.Tensors[name] = t
	}
	return c, nil
}

// Write stores c under name in one atomic, durable Put: a reader
// sees the previous checkpoint or this one, never a part.
func Write(ctx context.Context, store shards.Store, name string, c *File) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	if err := store.Put(ctx, name, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("checkpoint %s/%s: %w", store, name, err)
	}
	return nil
}

// Read loads and checks the checkpoint name of store.
func Read(ctx context.Context, store shards.Store, name string) (*File, error) {
	obj, err := store.Open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s/%s: %w", store, name, err)
	}
	defer obj.Close()
	b := make([]byte, obj.Size())
	if _, err := obj.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("checkpoint %s/%s: %w", store, name, err)
	}
	c, err := Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s/%s: %w", store, name, err)
	}
	return c, nil
}
