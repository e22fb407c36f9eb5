package certifier

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
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
	// Each term negative, NaN or infinite, and pairs of infinite terms
	// (whose sum or difference is NaN, not infinite).
	var bad [][3]float64
	for _, v := range []float64{-1, math.NaN(), math.Inf(1)} {
		bad = append(bad, [3]float64{v, 0, 0}, [3]float64{0, v, 0}, [3]float64{0, 0, v})
	}
	inf := math.Inf(1)
	bad = append(bad, [3]float64{inf, inf, 0}, [3]float64{inf, 0, inf}, [3]float64{0, inf, inf}, [3]float64{inf, inf, inf})
	for _, b := range bad {
		if _, err := CertifyMarginsRounded(logits, labels, 3, lip, func(int, int, int) (float64, float64, float64) { return b[0], b[1], b[2] }); err == nil {
			t.Errorf("rounding bound %v accepted", b)
		}
	}
}

// exactRoundedRadius is the radius CertifyMarginsRounded documents, in
// exact rational arithmetic: min_{j≠c} (y_c − y_j − at − near)/(K + slope),
// 0 when a numerator is not positive; inf reports +Inf (no finite bound).
func exactRoundedRadius(y []float32, c int, k, at, near, slope float64) (r *big.Rat, inf bool) {
	rat := func(v float64) *big.Rat { return new(big.Rat).SetFloat64(v) }
	inf = true
	for j := range y {
		if j == c {
			continue
		}
		num := rat(float64(y[c]))
		num.Sub(num, rat(float64(y[j])))
		num.Sub(num, rat(at))
		num.Sub(num, rat(near))
		if num.Sign() <= 0 {
			return new(big.Rat), false
		}
		den := new(big.Rat).Add(rat(k), rat(slope))
		if den.Sign() == 0 {
			continue
		}
		t := num.Quo(num, den)
		if inf || t.Cmp(r) < 0 {
			r, inf = t, false
		}
	}
	return r, inf
}

// TestCertifyMarginsRoundedIsALowerBound: the radius never exceeds the
// documented formula evaluated exactly (rationals, no rounding), also where
// the float64 evaluation of the numerator cancels catastrophically or a
// tie has a zero Lipschitz bound, and falls short of it by no more than a
// few ulps of the terms it is computed from.
func TestCertifyMarginsRoundedIsALowerBound(t *testing.T) {
	type tc struct {
		name               string
		y                  []float32
		k, at, near, slope float64
	}
	cases := []tc{
		// m̂ − at rounds back up to m̂ (at is below half an ulp of 1024),
		// then subtracting near cancels: the float64 numerator is 2^-13,
		// the exact one 2^-13 − 2^-50.
		{"cancellation", []float32{1024 + 0x1p-13, 0}, 1, 0x1p-50, 1024, 0},
		{"cancellation, three classes", []float32{0, 1024 + 0x1p-13, 0.5}, 0.75, 0x1p-50, 1024, 0x1p-40},
		{"tie, K = 0", []float32{1, 1}, 0, 0, 0, 0},
		{"tie, K = 0, three classes", []float32{2, 2, 0}, 0, 0, 0, 0},
		{"K = 0, positive margin", []float32{2, 1}, 0, 0.25, 0.25, 0},
		{"plain", []float32{3, 1, 0}, 2, 0.1, 0.2, 1},
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 3000 {
		y := make([]float32, 2+rng.IntN(3))
		scale := math.Ldexp(1, rng.IntN(40)-20)
		for j := range y {
			y[j] = float32((rng.Float64() - 0.5) * scale)
		}
		c, _ := Argmax(y)
		m := float64(y[c]) - float64(y[(c+1)%len(y)])
		// near takes most of a margin, so that the numerator cancels.
		at := m * rng.Float64() * math.Ldexp(1, -rng.IntN(60))
		near := (m - at) * (1 - math.Ldexp(rng.Float64(), -rng.IntN(50)))
		cases = append(cases, tc{fmt.Sprintf("random %d", i), y, rng.Float64() * 4, at, max(near, 0), rng.Float64() * math.Ldexp(1, -rng.IntN(30))})
	}
	const u = 0x1p-53
	for _, tc := range cases {
		classes := len(tc.y)
		res, err := CertifyMarginsRounded(tc.y, []int{0}, classes, func(int, int) float64 { return tc.k },
			func(int, int, int) (float64, float64, float64) { return tc.at, tc.near, tc.slope })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := res[0].Radius
		want, inf := exactRoundedRadius(tc.y, res[0].Prediction, tc.k, tc.at, tc.near, tc.slope)
		if inf {
			if !math.IsInf(got, 1) {
				t.Errorf("%s: radius %v, want +Inf (no margin has a finite bound)", tc.name, got)
			}
			continue
		}
		if math.IsInf(got, 0) || new(big.Rat).SetFloat64(got).Cmp(want) > 0 {
			t.Errorf("%s: radius %.17g exceeds the exact %s", tc.name, got, want.FloatString(25))
			continue
		}
		// Short by at most 64 ulps of |m̂| + at + near over K + slope, plus
		// 64 ulps of the radius.
		w, _ := want.Float64()
		y := tc.y
		c := res[0].Prediction
		var slack float64
		for j := range y {
			if j != c {
				slack = max(slack, 64*u*(math.Abs(float64(y[c])-float64(y[j]))+tc.at+tc.near)/(tc.k+tc.slope))
			}
		}
		if got < w-slack-64*u*w {
			t.Errorf("%s: radius %.17g, the exact one %.17g: short by more than %.3g", tc.name, got, w, slack+64*u*w)
		}
	}
}
