package sampler

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"certmix/internal/s3test"
	"certmix/internal/testsets"
	"certmix/pipeline"
	"certmix/shards"
)

// BenchmarkSample streams B=512, f=0.7, crop+flip, uint8 batches from a
// 50,000-image real set and a generated set of CERTMIX_BENCH_GEN images
// (default 1M), CIFAR-shaped, from local shards and from versitygw:
//
//	CERTMIX_BENCH_GEN=1000000 go test ./sampler -run '^$' -bench Sample -benchtime 1x
//
// The datasets are built once into CERTMIX_BENCH_DIR and reused. Peak RSS
// is the process's: run one size per process (task bench does).
func BenchmarkSample(b *testing.B) {
	gen := envInt(b, "CERTMIX_BENCH_GEN", 1_000_000)
	steps := envInt(b, "CERTMIX_BENCH_STEPS", 2000)
	dir := os.Getenv("CERTMIX_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	ctx := context.Background()
	realURL := benchSet(b, filepath.Join(dir, "real-50k"), 50_000, 1)
	genURL := benchSet(b, filepath.Join(dir, fmt.Sprintf("gen-%d", gen)), gen, 2)
	for _, where := range []string{"local", "s3"} {
		if only := os.Getenv("CERTMIX_BENCH_STORE"); only != "" && only != where {
			continue
		}
		b.Run(fmt.Sprintf("store=%s/gen=%d", where, gen), func(b *testing.B) {
			real, err := shards.Open(ctx, realURL, shards.S3Config{})
			if err != nil {
				b.Fatal(err)
			}
			g, err := shards.Open(ctx, genURL, shards.S3Config{})
			if err != nil {
				b.Fatal(err)
			}
			if where == "s3" {
				srv := s3test.Start(b)
				cfg := shards.S3Config{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
				bucket := srv.Bucket(b)
				real = copySet(b, real, cfg, bucket, "real")
				g = copySet(b, g, cfg, bucket, "gen")
			}
			cfg := Config{Sources: []Source{{Dataset: real, Fraction: 0.3}, {Dataset: g, Fraction: 0.7, Replacement: true}},
				Batch: 512, Seed: 1, Augment: Augment{Pad: 4, Flip: true}}
			for range b.N {
				it, err := New(ctx, cfg, nil)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				for range steps {
					if _, err := it.Next(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(steps*512)/time.Since(start).Seconds(), "images/s")
				it.Close()
			}
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			b.ReportMetric(float64(ru.Maxrss)/1024, "peakRSS-MiB")
		})
	}
}

func envInt(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return def
}

// benchSet builds, once, a dataset of n incompressible CIFAR-shaped images.
func benchSet(b *testing.B, dir string, n int, seed uint64) string {
	if _, err := os.Stat(filepath.Join(dir, shards.ManifestName)); err == nil {
		return dir
	}
	store, err := shards.NewLocal(dir)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := pipeline.Build(context.Background(), &testsets.Noise{N: n, X: seed*0x9e3779b97f4a7c15 + 1}, store, pipeline.Options{Seed: seed, Kind: shards.KindGenerated, TempDir: b.TempDir()}); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %s (%d images) in %s", dir, n, time.Since(start))
	return dir
}

// copySet copies a dataset's objects into an S3 prefix.
func copySet(b *testing.B, d *shards.Dataset, cfg shards.S3Config, bucket, prefix string) *shards.Dataset {
	ctx := context.Background()
	dst, err := shards.NewS3(ctx, cfg, bucket, prefix)
	if err != nil {
		b.Fatal(err)
	}
	names := []string{}
	for _, s := range d.Manifest.Shards {
		names = append(names, s.Name)
	}
	for _, name := range append(names, shards.ManifestName) {
		obj, err := d.Store().Open(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		if err := dst.Put(ctx, name, io.NewSectionReader(obj, 0, obj.Size()), obj.Size()); err != nil {
			b.Fatal(err)
		}
		obj.Close()
	}
	out, err := shards.OpenDataset(ctx, dst)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkSampleFashionMNIST streams what the README's main job trains on:
// B=512, f=0.7, crop+flip, uint8 batches from the 10,000 real and 50,000
// auxiliary Fashion-MNIST images of `task split`, once per codec of the
// shards (codec=none, and codec=zstd, the default: Fashion-MNIST compresses
// to about 0.27; BenchmarkSample's noise images do not compress, so its
// shards are stored raw whatever the codec), from local disk and versitygw:
//
//	go test ./sampler -run '^$' -bench SampleFashionMNIST -benchtime 1x
func BenchmarkSampleFashionMNIST(b *testing.B) {
	steps := envInt(b, "CERTMIX_BENCH_STEPS", 500)
	dir := os.Getenv("CERTMIX_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	ctx := context.Background()
	for _, codec := range []string{shards.CodecNone, shards.CodecZstd} {
		realURL, genURL := testsets.FashionMNIST(b, dir, codec)
		for _, where := range []string{"local", "s3"} {
			if only := os.Getenv("CERTMIX_BENCH_STORE"); only != "" && only != where {
				continue
			}
			b.Run(fmt.Sprintf("codec=%s/store=%s", codec, where), func(b *testing.B) {
				real, err := shards.Open(ctx, realURL, shards.S3Config{})
				if err != nil {
					b.Fatal(err)
				}
				g, err := shards.Open(ctx, genURL, shards.S3Config{})
				if err != nil {
					b.Fatal(err)
				}
				if where == "s3" {
					srv := s3test.Start(b)
					cfg := shards.S3Config{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
					bucket := srv.Bucket(b)
					real = copySet(b, real, cfg, bucket, "real")
					g = copySet(b, g, cfg, bucket, "gen")
				}
				var raw, stored int64
				for _, d := range []*shards.Dataset{real, g} {
					for _, s := range d.Manifest.Shards {
						stored += s.Bytes
					}
					raw += d.Manifest.Rows * int64(d.Manifest.Shape.ImageBytes())
				}
				cfg := Config{Sources: []Source{{Dataset: real, Fraction: 0.3}, {Dataset: g, Fraction: 0.7, Replacement: true}},
					Batch: 512, Seed: 1, Augment: Augment{Pad: 4, Flip: true}}
				for range b.N {
					it, err := New(ctx, cfg, nil)
					if err != nil {
						b.Fatal(err)
					}
					start := time.Now()
					for range steps {
						if _, err := it.Next(ctx); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(steps*512)/time.Since(start).Seconds(), "images/s")
					it.Close()
				}
				b.ReportMetric(float64(stored)/float64(raw), "stored/raw")
			})
		}
	}
}
