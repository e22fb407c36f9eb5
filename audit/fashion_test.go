package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"certmix/pipeline"
	"certmix/shards"
)

const fmnist = "/usr/share/datasets/fashion-mnist"

var fmShape = shards.Shape{Height: 28, Width: 28, Channels: 1, Classes: 10}

// fashionRows reads one split of Fashion-MNIST (ids are row numbers),
// once per test binary.
func fashionRows(t testing.TB, split string) *shards.Rows {
	t.Helper()
	fmOnce.Do(func() {
		fmRows = map[string]*shards.Rows{}
		for _, s := range []string{"train", "test"} {
			prefix := map[string]string{"train": "train", "test": "t10k"}[s]
			src, err := pipeline.OpenIDX(filepath.Join(fmnist, prefix+"-images-idx3-ubyte.gz"), filepath.Join(fmnist, prefix+"-labels-idx1-ubyte.gz"))
			if err != nil {
				fmErr = err
				return
			}
			r := &shards.Rows{}
			var c pipeline.Chunk
			for {
				err := src.Read(&c, 4096)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					fmErr = err
					return
				}
				for i := range c.Len() {
					r.IDs = append(r.IDs, c.First+int64(i))
				}
				r.Labels = append(r.Labels, c.Labels...)
				r.Images = append(r.Images, c.Images...)
			}
			src.Close()
			fmRows[s] = r
		}
	})
	if fmErr != nil {
		if _, err := os.Stat(fmnist); err != nil {
			t.Fatalf("Fashion-MNIST not installed at %s: %v (task deps:apt installs Debian's dataset-fashion-mnist; task test runs it)", fmnist, err)
		}
		t.Fatal(fmErr)
	}
	return fmRows[split]
}

var (
	fmOnce sync.Once
	fmRows map[string]*shards.Rows
	fmErr  error
)

// head returns the first n rows of r (copied).
func head(r *shards.Rows, n, ib int) *shards.Rows {
	return &shards.Rows{IDs: append([]int64(nil), r.IDs[:n]...), Labels: append([]int16(nil), r.Labels[:n]...),
		Images: append([]byte(nil), r.Images[:n*ib]...)}
}

// writeDataset stores rows as a local dataset of shards of shardRows rows
// in record batches of batchRows, and opens it.
func writeDataset(t testing.TB, rows *shards.Rows, shape shards.Shape, kind string, shardRows, batchRows int) *shards.Dataset {
	t.Helper()
	ctx := context.Background()
	store, err := shards.NewLocal(filepath.Join(t.TempDir(), "ds"))
	if err != nil {
		t.Fatal(err)
	}
	ib := shape.ImageBytes()
	m := &shards.Manifest{Name: "t-" + kind, Kind: kind, Split: "train", Shape: shape, Codec: shards.CodecNone,
		Rows: int64(rows.Len()), ClassCounts: make([]int64, shape.Classes)}
	for _, l := range rows.Labels {
		m.ClassCounts[l]++
	}
	for lo := 0; lo < rows.Len(); lo += shardRows {
		hi := min(lo+shardRows, rows.Len())
		part := shards.Rows{IDs: rows.IDs[lo:hi], Labels: rows.Labels[lo:hi], Images: rows.Images[lo*ib : hi*ib]}
		info, err := shards.WriteShard(ctx, store, fmt.Sprintf("shard-%03d.arrow", len(m.Shards)), shape, shards.CodecNone, batchRows, &part)
		if err != nil {
			t.Fatal(err)
		}
		m.Shards = append(m.Shards, info)
	}
	if err := shards.WriteManifest(ctx, store, m); err != nil {
		t.Fatal(err)
	}
	d, err := shards.OpenDataset(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// plant is one near-copy put among real training images.
type plant struct {
	test int   // position of the copied test image
	id   int64 // id of the copy
	how  string
}

// Ways to copy a test image: each is a near-copy a person would call one.
var copyKinds = []string{"noise", "shift", "flip", "flip+shift+noise"}

// nearCopy makes a near-copy of img (HWC, shape s): Gaussian noise of 3/255
// per pixel, a move by one pixel (right or down, the new edge repeating the
// old one), a mirror image, or all three.
func nearCopy(img []byte, s shards.Shape, how string, rng *rand.Rand) []byte {
	h, w, c := s.Height, s.Width, s.Channels
	out := append([]byte(nil), img...)
	flip := how == "flip" || how == "flip+shift+noise"
	shift := how == "shift" || how == "flip+shift+noise"
	noise := how == "noise" || how == "flip+shift+noise"
	dx, dy := 0, 0
	if shift {
		if rng.IntN(2) == 0 {
			dx = 1 - 2*rng.IntN(2)
		} else {
			dy = 1 - 2*rng.IntN(2)
		}
	}
	for y := range h {
		sy := min(max(y-dy, 0), h-1)
		for x := range w {
			sx := min(max(x-dx, 0), w-1)
			if flip {
				sx = w - 1 - sx
			}
			for k := range c {
				v := float64(img[(sy*w+sx)*c+k])
				if noise {
					v += rng.NormFloat64() * 3
				}
				out[(y*w+x)*c+k] = byte(min(max(v+0.5, 0), 255))
			}
		}
	}
	return out
}
