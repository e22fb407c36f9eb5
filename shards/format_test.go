package shards

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testRows(n int, shape Shape, fill func(i int) byte) *Rows {
	r := &Rows{}
	ib := shape.ImageBytes()
	for i := range n {
		r.IDs = append(r.IDs, int64(1000+i))
		r.Labels = append(r.Labels, int16(i%shape.Classes))
		if shape.CoarseClasses > 0 {
			r.Coarse = append(r.Coarse, int16(i%shape.CoarseClasses))
		}
		for j := range ib {
			r.Images = append(r.Images, fill(i*ib+j))
		}
	}
	return r
}

// noise is incompressible: the bytes of a keyed mixer of i.
func noise(i int) byte {
	z := uint64(i)*0x9e3779b97f4a7c15 + 1
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return byte(z ^ (z >> 31))
}

// writeDataset stores rows as one shard and a manifest.
func writeDataset(t *testing.T, store Store, shape Shape, codec string, rows *Rows) *Manifest {
	t.Helper()
	ctx := context.Background()
	info, err := WriteShard(ctx, store, "shard-000000.arrow", shape, codec, 100, rows)
	if err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Name: "t", Kind: KindGenerated, Split: "train", Shape: shape, Codec: codec,
		Rows: int64(rows.Len()), ClassCounts: make([]int64, shape.Classes), Shards: []ShardInfo{info},
		Provenance: Provenance{SourceRows: 5000}}
	for _, l := range rows.Labels {
		m.ClassCounts[l]++
	}
	if err := WriteManifest(ctx, store, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func newLocal(t *testing.T) Store {
	s, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestShardRoundTripAndRangeReads(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		codec string
		shape Shape
	}{
		{CodecZstd, Shape{Height: 4, Width: 4, Channels: 3, Classes: 10}},
		{CodecLZ4, Shape{Height: 4, Width: 4, Channels: 3, Classes: 100, CoarseClasses: 20}},
		{CodecNone, Shape{Height: 28, Width: 28, Channels: 1, Classes: 10}},
	} {
		t.Run(tc.codec, func(t *testing.T) {
			store := newLocal(t)
			rows := testRows(350, tc.shape, func(i int) byte { return byte(i / 7) })
			m := writeDataset(t, store, tc.shape, tc.codec, rows)
			if got := len(m.Shards[0].Batches); got != 4 {
				t.Fatalf("%d batches of 100 rows for 350 rows", got)
			}
			d, err := OpenDataset(ctx, store)
			if err != nil {
				t.Fatal(err)
			}
			var whole Rows
			if err := d.ReadShard(ctx, 0, &whole); err != nil {
				t.Fatal(err)
			}
			var byBatch Rows
			for j := range m.Shards[0].Batches {
				if err := d.ReadBatch(ctx, 0, j, &byBatch); err != nil {
					t.Fatal(err)
				}
			}
			for _, got := range []*Rows{&whole, &byBatch} {
				if !equalRows(got, rows) {
					t.Fatal("rows read back differ from rows written")
				}
			}
			if err := Verify(ctx, d, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func equalRows(a, b *Rows) bool {
	return bytes.Equal(a.Images, b.Images) && slicesEq(a.IDs, b.IDs) && slicesEq(a.Labels, b.Labels) && slicesEq(a.Coarse, b.Coarse)
}

func slicesEq[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestIncompressibleShardsAreStoredRaw(t *testing.T) {
	shape := Shape{Height: 32, Width: 32, Channels: 3, Classes: 10}
	for _, tc := range []struct {
		fill func(int) byte
		want string
	}{{noise, CodecNone}, {func(i int) byte { return byte(i / 3072) }, CodecZstd}} {
		m := writeDataset(t, newLocal(t), shape, CodecZstd, testRows(200, shape, tc.fill))
		if m.Shards[0].Codec != tc.want {
			t.Errorf("shard codec %q, want %q", m.Shards[0].Codec, tc.want)
		}
	}
}

// TestEveryReadChecksTheBytes: a flipped byte anywhere in a shard is caught
// by ReadShard, by the range read of the batch that holds it, and by
// Verify, which names the shard.
func TestEveryReadChecksTheBytes(t *testing.T) {
	ctx := context.Background()
	shape := Shape{Height: 8, Width: 8, Channels: 3, Classes: 10}
	dir := t.TempDir()
	store, _ := NewLocal(dir)
	m := writeDataset(t, store, shape, CodecZstd, testRows(300, shape, noise))
	s := m.Shards[0]
	path := filepath.Join(dir, s.Name)
	orig, _ := os.ReadFile(path)
	for _, off := range []int64{3, s.Batches[0].Offset - 2, s.Batches[1].Offset + 100, s.Bytes - 5} {
		bad := bytes.Clone(orig)
		bad[off] ^= 0x40
		os.WriteFile(path, bad, 0o644)
		d, err := OpenDataset(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		var r Rows
		if err := d.ReadShard(ctx, 0, &r); !errors.Is(err, ErrChecksum) {
			t.Errorf("byte %d flipped: ReadShard gave %v, want ErrChecksum", off, err)
		}
		for j, b := range s.Batches {
			err := d.ReadBatch(ctx, 0, j, &r)
			inside := off >= b.Offset && off < b.Offset+b.Length
			if inside != errors.Is(err, ErrChecksum) {
				t.Errorf("byte %d flipped: ReadBatch(%d) gave %v", off, j, err)
			}
		}
		err = Verify(ctx, d, nil)
		var se *ShardError
		if !errors.As(err, &se) || se.Shard != s.Name || !strings.Contains(err.Error(), s.Name) {
			t.Errorf("byte %d flipped: Verify gave %v", off, err)
		}
	}
}

func TestManifestRefusals(t *testing.T) {
	ctx := context.Background()
	shape := Shape{Height: 8, Width: 8, Channels: 3, Classes: 10}
	store := newLocal(t)
	if _, err := OpenDataset(ctx, store); !errors.Is(err, ErrNoDataset) {
		t.Fatalf("empty store: %v, want ErrNoDataset", err)
	}
	good := writeDataset(t, store, shape, CodecZstd, testRows(50, shape, noise))
	for _, tc := range []struct {
		name   string
		edit   func(m *Manifest)
		target error
	}{
		{"parent dir", func(m *Manifest) { m.Shards[0].Name = "../other/shard.arrow" }, ErrFormat},
		{"absolute", func(m *Manifest) { m.Shards[0].Name = "/etc/passwd" }, ErrFormat},
		{"other bucket", func(m *Manifest) { m.Shards[0].Name = "s3://evil/x.arrow" }, ErrFormat},
		{"newer version", func(m *Manifest) { m.Version = FormatVersion + 1 }, ErrVersion},
		{"huge image", func(m *Manifest) { m.Height = 1 << 20 }, ErrFormat},
		{"class counts", func(m *Manifest) { m.ClassCounts[0]++ }, ErrFormat},
		{"rows", func(m *Manifest) { m.Shards[0].Rows++ }, ErrFormat},
		{"batch outside", func(m *Manifest) { m.Shards[0].Batches[0].Length = 1 << 40 }, ErrFormat},
		{"offset overflow", func(m *Manifest) { m.Shards[0].Batches[0].Offset, m.Shards[0].Batches[0].Length = 1<<62, 1<<62 }, ErrFormat},
		{"huge rows", func(m *Manifest) { m.Shards[0].Batches[0].Rows = 1 << 50 }, ErrFormat},
		{"no rows", func(m *Manifest) { m.Rows, m.Shards, m.ClassCounts = 0, nil, make([]int64, 10) }, ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := *good
			m.Shards = []ShardInfo{good.Shards[0]}
			m.Shards[0].Batches = append([]BatchInfo(nil), good.Shards[0].Batches...)
			m.ClassCounts = append([]int64(nil), good.ClassCounts...)
			tc.edit(&m)
			data, _ := m.Marshal()
			if _, err := parseManifest(data, "test"); !errors.Is(err, tc.target) {
				t.Errorf("got %v, want %v", err, tc.target)
			}
		})
	}
	// A newer version with fields this version does not know.
	data := []byte(`{"format":"certmix-shards","version":9,"future":true}`)
	if _, err := parseManifest(data, "test"); !errors.Is(err, ErrVersion) {
		t.Errorf("newer manifest with new fields: %v, want ErrVersion", err)
	}
}

// fuzzScratch returns a directory for the stores a fuzz target writes:
// under /dev/shm when there is one (fsync on a busy disk stalls fuzzing
// for seconds at a time), else a temporary directory. It is removed at the
// end.
func fuzzScratch(f *testing.F) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "certmix-fuzz-"); err == nil {
			f.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return f.TempDir()
}

// FuzzManifest: whatever the parser accepts is valid, names only shards
// inside the dataset, and round-trips: written back (Marshal) and parsed
// again, it is the same manifest, written the same bytes. Any JSON decoded
// without the parser's checks is stored by WriteManifest only if it is
// valid, and then ReadManifest returns it unchanged from a real local store;
// a refused one leaves nothing in the store.
func FuzzManifest(f *testing.F) {
	shape := Shape{Height: 2, Width: 2, Channels: 1, Classes: 2}
	m := &Manifest{Format: formatName, Version: FormatVersion, Name: "t", Kind: KindReal, Split: "train", Shape: shape,
		Layout: Layout, Codec: CodecNone, Rows: 1, ClassCounts: []int64{1, 0},
		Shards: []ShardInfo{{Name: "a.arrow", Rows: 1, Bytes: 100, XXH64: "0123456789abcdef", Codec: CodecNone,
			Batches: []BatchInfo{{Offset: 8, Length: 50, Rows: 1, XXH64: "0123456789abcdef"}}}}}
	good, _ := m.Marshal()
	f.Add(good)
	f.Add([]byte(`{"format":"certmix-shards","version":2}`))
	f.Add([]byte(`{"shards":[{"name":"../x"}]}`))
	ctx := context.Background()
	scratch := fuzzScratch(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := parseManifest(data, "fuzz"); err == nil {
			if err := m.Validate(); err != nil {
				t.Fatalf("accepted an invalid manifest: %v", err)
			}
			for _, s := range m.Shards {
				if checkName(s.Name) != nil {
					t.Fatalf("accepted shard name %q", s.Name)
				}
			}
			out, err := m.Marshal()
			if err != nil {
				t.Fatalf("Marshal of an accepted manifest: %v", err)
			}
			m2, err := parseManifest(out, "fuzz, written back")
			if err != nil {
				t.Fatalf("the parser refuses what Marshal wrote of a manifest it accepted: %v\n%s", err, out)
			}
			if out2, _ := m2.Marshal(); !bytes.Equal(out, out2) {
				t.Fatalf("parse(write(m)) != m:\n%s\nthen\n%s", out, out2)
			}
		}
		var raw Manifest
		if json.Unmarshal(data, &raw) != nil {
			return
		}
		want, err := raw.Marshal()
		if err != nil {
			return
		}
		dir, err := os.MkdirTemp(scratch, "ds")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		store, err := NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		werr := WriteManifest(ctx, store, &raw)
		names, err := store.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if werr != nil {
			if len(names) != 0 {
				t.Fatalf("WriteManifest refused (%v) but left %v", werr, names)
			}
			return
		}
		if raw.Validate() != nil {
			t.Fatalf("WriteManifest stored an invalid manifest")
		}
		got, err := ReadManifest(ctx, store)
		if err != nil {
			t.Fatalf("ReadManifest refuses what WriteManifest stored: %v", err)
		}
		var norm Manifest
		json.Unmarshal(want, &norm)
		norm.Format, norm.Version, norm.Layout = formatName, FormatVersion, Layout // what WriteManifest sets
		want, _ = norm.Marshal()
		if out, _ := got.Marshal(); !bytes.Equal(out, want) {
			t.Fatalf("read back a different manifest:\n%s\nwrote\n%s", out, want)
		}
	})
}

// TestReviewRegressions: a cancelled first read does not break later
// range reads; Verify checks each record batch's own checksum, and works
// when the source's size is unknown.
func TestReviewRegressions(t *testing.T) {
	shape := Shape{Height: 4, Width: 4, Channels: 1, Classes: 10}
	dir := t.TempDir()
	store, _ := NewLocal(dir)
	m := writeDataset(t, store, shape, CodecNone, testRows(300, shape, noise))
	d, err := OpenDataset(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	var r Rows
	if err := d.ReadBatch(cancelled, 0, 1, &r); err == nil {
		t.Fatal("read with a cancelled context succeeded")
	}
	r = Rows{}
	if err := d.ReadBatch(context.Background(), 0, 1, &r); err != nil {
		t.Fatalf("a read after a cancelled one: %v", err)
	}

	bad := *m
	bad.Shards = []ShardInfo{m.Shards[0]}
	bad.Shards[0].Batches = append([]BatchInfo(nil), m.Shards[0].Batches...)
	bad.Shards[0].Batches[1].XXH64 = "0000000000000000"
	bad.Provenance.SourceRows = 0
	if err := WriteManifest(context.Background(), store, &bad); err != nil {
		t.Fatal(err)
	}
	d, _ = OpenDataset(context.Background(), store)
	if err := Verify(context.Background(), d, nil); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "batch 1") {
		t.Fatalf("Verify with a wrong batch checksum: %v", err)
	}
	bad.Shards[0].Batches[1].XXH64 = m.Shards[0].Batches[1].XXH64
	WriteManifest(context.Background(), store, &bad)
	d, _ = OpenDataset(context.Background(), store)
	if err := Verify(context.Background(), d, nil); err != nil {
		t.Fatalf("Verify with the source's size unknown: %v", err)
	}
}
