package trainer

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
	eps := 36.0 / 255
	for _, tc := range []struct {
		e    int64
		want float64
	}{{0, 0.1 * eps}, {200, 0.8 * eps}, {400, 1.5 * eps}, {799, 1.5 * eps}} {
		if got := EpsRamp(eps, tc.e, E); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("eps at epoch %d: %g, want %g", tc.e, got, tc.want)
		}
	}
}
