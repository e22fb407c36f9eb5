package pipeline

import (
	"slices"
	"testing"
)

func TestThresholdSelectsExactlyN(t *testing.T) {
	for _, tc := range []struct {
		shuffle bool
		m, n    int64
	}{
		{true, 1000, 1}, {true, 1000, 999}, {true, 1000, 1000}, {true, 70000, 12345}, {false, 100, 7},
	} {
		o := newOrder(tc.shuffle, 42)
		th := o.threshold(tc.m, tc.n)
		keys := make([]uint64, tc.m)
		var got int64
		for id := range tc.m {
			keys[id] = o.key(id)
			if keys[id] <= th {
				got++
			}
		}
		if got != tc.n {
			t.Errorf("shuffle=%v m=%d n=%d: %d keys <= threshold", tc.shuffle, tc.m, tc.n, got)
		}
		slices.Sort(keys)
		if len(slices.Compact(keys)) != int(tc.m) {
			t.Errorf("shuffle=%v m=%d: keys tie", tc.shuffle, tc.m)
		}
	}
}

func TestOrderDependsOnSeed(t *testing.T) {
	a, b := newOrder(true, 1), newOrder(true, 2)
	same := 0
	for id := range int64(1000) {
		if (a.key(id) < a.key(id+1)) == (b.key(id) < b.key(id+1)) {
			same++
		}
	}
	if same < 400 || same > 600 {
		t.Errorf("seeds 1 and 2 agree on %d of 1000 adjacent comparisons, want about 500", same)
	}
}
