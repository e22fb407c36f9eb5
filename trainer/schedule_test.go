package trainer

import (
	"math"
	"testing"
)

// TestEpsRamp checks GloroNet's training eps at the ramp's ends and middle.
func TestEpsRamp(t *testing.T) {
	const E = 800
	eps := 36.0 / 255
	for _, tc := range []struct {
		e    int64
		want float64
	}{{0, 0.1 * eps}, {200, 0.8 * eps}, {400, 1.5 * eps}, {799, 1.5 * eps}} {
		if got := epsRamp(eps, tc.e, E); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("eps at epoch %d: %g, want %g", tc.e, got, tc.want)
		}
	}
}
