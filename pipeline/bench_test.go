package pipeline

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"certmix/internal/s3test"
	"certmix/shards"
)

// BenchmarkBuildNPZ builds CIFAR-shaped images from a stored .npz sorted by
// class, as the released generated sets are, to local disk and to S3:
//
//	CERTMIX_BENCH_ROWS=1000000 go test ./pipeline -run '^$' -bench BuildNPZ -benchtime 1x
//
// Peak RSS is the process's, so run one size per process (task bench does).
func BenchmarkBuildNPZ(b *testing.B) {
	n := 200_000
	if v := os.Getenv("CERTMIX_BENCH_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	dir := os.Getenv("CERTMIX_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("bench-%d.npz", n))
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		if err := writeBenchNPZ(path, n); err != nil {
			b.Fatal(err)
		}
		b.Logf("wrote %s in %s", path, time.Since(start))
	}
	stores := map[string]func(b *testing.B) shards.Store{
		"local": func(b *testing.B) shards.Store {
			s, err := shards.NewLocal(filepath.Join(b.TempDir(), "out"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"s3": func(b *testing.B) shards.Store {
			srv := s3test.Start(b)
			s, err := shards.NewS3(context.Background(), s3Config(srv), srv.Bucket(b), "bench")
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
	for _, name := range []string{"local", "s3"} {
		if only := os.Getenv("CERTMIX_BENCH_STORE"); only != "" && only != name {
			continue
		}
		b.Run(fmt.Sprintf("store=%s/rows=%d", name, n), func(b *testing.B) {
			for range b.N {
				store := stores[name](b)
				src, err := OpenNPZ(path, 10)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				if _, err := Build(context.Background(), src, store, Options{Seed: 1, TempDir: dir}); err != nil {
					b.Fatal(err)
				}
				src.Close()
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "images/s")
			}
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			b.ReportMetric(float64(ru.Maxrss)/1024, "peakRSS-MiB")
		})
	}
}

// writeBenchNPZ writes n incompressible 32x32x3 images and int64 labels
// grouped by class, as np.savez does (stored entries).
func writeBenchNPZ(path string, n int) error {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw := zip.NewWriter(bw)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "image.npy", Method: zip.Store})
	if err != nil {
		return err
	}
	if _, err := w.Write(benchNPYHeader("|u1", fmt.Sprintf("(%d, 32, 32, 3)", n))); err != nil {
		return err
	}
	buf := make([]byte, 3072*1024)
	x := uint64(88172645463325252)
	for done := 0; done < n; done += 1024 {
		k := min(1024, n-done)
		for i := 0; i < k*3072; i += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			binary.LittleEndian.PutUint64(buf[i:], x)
		}
		if _, err := w.Write(buf[:k*3072]); err != nil {
			return err
		}
	}
	if w, err = zw.CreateHeader(&zip.FileHeader{Name: "label.npy", Method: zip.Store}); err != nil {
		return err
	}
	if _, err := w.Write(benchNPYHeader("<i8", fmt.Sprintf("(%d,)", n))); err != nil {
		return err
	}
	lbl := make([]byte, 8)
	lw := bufio.NewWriter(w)
	for i := range n {
		binary.LittleEndian.PutUint64(lbl, uint64(i*10/n))
		lw.Write(lbl)
	}
	if err := lw.Flush(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// benchNPYHeader returns a version 1.0 .npy header, padded to 64 bytes as numpy does.
func benchNPYHeader(descr, shape string) []byte {
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape)
	total := 10 + len(dict) + 1
	pad := (64 - total%64) % 64
	dict += strings.Repeat(" ", pad) + "\n"
	h := []byte("\x93NUMPY\x01\x00")
	h = binary.LittleEndian.AppendUint16(h, uint16(len(dict)))
	return append(h, dict...)
}

// s3Config gives the settings that reach a test server.
func s3Config(srv *s3test.Server) shards.S3Config {
	return shards.S3Config{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
}
