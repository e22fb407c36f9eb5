package report

import (
	"errors"
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol || (math.IsNaN(a) && math.IsNaN(b)) }

// TestFitLine checks the fit against values worked out by hand (exact
// fractions for the coefficients and residuals, then square roots).
func TestFitLine(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name                 string
		x, y                 []float64
		slope, intercept     float64
		slopeSE, interceptSE float64
		s                    float64
	}{
		// x̄ = 1.5, ȳ = 2.75, Sxx = 5, Sxy = 5.5: b = a = 1.1; residuals
		// -0.1, 0.8, -1.3, 0.6, SSR = 2.7, s² = 1.35; SE(b) = √(1.35/5),
		// SE(a) = √(1.35 (1/4 + 2.25/5)).
		{"four points", []float64{0, 1, 2, 3}, []float64{1, 3, 2, 5}, 1.1, 1.1, math.Sqrt(0.27), math.Sqrt(0.945), math.Sqrt(1.35)},
		// Exact line: no residual, zero standard errors.
		{"exact", []float64{1, 2, 3}, []float64{3, 5, 7}, 2, 1, 0, 0, 0},
		// Two points: the line through them, no error estimate.
		{"two points", []float64{2.5, 3.5}, []float64{2.36, 3.51}, 1.15, -0.515, nan, nan, nan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := FitLine(tc.x, tc.y)
			if err != nil {
				t.Fatal(err)
			}
			const tol = 1e-12
			if !near(l.Slope, tc.slope, tol) || !near(l.Intercept, tc.intercept, tol) || !near(l.SlopeSE, tc.slopeSE, tol) ||
				!near(l.InterceptSE, tc.interceptSE, tol) || !near(l.S, tc.s, tol) || l.N != len(tc.x) {
				t.Errorf("got %+v, want slope %v (SE %v), intercept %v (SE %v), s %v", l, tc.slope, tc.slopeSE, tc.intercept, tc.interceptSE, tc.s)
			}
		})
	}
	for _, tc := range []struct {
		name string
		x, y []float64
	}{
		{"one point", []float64{1}, []float64{2}},
		{"one x", []float64{2, 2, 2}, []float64{1, 2, 3}},
		{"lengths differ", []float64{1, 2}, []float64{1}},
	} {
		if _, err := FitLine(tc.x, tc.y); !errors.Is(err, ErrFit) {
			t.Errorf("%s: err = %v, want ErrFit", tc.name, err)
		}
	}
}

// TestPredictionInterval checks ŷ ± t·s·√(1 + 1/n + (x-x̄)²/Sxx) with the
// t quantiles of statistical tables (t(0.975; 2) = 4.302652729911275).
func TestPredictionInterval(t *testing.T) {
	l, err := FitLine([]float64{0, 1, 2, 3}, []float64{1, 3, 2, 5})
	if err != nil {
		t.Fatal(err)
	}
	lo, hi, err := l.PredictionInterval(2, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	// ŷ(2) = 3.3; s² (1 + 1/4 + 0.25/5) = 1.35 · 1.3 = 1.755.
	half := 4.302652729911275 * math.Sqrt(1.755)
	if !near(lo, 3.3-half, 1e-9) || !near(hi, 3.3+half, 1e-9) {
		t.Errorf("95%% interval at 2: [%v, %v], want 3.3 ± %v", lo, hi, half)
	}
	// 90%: t(0.95; 2) = 2.919985580355516.
	lo, hi, _ = l.PredictionInterval(2, 0.9)
	if half := 2.919985580355516 * math.Sqrt(1.755); !near(hi-lo, 2*half, 1e-9) {
		t.Errorf("90%% interval width %v, want %v", hi-lo, 2*half)
	}
	two, _ := FitLine([]float64{1, 2}, []float64{1, 2})
	if _, _, err := two.PredictionInterval(1.5, 0.95); !errors.Is(err, ErrNoInterval) {
		t.Errorf("two points: err = %v, want ErrNoInterval", err)
	}
	if _, _, err := l.PredictionInterval(1, 1); !errors.Is(err, ErrNoInterval) {
		t.Errorf("level 1: err = %v, want ErrNoInterval", err)
	}
}
