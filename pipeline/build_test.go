package pipeline

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"certmix/shards"
)

// sortedSource is a generated-data stand-in: n images grouped by class, as
// the released .npz files are, with pixels that encode the id.
type sortedSource struct {
	n, classes int
	h, w, c    int
	next       int
}

func (s *sortedSource) Info() Info {
	return Info{Format: "test", Height: s.h, Width: s.w, Channels: s.c, Classes: s.classes, Rows: int64(s.n)}
}

func (s *sortedSource) label(id int) int16 { return int16(id * s.classes / s.n) }

func pixels(id, size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(uint32(id*2654435761+i*40503) >> 13)
	}
	return p
}

func (s *sortedSource) Read(c *Chunk, n int) error {
	c.Labels, c.Images, c.First = c.Labels[:0], c.Images[:0], int64(s.next)
	if s.next == s.n {
		return io.EOF
	}
	for ; n > 0 && s.next < s.n; n, s.next = n-1, s.next+1 {
		c.Labels = append(c.Labels, s.label(s.next))
		c.Images = append(c.Images, pixels(s.next, s.h*s.w*s.c)...)
	}
	return nil
}

func (s *sortedSource) Close() error { return nil }

func newSorted(n int) *sortedSource { return &sortedSource{n: n, classes: 10, h: 8, w: 8, c: 3} }

// seekableSource also reads images by id, as a stored .npz does.
type seekableSource struct{ *sortedSource }

func (s seekableSource) ReadImageAt(dst []byte, id int64) error {
	copy(dst, pixels(int(id), len(dst)))
	return nil
}

// readAll returns every row of a dataset in order, after verifying it.
func readAll(t *testing.T, store shards.Store) (*shards.Manifest, shards.Rows) {
	t.Helper()
	ctx := context.Background()
	d, err := shards.OpenDataset(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := shards.Verify(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	var all, part shards.Rows
	for i := range d.Manifest.Shards {
		if err := d.ReadShard(ctx, i, &part); err != nil {
			t.Fatal(err)
		}
		all.IDs = append(all.IDs, part.IDs...)
		all.Labels = append(all.Labels, part.Labels...)
		all.Coarse = append(all.Coarse, part.Coarse...)
		all.Images = append(all.Images, part.Images...)
	}
	return d.Manifest, all
}

func localStore(t *testing.T) shards.Store {
	t.Helper()
	s, err := shards.NewLocal(filepath.Join(t.TempDir(), "ds"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBuildShufflesEveryShard(t *testing.T) {
	const n = 20000
	for _, tc := range []struct {
		shardBytes int64
		seekable   bool
	}{
		{64 << 20, false},  // one shard, in memory
		{400 << 10, false}, // many, pixels spilled
		{400 << 10, true},  // many, pixels read by id
	} {
		shardBytes := tc.shardBytes
		t.Run(fmt.Sprintf("shard=%d/seekable=%v", shardBytes, tc.seekable), func(t *testing.T) {
			store := localStore(t)
			src := newSorted(n)
			var source Source = src
			if tc.seekable {
				source = seekableSource{src}
			}
			m, err := Build(context.Background(), source, store, Options{Seed: 7, ShardBytes: shardBytes, BatchRows: 500, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if want := int((int64(n)*202 + shardBytes - 1) / shardBytes); len(m.Shards) != want {
				t.Fatalf("%d shards, want %d", len(m.Shards), want)
			}
			_, rows := readAll(t, store)
			// A permutation of the source, every row intact.
			seen := make([]bool, n)
			for i, id := range rows.IDs {
				if seen[id] {
					t.Fatalf("id %d twice", id)
				}
				seen[id] = true
				if rows.Labels[i] != src.label(int(id)) || !bytes.Equal(rows.Image(i, 192), pixels(int(id), 192)) {
					t.Fatalf("row %d (id %d) differs from the source", i, id)
				}
			}
			// Each shard's class histogram is close to uniform: chi-square
			// with 9 degrees of freedom below its 0.9999 quantile (33.7), a
			// 0.001 test over all shards together.
			off := 0
			for _, s := range m.Shards {
				counts := make([]float64, 10)
				for _, l := range rows.Labels[off : off+int(s.Rows)] {
					counts[l]++
				}
				off += int(s.Rows)
				exp := float64(s.Rows) / 10
				var chi float64
				for _, c := range counts {
					chi += (c - exp) * (c - exp) / exp
				}
				if chi > 33.7 {
					t.Errorf("shard %s: class counts %v, chi-square %.1f > 33.7", s.Name, counts, chi)
				}
			}
			if tmp, _ := filepath.Glob(filepath.Join(os.TempDir(), "certmix-shuffle-*")); len(tmp) > 0 {
				t.Errorf("spill files left: %v", tmp)
			}
		})
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	build := func(seed uint64, workers int) []byte {
		store := localStore(t)
		m, err := Build(context.Background(), newSorted(6000), store, Options{Seed: seed, Workers: workers, ShardBytes: 64 << 10, BatchRows: 100, TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		var all []byte
		for _, s := range m.Shards {
			obj, err := store.Open(context.Background(), s.Name)
			if err != nil {
				t.Fatal(err)
			}
			data := make([]byte, obj.Size())
			obj.ReadAt(data, 0)
			obj.Close()
			all = append(all, data...)
		}
		data, _ := m.Marshal()
		return append(all, data...)
	}
	a := build(3, 1)
	if !bytes.Equal(a, build(3, 2)) {
		t.Error("the same seed gave different bytes with another number of workers")
	}
	if bytes.Equal(a, build(4, 1)) {
		t.Error("seeds 3 and 4 gave the same bytes")
	}
}

func TestTakeIsNestedAndReproducible(t *testing.T) {
	ctx := context.Background()
	stores := map[int64]shards.Store{}
	for _, take := range []int64{1000, 2500, 7000} {
		stores[take] = localStore(t)
		if _, err := Build(ctx, newSorted(10000), stores[take], Options{Seed: 11, Take: take, ShardBytes: 32 << 10}); err != nil {
			t.Fatal(err)
		}
	}
	again := localStore(t)
	if _, err := Build(ctx, newSorted(10000), again, Options{Seed: 11, Take: 2500, ShardBytes: 32 << 10}); err != nil {
		t.Fatal(err)
	}
	m, small := readAll(t, stores[2500])
	_, rerun := readAll(t, again)
	if !slices.Equal(small.IDs, rerun.IDs) || m.Rows != 2500 {
		t.Fatalf("take 2500 twice with seed 11 differs (or has %d rows)", m.Rows)
	}
	open := func(s shards.Store) *shards.Dataset {
		d, err := shards.OpenDataset(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if err := shards.VerifyNested(ctx, open(stores[1000]), open(stores[2500])); err != nil {
		t.Error(err)
	}
	if err := shards.VerifyNested(ctx, open(stores[2500]), open(stores[7000])); err != nil {
		t.Error(err)
	}
	if err := shards.VerifyNested(ctx, open(stores[7000]), open(stores[1000])); err == nil {
		t.Error("7000 nested in 1000")
	}
	other := localStore(t)
	if _, err := Build(ctx, newSorted(10000), other, Options{Seed: 12, Take: 7000, ShardBytes: 32 << 10}); err != nil {
		t.Fatal(err)
	}
	if err := shards.VerifyNested(ctx, open(stores[1000]), open(other)); err == nil {
		t.Error("takes with different seeds passed as nested")
	}
	// A uniform subset: labels of the 1000 are close to 100 per class.
	_, rows := readAll(t, stores[1000])
	counts := make([]float64, 10)
	for _, l := range rows.Labels {
		counts[l]++
	}
	var chi float64
	for _, c := range counts {
		chi += (c - 100) * (c - 100) / 100
	}
	if chi > 27.9 || math.IsNaN(chi) {
		t.Errorf("take 1000: class counts %v (chi-square %.1f)", counts, chi)
	}
}

func TestBuildRefusesExistingDataset(t *testing.T) {
	ctx := context.Background()
	store := localStore(t)
	// A dataset of many shards, so that a smaller one replacing it leaves
	// stale shards that the overwrite must remove.
	m, err := Build(ctx, newSorted(3000), store, Options{ShardBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Shards) < 3 {
		t.Fatalf("3000 rows in 16 KiB shards: %d shards, want several", len(m.Shards))
	}
	before, _ := store.List(ctx)
	if _, err := Build(ctx, newSorted(100), store, Options{}); !errors.Is(err, shards.ErrExists) {
		t.Fatalf("second build: %v, want ErrExists", err)
	}
	if after, _ := store.List(ctx); !slices.Equal(after, before) {
		t.Fatalf("the refused build changed the store: %v, was %v", after, before)
	}
	// Overwrite with a smaller dataset removes the old shards it no longer names.
	if _, err := Build(ctx, newSorted(50), store, Options{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	names, _ := store.List(ctx)
	if !slices.Equal(names, []string{"manifest.json", "shard-000000.arrow"}) {
		t.Errorf("after overwriting %d shards with one: %v", len(m.Shards), names)
	}
}

// failingSource fails after some rows, as a truncated input does.
type failingSource struct{ sortedSource }

func (f *failingSource) Read(c *Chunk, n int) error {
	if f.next >= f.n/2 {
		return fmt.Errorf("input.bin: record %d: truncated: %w", f.next, ErrFormat)
	}
	return f.sortedSource.Read(c, min(n, 100))
}

func TestFailedBuildLeavesNothing(t *testing.T) {
	ctx := context.Background()
	store := localStore(t)
	// The source's own error is reported, never a consequence of it (the
	// row count falling short): tried many times, as the two race.
	for range 30 {
		_, err := Build(ctx, &failingSource{*newSorted(5000)}, store, Options{ShardBytes: 16 << 10})
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("got %v, want the source's truncation error", err)
		}
	}
	names, _ := store.List(ctx)
	if len(names) != 0 {
		t.Errorf("failed build left %v", names)
	}
	if _, err := shards.OpenDataset(ctx, store); !errors.Is(err, shards.ErrNoDataset) {
		t.Errorf("open after failed build: %v, want ErrNoDataset", err)
	}
}

func TestCancelledBuildLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	store := localStore(t)
	src := newSorted(40000)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	_, err := Build(ctx, src, store, Options{ShardBytes: 16 << 10, TempDir: t.TempDir()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the build, %d before", n, before)
	}
}

// TestBuildOptionBounds: Build accepts both dataset kinds and every skip
// and take that fit in the source, up to the last row, and refuses another
// kind, a skip of every row, a take past the end and a subset (take or
// skip) without the shuffle, each with its own message and nothing written.
func TestBuildOptionBounds(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts Options
		rows int64  // of the dataset built; 0 when refused
		want string // in the refusal
	}{
		{"kind real", Options{Kind: shards.KindReal}, 100, ""},
		{"kind generated", Options{Kind: shards.KindGenerated}, 100, ""},
		{"another kind", Options{Kind: "synthetic"}, 0, `kind "synthetic"`},
		{"skip all but one", Options{Skip: 99}, 1, ""},
		{"skip every row", Options{Skip: 100}, 0, "skip 100, take 0: the source holds 100 rows"},
		{"take the rest", Options{Skip: 10, Take: 90}, 90, ""},
		{"take one past the rest", Options{Skip: 10, Take: 91}, 0, "skip 10, take 91: the source holds 100 rows"},
		{"negative take", Options{Take: -1}, 0, "skip 0, take -1"},
		{"negative skip", Options{Skip: -1}, 0, "skip -1, take 0"},
		{"source order, every row", Options{NoShuffle: true}, 100, ""},
		{"take without the shuffle", Options{Take: 10, NoShuffle: true}, 0, "need the shuffle"},
		{"skip without the shuffle", Options{Skip: 10, NoShuffle: true}, 0, "need the shuffle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := localStore(t)
			m, err := Build(ctx, newSorted(100), store, tc.opts)
			if tc.want == "" {
				if err != nil || m.Rows != tc.rows || m.Kind != cmp.Or(tc.opts.Kind, shards.KindReal) {
					t.Fatalf("Build: %v, want a dataset of %d rows", err, tc.rows)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build: %v, want a refusal saying %q", err, tc.want)
			}
			if names, _ := store.List(ctx); len(names) != 0 {
				t.Errorf("the refused build left %v", names)
			}
		})
	}
}

// filesSource is a sortedSource that names input files, whose checksums a
// build records (their bytes are not its rows).
type filesSource struct {
	*sortedSource
	files []string
}

func (s filesSource) Info() Info {
	info := s.sortedSource.Info()
	info.Files = s.files
	return info
}

// TestBuildRecordsInputChecksums: the manifest records every input file's
// path, size and xxhash64, in order, read whole (a file of several read
// buffers, an empty one); an input that cannot be opened or read fails the
// build, naming it, and leaves nothing.
func TestBuildRecordsInputChecksums(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	big := bytes.Repeat([]byte("certmix input "), 200_000) // 2.8 MB: three 1 MiB reads
	files := map[string][]byte{"a.bin": big, "b.bin": []byte("seven b"), "empty.bin": nil}
	var paths []string
	var want []shards.InputFile
	for _, name := range []string{"b.bin", "a.bin", "empty.bin"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		want = append(want, shards.InputFile{Path: p, Bytes: int64(len(files[name])), XXH64: fmt.Sprintf("%016x", xxhash.Sum64(files[name]))})
	}
	m, err := Build(ctx, filesSource{newSorted(100), paths}, localStore(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Provenance.Inputs, want) {
		t.Errorf("inputs recorded %+v, want %+v", m.Provenance.Inputs, want)
	}
	for name, bad := range map[string]string{"missing": filepath.Join(dir, "missing.bin"), "a directory": dir} {
		store := localStore(t)
		_, err := Build(ctx, filesSource{newSorted(100), []string{paths[0], bad}}, store, Options{})
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s input: %v, want an error naming %s", name, err, bad)
		}
		if names, _ := store.List(ctx); len(names) != 0 {
			t.Errorf("%s input: the failed build left %v", name, names)
		}
	}
}
