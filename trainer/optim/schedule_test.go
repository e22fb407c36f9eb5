package optim

import (
	"math"
	"testing"
)

func TestSchedules(t *testing.T) {
	const S, E = 100, 800 // steps per epoch, epochs
	for _, tc := range []struct {
		i    int64
		want float64
	}{
		{1, 1e-3 / (20 * S)}, {10 * S, 0.5e-3}, {20 * S, 1e-3}, {20*S + (E-20)*S/2, 0.5e-3}, {E * S, 1e-8},
	} {
		if got := WarmupCosine(1e-3, tc.i, 20*S, E*S); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("lr at %d: %g, want %g", tc.i, got, tc.want)
		}
	}
}

// TestLearningRates checks each schedule at its breakpoints: the cosine of
// the l_inf models (0-based iterations, as the authors' per-iteration
// schedule) and LOT's multistep with milestones at ⌊T/2⌋ and ⌊3T/4⌋.
func TestLearningRates(t *testing.T) {
	const lr0, total = 0.1, 15
	for _, tc := range []struct {
		schedule string
		i        int64
		want     float64
	}{
		{"cosine", 1, 0.1}, {"cosine", 8, 0.05 * (1 + math.Cos(math.Pi*7/15))}, {"cosine", 15, 0.05 * (1 + math.Cos(math.Pi*14/15))},
		{"multistep", 1, 0.1}, {"multistep", 7, 0.1}, {"multistep", 8, 0.01}, {"multistep", 11, 0.01}, {"multistep", 12, 0.001}, {"multistep", 15, 0.001},
	} {
		if got := LearningRate(tc.schedule, lr0, tc.i, 0, total); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("%s at step %d: %g, want %g", tc.schedule, tc.i, got, tc.want)
		}
	}
}
