package main

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"certmix/internal/npy"
	"certmix/shards"
	"certmix/trainer"
	"certmix/trainer/checkpoint"
)

// TestImportKeepsTheAuthorsModel: the authors' weights, imported into a
// checkpoint and loaded back, give their logits.
func TestImportKeepsTheAuthorsModel(t *testing.T) {
	const ref = "../../testdata/liresnet_ref_L2W16.npz"
	out := filepath.Join(t.TempDir(), "ck.safetensors")
	if err := runImport(context.Background(), []string{"--npz", ref, "--prefix", "state/", "--out", out}); err != nil {
		t.Fatal(err)
	}
	store, _ := shards.NewLocal(filepath.Dir(out))
	ck, err := checkpoint.Read(context.Background(), store, filepath.Base(out))
	if err != nil {
		t.Fatal(err)
	}
	tr, _, err := trainer.Load(ck)
	if err != nil {
		t.Fatal(err)
	}
	arrays, _ := npy.LoadNPZ(ref)
	logits := make([]float32, 80)
	if err := tr.Model.Logits(logits, arrays["input"].Float32(), 8); err != nil {
		t.Fatal(err)
	}
	for i, want := range arrays["logits"].Data {
		if math.Abs(float64(logits[i])-want) > 1e-4*max(1, math.Abs(want)) {
			t.Fatalf("logit %d: %v, the authors' %v", i, logits[i], want)
		}
	}
}
