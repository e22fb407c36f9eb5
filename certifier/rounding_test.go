package certifier

import (
	"math"
	"testing"
)

// TestCertifyMarginsRounded: the radius is min_j (m̂ − at − near)/(K + slope)
// (rounded down by at most a few ulps), equals CertifyMargins' without
// rounding, is 0 when the rounding can eat the margin, and a bad bound is
// an error.
func TestCertifyMarginsRounded(t *testing.T) {
	logits := []float32{3, 1, 0, 0.5, 0.5, 0.25}
	labels := []int{0, 1}
	lip := func(c, j int) float64 { return 2 }
	cases := []struct {
		name          string
		at, near, slp float64
		want          []float64
	}{
		{"no rounding", 0, 0, 0, []float64{1, 0}},
		{"rounding", 0.1, 0.2, 1, []float64{(2 - 0.3) / 3, 0}},
		{"rounding eats the margin", 1, 1, 0, []float64{0, 0}},
	}
	plain, err := CertifyMargins(logits, labels, 3, lip)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		res, err := CertifyMarginsRounded(logits, labels, 3, lip, func(i, c, j int) (float64, float64, float64) { return tc.at, tc.near, tc.slp })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i, r := range res {
			if r.Radius > tc.want[i] || r.Radius < tc.want[i]*(1-1e-14) {
				t.Errorf("%s: image %d: radius %.17g, want %.17g rounded down", tc.name, i, r.Radius, tc.want[i])
			}
			if r.Prediction != plain[i].Prediction {
				t.Errorf("%s: image %d: prediction %d, CertifyMargins %d", tc.name, i, r.Prediction, plain[i].Prediction)
			}
		}
		if tc.at == 0 && tc.near == 0 && tc.slp == 0 && res[0].Radius > plain[0].Radius {
			t.Errorf("without rounding the radius %v exceeds CertifyMargins' %v", res[0].Radius, plain[0].Radius)
		}
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, err := CertifyMarginsRounded(logits, labels, 3, lip, func(int, int, int) (float64, float64, float64) { return bad, 0, 0 }); err == nil {
			t.Errorf("rounding bound %v accepted", bad)
		}
	}
}
