package pipeline

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"certmix/internal/s3test"
	"certmix/shards"
)

// TestBitRotIsAlwaysCaught flips one random bit of a shard, on local disk
// and in the bucket (versitygw's posix backend keeps an object as a file),
// 1,000 times in all, anywhere in the file: header, record batches, footer.
// Every time, verify names the damaged shard; and a range read of the
// record batch that holds the flipped bit fails its checksum, so the
// sampler (which reads only through range reads) never uses it.
func TestBitRotIsAlwaysCaught(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	if srv.Root == "" {
		t.Fatal("the S3 server's root directory is unknown (set CERTMIX_S3_ROOT): the test damages objects there")
	}
	bucket := srv.Bucket(t)
	s3, err := shards.NewS3(ctx, s3Config(srv), bucket, "rot")
	if err != nil {
		t.Fatal(err)
	}
	local := localStore(t)
	for _, tc := range []struct {
		store  shards.Store
		dir    string
		trials int
	}{
		{local, local.String(), 800},
		{s3, filepath.Join(srv.Root, bucket, "rot"), 200},
	} {
		if _, err := Build(ctx, newSorted(3000), tc.store, Options{Seed: 1, ShardBytes: 160 << 10, BatchRows: 256}); err != nil {
			t.Fatal(err)
		}
		d, err := shards.OpenDataset(ctx, tc.store)
		if err != nil {
			t.Fatal(err)
		}
		m := d.Manifest
		rng := rand.New(rand.NewPCG(7, 7))
		for trial := range tc.trials {
			i := rng.IntN(len(m.Shards))
			s := m.Shards[i]
			path := filepath.Join(tc.dir, s.Name)
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			off := rng.Int64N(s.Bytes)
			bad := bytes.Clone(orig)
			bad[off] ^= 1 << rng.IntN(8)
			os.WriteFile(path, bad, 0o644)

			err = shards.Verify(ctx, d, nil)
			var se *shards.ShardError
			if !errors.As(err, &se) || se.Shard != s.Name {
				t.Fatalf("%s trial %d: byte %d of %s flipped, verify says %v", tc.store, trial, off, s.Name, err)
			}
			for j, b := range s.Batches {
				if off >= b.Offset && off < b.Offset+b.Length {
					var r shards.Rows
					if err := d.ReadBatch(ctx, i, j, &r); !errors.Is(err, shards.ErrChecksum) {
						t.Fatalf("%s trial %d: byte %d (batch %d) flipped, the range read gave %v", tc.store, trial, off, j, err)
					}
				}
			}
			os.WriteFile(path, orig, 0o644)
		}
		if err := shards.Verify(ctx, d, nil); err != nil {
			t.Fatalf("%s after the trials: %v", tc.store, err)
		}
	}
}

// TestTruncatedAndMissingShards: a shard cut short or gone is named, by
// verify and by reads, never skipped.
func TestTruncatedAndMissingShards(t *testing.T) {
	ctx := context.Background()
	store := localStore(t)
	if _, err := Build(ctx, newSorted(2000), store, Options{Seed: 2, ShardBytes: 100 << 10}); err != nil {
		t.Fatal(err)
	}
	d, _ := shards.OpenDataset(ctx, store)
	first, second := d.Manifest.Shards[0], d.Manifest.Shards[1]
	os.Truncate(filepath.Join(store.String(), first.Name), first.Bytes/2)
	os.Remove(filepath.Join(store.String(), second.Name))
	err := shards.Verify(ctx, d, nil)
	if err == nil || !strings.Contains(err.Error(), first.Name) || !strings.Contains(err.Error(), second.Name) ||
		!errors.Is(err, shards.ErrNotExist) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("verify: %v", err)
	}
	var r shards.Rows
	if err := d.ReadBatch(ctx, 1, 0, &r); !errors.Is(err, shards.ErrNotExist) {
		t.Fatalf("read of the missing shard: %v", err)
	}
}

// TestStoreDiesMidBuild kills the S3 server while a build uploads. Back
// within the retry budget, the build completes with the bytes of an
// uninterrupted build; gone for good, the build fails with a clear error and
// leaves no manifest, and the same build run again completes.
func TestStoreDiesMidBuild(t *testing.T) {
	ctx := context.Background()
	srv := s3test.StartPrivate(t)
	bucket := srv.Bucket(t)
	open := func(prefix string, retries int) shards.Store {
		cfg := s3Config(srv)
		cfg.Retries = retries
		s, err := shards.NewS3(ctx, cfg, bucket, prefix)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	opts := Options{Seed: 3, ShardBytes: 64 << 10}
	objects := func(s shards.Store) map[string][]byte {
		names, _ := s.List(ctx)
		out := map[string][]byte{}
		for _, n := range names {
			o, _ := s.Open(ctx, n)
			b := make([]byte, o.Size())
			o.ReadAt(b, 0)
			o.Close()
			out[n] = b
		}
		return out
	}
	want := open("clean", 5)
	if _, err := Build(ctx, newSorted(20000), want, opts); err != nil {
		t.Fatal(err)
	}

	// A short outage: the retries bridge it.
	bumpy := open("bumpy", 8)
	var once atomic.Bool
	o := opts
	o.Progress = func(stage string, done, total int64) {
		if stage == "write" && done > 0 && once.CompareAndSwap(false, true) {
			srv.Stop()
			go func() { time.Sleep(300 * time.Millisecond); srv.Restart() }()
		}
	}
	if _, err := Build(ctx, newSorted(20000), bumpy, o); err != nil {
		t.Fatalf("build through a 300 ms outage: %v", err)
	}
	if !once.Load() {
		t.Fatal("the server was never stopped")
	}
	a, b := objects(want), objects(bumpy)
	if len(a) != len(b) {
		for n := range a {
			if _, ok := b[n]; !ok {
				t.Errorf("missing after the outage: %s", n)
			}
		}
		d, err := shards.OpenDataset(ctx, bumpy)
		t.Logf("open after the outage: %v", err)
		if err == nil {
			t.Logf("verify: %v", shards.Verify(ctx, d, nil))
		}
		t.Fatalf("%d objects after the outage, %d without", len(b), len(a))
	}
	for n, data := range a {
		if !bytes.Equal(data, b[n]) {
			t.Fatalf("%s differs from the uninterrupted build's", n)
		}
	}

	// Gone for good: a clear error, no manifest; then the build again.
	dead := open("dead", 2)
	o.Progress = func(stage string, done, total int64) {
		if stage == "write" && done > 0 {
			srv.Stop()
		}
	}
	_, err := Build(ctx, newSorted(20000), dead, o)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("build with the server gone: %v, want an error saying it is unreachable", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := shards.OpenDataset(ctx, dead); !errors.Is(err, shards.ErrNoDataset) {
		t.Fatalf("after the failed build: %v, want no dataset", err)
	}
	if _, err := Build(ctx, newSorted(20000), dead, opts); !errors.Is(err, shards.ErrTaken) {
		t.Fatalf("the same build again, with the dead build's lock left: %v, want a refusal", err)
	}
	again := opts
	again.BreakLock = true
	if _, err := Build(ctx, newSorted(20000), dead, again); err != nil {
		t.Fatalf("the same build again, breaking the lock: %v", err)
	}
	c := objects(dead)
	for n, data := range a {
		if !bytes.Equal(data, c[n]) {
			t.Fatalf("%s of the rebuilt dataset differs from the uninterrupted build's", n)
		}
	}
}

// TestDiskFull builds into a 1 MiB tmpfs (mounted by the test: CI runs as
// root): a clear "no space" error, no manifest, no temporary files left.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount a 1 MiB tmpfs at %s (the test needs root): %v", dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	store, err := shards.NewLocal(filepath.Join(dir, "ds"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(context.Background(), newSorted(20000), store, Options{Seed: 1, ShardBytes: 256 << 10, Codec: shards.CodecNone, TempDir: t.TempDir()})
	if err == nil || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("build into a full disk: %v, want a no-space error", err)
	}
	var left []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("the failed build left %v", left)
	}
}

// gatedSource holds its first Read until release is closed, and closes
// reading when it gets there: by then its build holds the lock.
type gatedSource struct {
	*sortedSource
	reading, release chan struct{}
	once             sync.Once
}

func (g *gatedSource) Read(c *Chunk, n int) error {
	g.once.Do(func() {
		close(g.reading)
		<-g.release
	})
	return g.sortedSource.Read(c, n)
}

// TestTwoWriters runs two builds into one prefix at once, on local disk and
// on S3: one wins, the other refuses, and the dataset is the winner's alone.
// The first build's source blocks until the second has tried the lock, so
// the two always overlap: exactly one refuses, every run.
func TestTwoWriters(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	s3, err := shards.NewS3(ctx, s3Config(srv), srv.Bucket(t), "two")
	if err != nil {
		t.Fatal(err)
	}
	for _, store := range []shards.Store{localStore(t), s3} {
		first := &gatedSource{sortedSource: newSorted(20000), reading: make(chan struct{}), release: make(chan struct{})}
		type result struct {
			m   *shards.Manifest
			err error
		}
		done := make(chan result, 1)
		go func() {
			m, err := Build(ctx, first, store, Options{Seed: 0, ShardBytes: 64 << 10, Overwrite: true})
			done <- result{m, err}
		}()
		select {
		case <-first.reading:
		case r := <-done:
			t.Fatalf("%s: the first build ended before reading its source: %v", store, r.err)
		}
		_, err2 := Build(ctx, newSorted(20000), store, Options{Seed: 1, ShardBytes: 64 << 10, Overwrite: true})
		close(first.release)
		r := <-done
		if r.err != nil {
			t.Fatalf("%s: the build that holds the lock failed: %v", store, r.err)
		}
		if !errors.Is(err2, shards.ErrTaken) {
			t.Fatalf("%s: the second build, while the first holds the lock, says %v, want that another build holds the lock", store, err2)
		}
		d, err := shards.OpenDataset(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		if err := shards.Verify(ctx, d, nil); err != nil {
			t.Fatalf("%s: %v", store, err)
		}
		if !reflect.DeepEqual(d.Manifest.Shards, r.m.Shards) {
			t.Errorf("%s: the stored dataset is not the one the winning build wrote", store)
		}
		names, _ := store.List(ctx)
		if len(names) != len(d.Manifest.Shards)+1 {
			t.Errorf("%s: %d objects for %d shards and a manifest: %v", store, len(names), len(d.Manifest.Shards), names)
		}
	}
}
