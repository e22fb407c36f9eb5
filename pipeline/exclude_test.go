package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A build with Exclude holds exactly the rows of the same build without it,
// less the excluded ids, in the same order, and its manifest records them.
func TestExcludeRemovesExactlyThoseIDs(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "exclude.txt")
	// Unsorted, with a duplicate and a comment, as a person might edit it.
	if err := os.WriteFile(file, []byte("# flagged by audit\n4017\n12\n\n999\n12\n5999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exclude, err := ReadExcludeIDs(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{12, 999, 4017, 5999}; !slices.Equal(exclude, want) {
		t.Fatalf("ReadExcludeIDs = %v, want %v", exclude, want)
	}
	for _, take := range []int64{0, 3000} {
		full, clean := localStore(t), localStore(t)
		opts := Options{Seed: 5, Take: take, ShardBytes: 64 << 10, BatchRows: 100, TempDir: t.TempDir()}
		if _, err := Build(ctx, newSorted(6000), full, opts); err != nil {
			t.Fatal(err)
		}
		opts.Exclude = exclude
		m, err := Build(ctx, newSorted(6000), clean, opts)
		if err != nil {
			t.Fatal(err)
		}
		_, all := readAll(t, full)
		mc, kept := readAll(t, clean)
		var want []int64
		for _, id := range all.IDs {
			if !slices.Contains(exclude, id) {
				want = append(want, id)
			}
		}
		if len(want) == len(all.IDs) {
			t.Fatalf("take %d: no excluded id was selected; the test checks nothing", take)
		}
		if !slices.Equal(kept.IDs, want) {
			t.Errorf("take %d: %d rows kept, want the %d rows of the full build without the excluded ids", take, len(kept.IDs), len(want))
		}
		if m.Rows != int64(len(want)) || mc.Rows != m.Rows {
			t.Errorf("take %d: manifest says %d rows, want %d", take, mc.Rows, len(want))
		}
		if !slices.Equal(mc.Provenance.Excluded, exclude) {
			t.Errorf("take %d: provenance records excluded %v, want %v", take, mc.Provenance.Excluded, exclude)
		}
	}
}

func TestExcludeBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("1\n2\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadExcludeIDs(bad); err == nil || !strings.Contains(err.Error(), "line 3") || !errors.Is(err, ErrFormat) {
		t.Errorf("bad line: %v, want an ErrFormat naming line 3", err)
	}
	if _, err := ReadExcludeIDs(filepath.Join(dir, "missing.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	_, err := Build(context.Background(), newSorted(100), localStore(t), Options{Exclude: []int64{5, 100}})
	if err == nil || !strings.Contains(err.Error(), "id 100 outside") {
		t.Errorf("id beyond the source: %v", err)
	}
}
