package trainer

import (
	"context"
	"slices"
	"testing"

	"certmix/internal/testsets"
	"certmix/rundir"
	"certmix/shards"
)

// TestHoldOut: the validation split reads exactly the rows the sampler
// holds out, with their ids, labels and pixels as model inputs; the same
// dataset and seed give the same split; the evaluator measures it and the
// selection accuracy is then the split's.
func TestHoldOut(t *testing.T) {
	ctx := context.Background()
	shape := shards.Shape{Height: 28, Width: 28, Channels: 1, Classes: 10}
	d := testsets.Local(t, 200, shape, 64, 16, 0) // ids are row indices
	valCfg := Config{Channels: 1, ImageSize: 28} // GloroNet: padded to 32x32
	v, err := HoldOut(ctx, d, "real-url", 20, 5, valCfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := v.Record
	if len(rec.Rows) != 20 || !slices.IsSorted(rec.Rows) || !slices.Equal(rec.IDs, rec.Rows) || rec.Seed != 5 || rec.Dataset != "real-url" || rec.Manifest == "" {
		t.Fatalf("record %+v", rec)
	}
	want := make([]float32, 1024)
	for i, id := range rec.IDs {
		if v.Labels[i] != int(id%10) {
			t.Errorf("row %d: label %d, want %d", id, v.Labels[i], id%10)
		}
		if err := toInput(want, testsets.Pixels(id, shape.ImageBytes()), 1, 28, 28, 1, 1); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(v.X[i*1024:(i+1)*1024], want) {
			t.Errorf("row %d: the input is not the image's", id)
		}
	}
	again, _ := HoldOut(ctx, d, "elsewhere", 20, 5, valCfg)
	if !again.Record.Same(rec) {
		t.Errorf("the same dataset and seed held out %v, then %v", rec.Rows, again.Record.Rows)
	}
	if other, _ := HoldOut(ctx, d, "real-url", 20, 6, valCfg); other.Record.Same(rec) {
		t.Error("another seed held out the same rows")
	}

	cfg := tinyConfig()
	cfg.Classes = 10
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var e rundir.Epoch
	if err := (DatasetEvaluator{Real: d, N: 16, Val: v}).Evaluate(ctx, tr, &e); err != nil {
		t.Fatal(err)
	}
	clean, cert, err := v.Evaluate(tr.Model, cfg.Eps)
	if err != nil || e.ValClean == nil || e.ValCertified == nil || *e.ValClean != clean || *e.ValCertified != cert {
		t.Fatalf("epoch %+v, split %v %v (%v)", e, clean, cert, err)
	}
	if sel, ok := selection(e); !ok || sel != cert {
		t.Errorf("selection %v, want the split's certified accuracy %v", sel, cert)
	}
}
