package report

import (
	"math/rand/v2"
	"testing"
)

// TestPredictionCoverage simulates sweeps shaped like the paper's grid (4
// base configurations × 3 amounts × 3 seeds) in which the points of one
// base share its errors: the base model's own deviation from the line and,
// per seed, the base run's noise, which enters every paired gain of that
// seed. Over 2,000 sweeps the 95% prediction interval for the gain of a
// new base configuration (its 3 amounts × 3 seeds, averaged as the fit's
// per-base points are) must hold it 95% ± 3% of the time. Least squares on
// the 12 points as if independent, predicting the same average, is logged
// alongside: its coverage is off the nominal level (0.85 in the first
// case, 0.98 in the third), which is what this test would catch.
func TestPredictionCoverage(t *testing.T) {
	const (
		sweeps, configs, amounts, seeds = 2000, 4, 3, 3
		alpha, beta                     = 0.5, 0.3
	)
	for _, tc := range []struct {
		name string
		// sdBase is the base model's deviation from the line, sdAmount the
		// setting's, sdSeed the noise of one run (base or generated).
		sdBase, sdAmount, sdSeed float64
	}{
		{"base deviations dominate", 0.8, 0.3, 0.5},
		{"seed noise only", 0, 0, 0.6},
		{"amounts spread", 0.3, 0.8, 0.4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(16, 2026))
			xs := []float64{2, 4, 6, 8}
			// point is the mean over seeds of paired gains of one amount;
			// base holds the base runs' noise per seed, shared by amounts.
			point := func(x, u float64, base []float64) float64 {
				v := tc.sdAmount * rng.NormFloat64()
				var s float64
				for _, b := range base {
					s += alpha + beta*x + u + v + tc.sdSeed*rng.NormFloat64() - b
				}
				return s / float64(len(base))
			}
			baseNoise := func() []float64 {
				b := make([]float64, seeds)
				for i := range b {
					b[i] = tc.sdSeed * rng.NormFloat64()
				}
				return b
			}
			covered, naive := 0, 0
			for range sweeps {
				cs := make([]Cluster, configs)
				var px, py []float64
				for c := range configs {
					u, base := tc.sdBase*rng.NormFloat64(), baseNoise()
					cs[c] = Cluster{X: xs[c]}
					for range amounts {
						y := point(xs[c], u, base)
						cs[c].Y = append(cs[c].Y, y)
						px, py = append(px, xs[c]), append(py, y)
					}
				}
				x := 1 + 8*rng.Float64()
				u, base := tc.sdBase*rng.NormFloat64(), baseNoise()
				var y float64
				for range amounts {
					y += point(x, u, base) / amounts
				}
				l, err := FitClusters(cs)
				if err != nil {
					t.Fatal(err)
				}
				lo, hi, err := l.PredictionInterval(x, 0.95)
				if err != nil {
					t.Fatal(err)
				}
				if lo <= y && y <= hi {
					covered++
				}
				nl, _ := FitLine(px, py)
				if lo, hi, err := nl.PredictionInterval(x, 0.95); err == nil && lo <= y && y <= hi {
					naive++
				}
			}
			c := float64(covered) / sweeps
			t.Logf("coverage %.3f (points taken as independent: %.3f)", c, float64(naive)/sweeps)
			if c < 0.92 || c > 0.98 {
				t.Errorf("coverage %.3f of the 95%% prediction interval over %d sweeps, want 0.95 ± 0.03", c, sweeps)
			}
		})
	}
}
