package certifier

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestIBPField: an interval-bound certificate counts at every ε <= IBP
// (the closed ball), in the accuracies, the confusion and the curve; results
// without one behave exactly as before.
func TestIBPField(t *testing.T) {
	results := []Result{
		{Label: 0, Prediction: 0, Radius: 0.1, IBP: 0.5}, // correct, certified up to 0.5 by intervals
		{Label: 1, Prediction: 1, Radius: 0.3},           // correct, Lipschitz radius only
		{Label: 2, Prediction: 1, Radius: 0.1, IBP: 0.4}, // robustly wrong up to 0.4
		{Label: 3, Prediction: 3, Radius: 0},             // correct, not certified
	}
	tests := []struct {
		eps             float64
		certified, cert int // certified accuracy count; certified (any label) count
	}{
		{0, 2, 3}, {0.1, 2, 3}, {0.3, 1, 2}, {0.4, 1, 2}, {0.5, 1, 1}, {0.50001, 0, 0},
	}
	for _, tc := range tests {
		if got := CertifiedAccuracy(results, tc.eps); got != float64(tc.certified)/4 {
			t.Errorf("certified accuracy at %v: %v, want %d/4", tc.eps, got, tc.certified)
		}
		if got := CertifiedAccuracies(results, []float64{tc.eps})[0].Count; got != tc.certified {
			t.Errorf("CertifiedAccuracies at %v: %d, want %d", tc.eps, got, tc.certified)
		}
		c := NewConfusion(results, tc.eps)
		if got := c.CorrectCertified + c.IncorrectCertified; got != tc.cert {
			t.Errorf("confusion at %v: %d certified, want %d", tc.eps, got, tc.cert)
		}
	}
	if r := results[0]; r.CertifiedRadius() != 0.5 || results[1].CertifiedRadius() != 0.3 {
		t.Errorf("certified radii %v, %v", r.CertifiedRadius(), results[1].CertifiedRadius())
	}
	curve := NewRadiusCurve(results, []float64{0.5})
	if curve.Correct[0] != 1 || curve.Incorrect[0] != 0 {
		t.Errorf("curve at 0.5: %d correct, %d incorrect, want 1, 0", curve.Correct[0], curve.Incorrect[0])
	}
	if _, err := Summarize([]Result{{Radius: 1, IBP: math.NaN()}}, ReportOptions{Eps: 0.1}); err == nil {
		t.Error("Summarize accepted a NaN interval radius")
	}
}

// linfRadius is the exact l_inf certified radius of a linear model at x:
// min over j of (y_c - y_j) / ||w_c - w_j||_1.
func linfRadius(m *linearModel, x []float32) (int, float64) {
	y := make([]float32, m.classes)
	if err := m.Logits(y, x, 1); err != nil {
		panic(err)
	}
	c, _ := Argmax(y)
	r := math.Inf(1)
	for j := range m.classes {
		if j == c {
			continue
		}
		var l1 float64
		for t := range m.dim {
			l1 += math.Abs(m.weight(c, t) - m.weight(j, t))
		}
		r = min(r, (float64(y[c])-float64(y[j]))/l1)
	}
	return c, r
}

// TestPGDLinfAtTheCertifiedRadius: against the exact l_inf radius of linear
// models, the l_inf attack never changes a prediction within 0.95·r, always
// finds the boundary at 1.05·r, and every iterate stays in the cube and the
// box.
func TestPGDLinfAtTheCertifiedRadius(t *testing.T) {
	for ti, tc := range []struct{ classes, dim int }{{2, 10}, {10, 20}, {10, 48}} {
		rng := rand.New(rand.NewPCG(uint64(ti), 9))
		m := newLinearModel(rng, tc.classes, tc.dim, 1, false)
		var x []float32
		var radius []float64
		for len(radius) < 60 {
			xi := randomImages(rng, 1, m.dim, 0.3, 0.7)
			if _, r := linfRadius(m, xi); r > 0.002 && r < 0.05 { // the 1.05·r cube stays inside [0,1]
				x, radius = append(x, xi...), append(radius, r)
			}
		}
		for _, f := range []float64{0.95, 1.05} {
			radii := make([]float64, len(radius))
			for i, r := range radius {
				radii[i] = f * r
			}
			att, err := PGD(m, x, radii, PGDOptions{Norm: "linf", Seed: 1, Steps: 50, BatchSize: 64})
			if err != nil {
				t.Fatal(err)
			}
			wins := 0
			for i, a := range att {
				x0 := x[i*m.dim : (i+1)*m.dim]
				var d float64
				for k, v := range a.Adversarial {
					d = max(d, math.Abs(float64(v)-float64(x0[k])))
				}
				if d > radii[i] || d != a.Distance || slices.ContainsFunc(a.Adversarial, func(v float32) bool { return v < 0 || v > 1 }) {
					t.Fatalf("image %d: adversarial at l_inf distance %v (reported %v), radius %v, or outside the box", i, d, a.Distance, radii[i])
				}
				if got := m.predict(t, a.Adversarial); (got != a.Clean) != a.Success {
					t.Fatalf("image %d: success %v but the model predicts %d (clean %d)", i, a.Success, got, a.Clean)
				}
				if a.Success {
					wins++
				}
			}
			switch {
			case f < 1 && wins > 0:
				t.Errorf("%d classes: %d of %d exact certificates broken at %.2f·r", tc.classes, wins, len(radius), f)
			case f > 1 && wins < len(radius):
				t.Errorf("%d classes: only %d of %d boundaries found at %.2f·r", tc.classes, wins, len(radius), f)
			}
		}
	}
}

// TestProjectInf: the projection keeps |x' - x| <= r in exact arithmetic
// and x' in [0,1], for radii that do not round to float32.
func TestProjectInf(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for range 1000 {
		x0 := randomImages(rng, 1, 8, 0, 1)
		xr := randomImages(rng, 1, 8, 0, 1)
		r := rng.Float64() * 0.1
		projectInf(xr, x0, r)
		for k, v := range xr {
			if math.Abs(float64(v)-float64(x0[k])) > r || v < 0 || v > 1 {
				t.Fatalf("coordinate %d: %v from %v, radius %v", k, v, x0[k], r)
			}
		}
	}
}
