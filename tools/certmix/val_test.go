package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"certmix/internal/testsets"
	"certmix/rundir"
	"certmix/shards"
	"certmix/trainer"
)

// TestHoldOutRecordsAndChecksItsSplit: a fresh run records its validation
// split in val.json; a resumed run accepts the same split and refuses
// another seed or size, and a run directory without val.json.
func TestHoldOutRecordsAndChecksItsSplit(t *testing.T) {
	ctx := context.Background()
	d := testsets.Local(t, 120, shards.Shape{Height: 28, Width: 28, Channels: 1, Classes: 10}, 64, 16, 0)
	out := filepath.Join(t.TempDir(), "run")
	cfg := trainer.Config{Channels: 1, ImageSize: 28}
	v, err := holdOut(ctx, d, "real", 12, 4, cfg, out, false)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := rundir.ReadVal(out)
	if err != nil || !rec.Same(v.Record) || len(rec.IDs) != 12 || rec.Dataset != "real" {
		t.Fatalf("val.json %+v (%v), want %+v", rec, err, v.Record)
	}
	if _, err := holdOut(ctx, d, "real", 12, 4, cfg, out, true); err != nil {
		t.Errorf("resume with the same split: %v", err)
	}
	for _, tc := range []struct {
		n    int
		seed uint64
	}{{12, 5}, {13, 4}} {
		if _, err := holdOut(ctx, d, "real", tc.n, tc.seed, cfg, out, true); err == nil || !strings.Contains(err.Error(), "other images") {
			t.Errorf("resume with --val %d --val-seed %d: err = %v", tc.n, tc.seed, err)
		}
	}
	if _, err := holdOut(ctx, d, "real", 12, 4, cfg, t.TempDir(), true); err == nil {
		t.Error("resume without val.json: no error")
	}
}
