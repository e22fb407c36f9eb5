package sampler

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestHoldout: the held-out rows are n distinct rows, the same for a
// dataset and seed whatever else, and another seed or dataset gives others.
func TestHoldout(t *testing.T) {
	real, gen := sets(t)
	a, err := Holdout(real.Manifest, 10, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Holdout(real.Manifest, 10, 7)
	c, _ := Holdout(real.Manifest, 10, 8)
	d, _ := Holdout(gen.Manifest, 10, 7)
	if len(a) != 10 || !slices.IsSorted(a) || len(slices.Compact(slices.Clone(a))) != 10 || a[0] < 0 || a[9] >= 100 {
		t.Fatalf("held out %v", a)
	}
	if !slices.Equal(a, b) || slices.Equal(a, c) || slices.Equal(a, d) {
		t.Errorf("holdouts: seed 7 %v and again %v, seed 8 %v, other dataset %v", a, b, c, d)
	}
	for _, n := range []int{-1, 100} {
		if _, err := Holdout(real.Manifest, n, 7); err == nil {
			t.Errorf("hold out %d of 100: no error", n)
		}
	}
}

// TestExclude: a source's excluded rows are never drawn; an epoch of the
// real set without replacement draws every other row exactly once; every
// batch keeps its exact quotas; the stream is deterministic, resumes
// exactly, and refuses a resume with another split.
func TestExclude(t *testing.T) {
	real, gen := sets(t)
	held, err := Holdout(real.Manifest, 10, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Real images only: 90 rows left, batch 10, 9 steps per epoch.
	cfg := Config{Sources: []Source{{Dataset: real, Fraction: 1, Exclude: held}}, Batch: 10, Seed: 42}
	batches := collect(t, cfg, nil, 18)
	for epoch := range 2 {
		count := map[int64]int{}
		for _, b := range batches[9*epoch : 9*epoch+9] {
			if b.Epoch != int64(epoch) {
				t.Fatalf("step %d in epoch %d, want %d: the epoch must count the 90 rows left", b.Step, b.Epoch, epoch)
			}
			for _, id := range b.IDs {
				count[id]++
			}
		}
		for id := range int64(100) {
			want := 1
			if slices.Contains(held, id) { // ids are row indices in this set
				want = 0
			}
			if count[id] != want {
				t.Errorf("epoch %d: row %d drawn %d times, want %d", epoch, id, count[id], want)
			}
		}
	}

	// A mix: 5 real and 5 generated images in every batch, never a held-out one.
	mix := mixConfig(real, gen, 10, 0.5)
	mix.Sources[0].Exclude = held
	all := collect(t, mix, nil, 30)
	for _, b := range all {
		n := 0
		for i, s := range b.Sources {
			if s == 0 {
				n++
				if slices.Contains(held, b.IDs[i]) {
					t.Fatalf("step %d drew held-out row %d", b.Step, b.IDs[i])
				}
			}
		}
		if n != 5 {
			t.Fatalf("step %d: %d real images, want 5", b.Step, n)
		}
	}
	if err := equalBatches(all, collect(t, mix, nil, 30)); err != nil {
		t.Errorf("not deterministic: %v", err)
	}
	// Resume at step 12 from a state taken there.
	ctx := context.Background()
	it, err := New(ctx, mix, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 12 {
		if _, err := it.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st := it.State()
	it.Close()
	if err := equalBatches(all[12:], collect(t, mix, &st, 18)); err != nil {
		t.Errorf("resumed stream differs: %v", err)
	}
	other := mix
	other.Sources = slices.Clone(mix.Sources)
	other.Sources[0].Exclude = held[1:]
	if _, err := New(ctx, other, &st); err == nil || !strings.Contains(err.Error(), "held-out split") {
		t.Errorf("resume with another split: err = %v", err)
	}
	for _, bad := range [][]int64{{100}, {3, 3}, {-1}} {
		c := cfg
		c.Sources = []Source{{Dataset: real, Fraction: 1, Exclude: bad}}
		if _, err := New(ctx, c, nil); err == nil {
			t.Errorf("exclude %v: no error", bad)
		}
	}
}
