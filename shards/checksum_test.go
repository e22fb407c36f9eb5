package shards

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
