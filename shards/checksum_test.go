package shards

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// TestChecksumErrorsNameTheBytes: a checksum failure names the shard, the
// record batch and its exact byte range, whichever read finds it: a range
// read of a damaged batch, a whole-shard read of a shard whose manifest
// gives one batch a wrong checksum (the shard's own checksum intact).
func TestChecksumErrorsNameTheBytes(t *testing.T) {
	ctx := context.Background()
	shape := Shape{Height: 8, Width: 8, Channels: 3, Classes: 10}
	dir := t.TempDir()
	store, _ := NewLocal(dir)
	m := writeDataset(t, store, shape, CodecZstd, testRows(300, shape, noise))
	s := m.Shards[0]
	if len(s.Batches) < 3 {
		t.Fatalf("%d record batches, want several", len(s.Batches))
	}
	b := s.Batches[2]
	span := fmt.Sprintf("bytes %d..%d", b.Offset, b.Offset+b.Length)

	// A flipped bit inside batch 2, read by range.
	path := filepath.Join(dir, s.Name)
	orig, _ := os.ReadFile(path)
	bad := bytes.Clone(orig)
	bad[b.Offset+b.Length/2] ^= 1
	os.WriteFile(path, bad, 0o644)
	d, err := OpenDataset(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	var r Rows
	err = d.ReadBatch(ctx, 0, 2, &r)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), s.Name) || !strings.Contains(err.Error(), span) {
		t.Errorf("range read of the damaged batch: %v, want a checksum error naming %s and %s", err, s.Name, span)
	}
	os.WriteFile(path, orig, 0o644)

	// The shard intact, the manifest wrong about batch 2 alone.
	m.Shards[0].Batches[2].XXH64 = "0000000000000000"
	if err := WriteManifest(ctx, store, m); err != nil {
		t.Fatal(err)
	}
	d, err = OpenDataset(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	r = Rows{}
	err = d.ReadShard(ctx, 0, &r)
	want := fmt.Sprintf("batch 2: %s", span)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), s.Name) || !strings.Contains(err.Error(), want) {
		t.Errorf("whole-shard read, batch 2's checksum wrong in the manifest: %v, want a checksum error naming %s and %q", err, s.Name, want)
	}
	if err := Verify(ctx, d, nil); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), want) {
		t.Errorf("Verify: %v, want the same error", err)
	}
}

// TestCraftedBatchIsRefused: a shard whose record batch framing is wrong
// but whose checksums match (a crafted dataset, not rot) is refused with a
// format error by range reads, whole-shard reads and Verify: never a panic,
// never rows. The framing: the continuation marker, then the metadata
// length, which must leave room for at least 4 bytes of metadata and fit in
// the batch.
func TestCraftedBatchIsRefused(t *testing.T) {
	ctx := context.Background()
	shape := Shape{Height: 8, Width: 8, Channels: 3, Classes: 10}
	for name, craft := range map[string]func(b []byte){
		"no continuation marker":      func(b []byte) { b[0] = 0 },
		"metadata longer than batch":  func(b []byte) { binary.LittleEndian.PutUint32(b[4:], uint32(len(b))) },
		"metadata of 3 bytes":         func(b []byte) { binary.LittleEndian.PutUint32(b[4:], 3) },
		"metadata to the last byte+1": func(b []byte) { binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-7)) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			store, _ := NewLocal(dir)
			m := writeDataset(t, store, shape, CodecNone, testRows(300, shape, noise))
			s := &m.Shards[0]
			path := filepath.Join(dir, s.Name)
			data, _ := os.ReadFile(path)
			b := &s.Batches[1]
			craft(data[b.Offset : b.Offset+b.Length])
			os.WriteFile(path, data, 0o644)
			b.XXH64, s.XXH64 = hex64(xxhash.Sum64(data[b.Offset:b.Offset+b.Length])), hex64(xxhash.Sum64(data))
			if err := WriteManifest(ctx, store, m); err != nil {
				t.Fatal(err)
			}
			d, err := OpenDataset(ctx, store)
			if err != nil {
				t.Fatal(err)
			}
			var r Rows
			if err := d.ReadBatch(ctx, 0, 1, &r); !errors.Is(err, ErrFormat) || r.Len() != 0 {
				t.Errorf("ReadBatch: %v and %d rows, want a format error and none", err, r.Len())
			}
			if err := d.ReadBatch(ctx, 0, 0, &r); err != nil {
				t.Errorf("ReadBatch of the intact batch before it: %v", err)
			}
			if err := Verify(ctx, d, nil); err == nil {
				t.Errorf("Verify accepted the crafted shard")
			}
		})
	}
}

// TestTruncatedShardSaysSo: a shard cut short is refused before its bytes
// are hashed, with its size and the size needed, by whole-shard and range
// reads alike.
func TestTruncatedShardSaysSo(t *testing.T) {
	ctx := context.Background()
	shape := Shape{Height: 8, Width: 8, Channels: 3, Classes: 10}
	dir := t.TempDir()
	store, _ := NewLocal(dir)
	m := writeDataset(t, store, shape, CodecNone, testRows(300, shape, noise))
	s := m.Shards[0]
	last := s.Batches[len(s.Batches)-1]
	cut := last.Offset + last.Length/2 // inside the last record batch
	path := filepath.Join(dir, s.Name)
	if err := os.Truncate(path, cut); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDataset(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	var r Rows
	for what, err := range map[string]error{
		"ReadShard": d.ReadShard(ctx, 0, &r),
		"ReadBatch": d.ReadBatch(ctx, 0, len(s.Batches)-1, &r),
	} {
		var need int64 = s.Bytes
		if what == "ReadBatch" {
			need = last.Offset + last.Length
		}
		want := fmt.Sprintf("%d bytes, need %d (truncated?)", cut, need)
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s of a shard cut to %d bytes: %v, want %q", what, cut, err, want)
		}
	}
}

// TestVerifyIDBounds: Verify accepts ids from 0 to the source's row count
// minus one, and refuses a dataset whose ids reach the row count.
func TestVerifyIDBounds(t *testing.T) {
	ctx := context.Background()
	shape := Shape{Height: 2, Width: 2, Channels: 1, Classes: 10}
	for _, tc := range []struct {
		first int64 // ids first..first+99 of a source of 100 rows
		ok    bool
	}{{0, true}, {1, false}} {
		rows := testRows(100, shape, noise)
		for i := range rows.IDs {
			rows.IDs[i] = tc.first + int64(i)
		}
		store := newLocal(t)
		m := writeDataset(t, store, shape, CodecNone, rows)
		m.Provenance.SourceRows = 100
		if err := WriteManifest(ctx, store, m); err != nil {
			t.Fatal(err)
		}
		d, err := OpenDataset(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(ctx, d, nil); (err == nil) != tc.ok {
			t.Errorf("ids %d..%d of a source of 100 rows: Verify says %v", tc.first, tc.first+99, err)
		}
	}
}

// TestVerifyRefusesDuplicateIDs: an image whose id appears twice in a
// dataset is refused, wherever the two ids sit in the bitmap's words (the
// same word, neighbouring bits; and across words).
func TestVerifyRefusesDuplicateIDs(t *testing.T) {
	ctx := context.Background()
	shape := Shape{Height: 2, Width: 2, Channels: 1, Classes: 10}
	for _, dup := range []struct{ at, copies int }{{5, 4}, {70, 69}, {99, 3}} {
		rows := testRows(100, shape, noise)
		for i := range rows.IDs {
			rows.IDs[i] = int64(i)
		}
		rows.IDs[dup.at] = int64(dup.copies) // id dup.copies twice, id dup.at missing
		store := newLocal(t)
		m := writeDataset(t, store, shape, CodecNone, rows)
		m.Provenance.SourceRows = 100
		if err := WriteManifest(ctx, store, m); err != nil {
			t.Fatal(err)
		}
		d, err := OpenDataset(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(ctx, d, nil); err == nil || !strings.Contains(err.Error(), "twice") {
			t.Errorf("id %d at rows %d and %d: Verify says %v, want it refused as appearing twice", dup.copies, dup.copies, dup.at, err)
		}
	}
}

// TestVerifyLabelBounds: Verify accepts labels and coarse labels up to the
// class count minus one, and refuses a shard whose label or coarse label
// equals the class count (a crafted shard: the writer does not check
// labels), naming the row and the label.
func TestVerifyLabelBounds(t *testing.T) {
	ctx := context.Background()
	shape := Shape{Height: 2, Width: 2, Channels: 1, Classes: 10, CoarseClasses: 5}
	for _, tc := range []struct {
		name          string
		label, coarse int16 // of row 7
		want          string
	}{
		{"last label and coarse label", 9, 4, ""},
		{"label = classes", 10, 4, "label 10 outside [0,10)"},
		{"coarse label = coarse classes", 9, 5, "coarse label 5 outside [0,5)"},
		{"negative label", -1, 4, "label -1 outside [0,10)"},
		{"negative coarse label", 9, -1, "coarse label -1 outside [0,5)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := testRows(20, shape, noise)
			rows.Labels[7], rows.Coarse[7] = tc.label, tc.coarse
			store := newLocal(t)
			info, err := WriteShard(ctx, store, "shard-000000.arrow", shape, CodecNone, 100, rows)
			if err != nil {
				t.Fatal(err)
			}
			m := &Manifest{Name: "t", Kind: KindGenerated, Split: "train", Shape: shape, Codec: CodecNone,
				Rows: int64(rows.Len()), ClassCounts: make([]int64, shape.Classes), Shards: []ShardInfo{info},
				Provenance: Provenance{SourceRows: 5000}}
			for _, l := range rows.Labels {
				m.ClassCounts[min(max(l, 0), 9)]++ // counts that add up: the labels are what is wrong
			}
			if err := WriteManifest(ctx, store, m); err != nil {
				t.Fatal(err)
			}
			d, err := OpenDataset(ctx, store)
			if err != nil {
				t.Fatal(err)
			}
			err = Verify(ctx, d, nil)
			if tc.want == "" {
				if err != nil {
					t.Errorf("Verify: %v, want no error", err)
				}
				return
			}
			if want := "row 7 (id 1007): " + tc.want; !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), want) {
				t.Errorf("Verify: %v, want a format error saying %q", err, want)
			}
		})
	}
}
