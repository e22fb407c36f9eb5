// Package testsets makes small datasets for tests and benchmarks: rows whose
// pixels spell their id (so a test can tell an image from its id), and a
// source of incompressible CIFAR-shaped images.
package testsets

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"certmix/pipeline"
	"certmix/shards"
)

// Pixels returns the image of id: its first 8 bytes are the id, little endian.
func Pixels(id int64, n int) []byte {
	p := make([]byte, max(n, 8))
	binary.LittleEndian.PutUint64(p, uint64(id))
	for i := 8; i < n; i++ {
		p[i] = byte(int(id)*7 + i)
	}
	return p[:n]
}

// Write stores a dataset of n rows in store: ids from base, label id mod
// classes, pixels from Pixels, shards of shardRows rows in record batches
// of batchRows, uncompressed. It returns the opened dataset.
func Write(t testing.TB, store shards.Store, n int, shape shards.Shape, shardRows, batchRows int, base int64) *shards.Dataset {
	t.Helper()
	return WriteCodec(t, store, n, shape, shardRows, batchRows, base, shards.CodecNone)
}

// WriteCodec is Write with the shards' bodies compressed by codec.
func WriteCodec(t testing.TB, store shards.Store, n int, shape shards.Shape, shardRows, batchRows int, base int64, codec string) *shards.Dataset {
	t.Helper()
	ctx := context.Background()
	ib := shape.ImageBytes()
	m := &shards.Manifest{Name: "t", Kind: shards.KindReal, Split: "train", Shape: shape, Codec: codec,
		Rows: int64(n), ClassCounts: make([]int64, shape.Classes), Provenance: shards.Provenance{SourceRows: base + int64(n)}}
	for lo := 0; lo < n; lo += shardRows {
		var r shards.Rows
		for id := base + int64(lo); id < base+int64(min(lo+shardRows, n)); id++ {
			r.IDs = append(r.IDs, id)
			r.Labels = append(r.Labels, int16(id%int64(shape.Classes)))
			m.ClassCounts[id%int64(shape.Classes)]++
			r.Images = append(r.Images, Pixels(id, ib)...)
		}
		info, err := shards.WriteShard(ctx, store, fmt.Sprintf("s%03d.arrow", len(m.Shards)), shape, codec, batchRows, &r)
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

// Local is Write to a fresh local directory.
func Local(t testing.TB, n int, shape shards.Shape, shardRows, batchRows int, base int64) *shards.Dataset {
	t.Helper()
	store, err := shards.NewLocal(filepath.Join(t.TempDir(), "ds"))
	if err != nil {
		t.Fatal(err)
	}
	return Write(t, store, n, shape, shardRows, batchRows, base)
}

// Noise is a pipeline.Source of N incompressible 32x32x3 images with labels
// id mod 10, for benchmarks.
type Noise struct {
	N, next int
	X       uint64 // xorshift state: the seed
}

// Info describes the source.
func (s *Noise) Info() pipeline.Info {
	return pipeline.Info{Format: "noise", Height: 32, Width: 32, Channels: 3, Classes: 10, Rows: int64(s.N)}
}

// Read returns the next at most n images.
func (s *Noise) Read(c *pipeline.Chunk, n int) error {
	c.First, c.Labels, c.Images = int64(s.next), c.Labels[:0], c.Images[:0]
	if s.next == s.N {
		return io.EOF
	}
	if s.X == 0 {
		s.X = 88172645463325252
	}
	k := min(n, s.N-s.next)
	for i := range k {
		c.Labels = append(c.Labels, int16((s.next+i)%10))
	}
	c.Images = append(c.Images, make([]byte, k*3072)...)
	for i := 0; i < len(c.Images); i += 8 {
		s.X ^= s.X << 13
		s.X ^= s.X >> 7
		s.X ^= s.X << 17
		binary.LittleEndian.PutUint64(c.Images[i:], s.X)
	}
	s.next += k
	return nil
}

// Close does nothing.
func (s *Noise) Close() error { return nil }

// FashionMNISTDir is where Debian's dataset-fashion-mnist puts the files.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// FashionMNIST builds, once, into dir the two sets `task split` makes of
// Fashion-MNIST's training images (seed 1): 10,000 real and the other
// 50,000 as the generated stand-in, their shards compressed with codec. It
// returns their directories. It skips b when the dataset is not installed.
func FashionMNIST(b testing.TB, dir, codec string) (real, gen string) {
	b.Helper()
	images := filepath.Join(FashionMNISTDir, "train-images-idx3-ubyte.gz")
	if _, err := os.Stat(images); err != nil {
		b.Fatalf("Fashion-MNIST is not installed: %v (task deps:apt installs Debian's dataset-fashion-mnist)", err)
	}
	build := func(name string, opts pipeline.Options) string {
		out := filepath.Join(dir, "fmnist-"+codec+"-"+name)
		if _, err := os.Stat(filepath.Join(out, shards.ManifestName)); err == nil {
			return out
		}
		src, err := pipeline.OpenIDX(images, filepath.Join(FashionMNISTDir, "train-labels-idx1-ubyte.gz"))
		if err != nil {
			b.Fatal(err)
		}
		defer src.Close()
		store, err := shards.NewLocal(out)
		if err != nil {
			b.Fatal(err)
		}
		opts.Seed, opts.Codec, opts.Name, opts.TempDir = 1, codec, name, b.TempDir()
		if _, err := pipeline.Build(context.Background(), src, store, opts); err != nil {
			b.Fatal(err)
		}
		return out
	}
	return build("real10k", pipeline.Options{Take: 10_000}), build("aux50k", pipeline.Options{Skip: 10_000, Kind: shards.KindGenerated})
}
