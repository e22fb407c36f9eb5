package certifier

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// certifiedPoints draws images from the box's middle of a linear model and
// keeps those whose certified radius lies in [lo, hi]: small enough that the
// 1.05·r ball stays inside [0,1]^d (hi < 0.25 with images in [0.3, 0.7]), so
// the box cannot hide the boundary from the attack.
func certifiedPoints(t *testing.T, rng *rand.Rand, m *linearModel, want int, lo, hi float64) ([]float32, []Result) {
	t.Helper()
	var xs []float32
	var rs []Result
	for tries := 0; len(rs) < want; tries++ {
		if tries > 1000*want {
			t.Fatalf("only %d of %d points with radius in [%v, %v]", len(rs), want, lo, hi)
		}
		x := randomImages(rng, 1, m.dim, 0.3, 0.7)
		y := make([]float32, m.classes)
		if err := m.Logits(y, x, 1); err != nil {
			t.Fatal(err)
		}
		res, err := Certify(y, []int{0}, m.k, m.head, m.classes)
		if err != nil {
			t.Fatal(err)
		}
		if r := res[0].Radius; r >= lo && r <= hi {
			xs = append(xs, x...)
			rs = append(rs, res[0])
		}
	}
	return xs, rs
}

// TestPGDAtTheCertifiedRadius checks the attack against exact certificates:
// within 0.95·r it must never change a prediction (that would break a sound
// certificate), and at 1.05·r it must always find the boundary. The
// max-margin objective alone (Untargeted) can stall on the sphere while the
// runner-up class is not the nearest boundary, so it only has to find most.
func TestPGDAtTheCertifiedRadius(t *testing.T) {
	tests := []struct {
		name         string
		classes, dim int
		k            float64
		lln          bool
	}{
		{"2 classes", 2, 10, 1, false},
		{"10 classes LLN", 10, 20, 2, true},
		{"10 classes raw rows", 10, 48, 0.5, false},
		{"100 classes LLN", 100, 32, 1, true},
	}
	const points = 100
	for ti, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ti), 2))
			m := newLinearModel(rng, tc.classes, tc.dim, tc.k, tc.lln)
			x, res := certifiedPoints(t, rng, m, points, 0.01, 0.2)
			for _, untargeted := range []bool{false, true} {
				for _, f := range []float64{0.95, 1.05} {
					wins := attackAt(t, m, x, res, f, PGDOptions{Seed: uint64(ti), BatchSize: 64, Untargeted: untargeted})
					if f > 1 {
						t.Logf("untargeted %v: %d of %d boundaries found at %.2f·r", untargeted, wins, len(res), f)
					}
					switch need := len(res); {
					case f < 1 && wins > 0:
						t.Errorf("untargeted %v: %d of %d certificates broken at %.2f·r", untargeted, wins, len(res), f)
					case f > 1 && untargeted && wins < need*8/10,
						f > 1 && !untargeted && wins < need:
						t.Errorf("untargeted %v: attack found only %d of %d boundaries at %.2f·r", untargeted, wins, len(res), f)
					}
				}
			}
		})
	}
}

// attackAt runs PGD at f·r around each certified point, checks every
// returned point (inside ball and box, prediction as reported) and returns
// the number of successes.
func attackAt(t *testing.T, m *linearModel, x []float32, res []Result, f float64, opts PGDOptions) int {
	t.Helper()
	radii := make([]float64, len(res))
	for i, r := range res {
		radii[i] = f * r.Radius
	}
	att, err := PGD(m, x, radii, opts)
	if err != nil {
		t.Fatal(err)
	}
	wins := 0
	for i, a := range att {
		x0 := x[i*m.dim : (i+1)*m.dim]
		if a.Clean != res[i].Prediction {
			t.Fatalf("image %d: clean prediction %d, certificate for %d", i, a.Clean, res[i].Prediction)
		}
		if d := dist(a.Adversarial, x0); d > radii[i] || d != a.Distance {
			t.Errorf("image %d: adversarial at distance %v (reported %v), radius %v", i, d, a.Distance, radii[i])
		}
		if slices.ContainsFunc(a.Adversarial, func(v float32) bool { return v < 0 || v > 1 }) {
			t.Errorf("image %d: adversarial point leaves the box", i)
		}
		if got := m.predict(t, a.Adversarial); (got != a.Clean) != a.Success || got != a.Prediction {
			t.Errorf("image %d: success %v, prediction %d, model predicts %d", i, a.Success, a.Prediction, got)
		}
		if a.Success {
			wins++
		}
	}
	return wins
}

// TestPGDDeterministic checks that a seed fixes the outcome, whatever the
// batch size (random starts are drawn in image and restart order).
func TestPGDDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	m := newLinearModel(rng, 10, 20, 2, true)
	x, res := certifiedPoints(t, rng, m, 20, 0.01, 0.2)
	radii := make([]float64, len(res))
	for i, r := range res {
		radii[i] = r.Radius
	}
	a, err := PGD(m, x, radii, PGDOptions{Seed: 9, Steps: 30})
	if err != nil {
		t.Fatal(err)
	}
	b, err := PGD(m, x, radii, PGDOptions{Seed: 9, Steps: 30, BatchSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("two runs with one seed and different batch sizes differ")
	}
}

// TestPGDEdgeCases covers radius 0, an infinite radius and invalid input.
func TestPGDEdgeCases(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	m := newLinearModel(rng, 3, 8, 1, true)
	x := randomImages(rng, 2, 8, 0, 1)
	att, err := PGD(m, x, []float64{0, math.Inf(1)}, PGDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if att[0].Success || att[0].Distance != 0 {
		t.Errorf("radius 0: %+v", att[0])
	}
	// Beyond the box's diameter √d the ball holds the whole box.
	capped, err := PGD(m, x, []float64{0, math.Sqrt(8)}, PGDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(att, capped) {
		t.Errorf("radius +Inf: %+v, radius √d: %+v", att[1], capped[1])
	}
	bad := []struct {
		name  string
		x     []float32
		radii []float64
	}{
		{"length", x[:7], []float64{1}},
		{"outside the box", []float32{0, 0, 0, 0, 0, 0, 0, 1.5}, []float64{1}},
		{"negative radius", x[:8], []float64{-1}},
		{"NaN radius", x[:8], []float64{math.NaN()}},
	}
	for _, tc := range bad {
		if _, err := PGD(m, tc.x, tc.radii, PGDOptions{}); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// TestCheckCertificates breaks certificates made with a Lipschitz constant
// that is too small, and none made with the true one.
func TestCheckCertificates(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	m := newLinearModel(rng, 10, 20, 1.5, true)
	x, _ := certifiedPoints(t, rng, m, 40, 0.01, 0.1)
	n := len(x) / m.dim
	logits := make([]float32, n*m.classes)
	if err := m.Logits(logits, x, n); err != nil {
		t.Fatal(err)
	}
	labels := make([]int, n)
	for _, tc := range []struct {
		name   string
		k      float64
		broken int // minimum number of broken certificates
	}{
		{"true K", m.k, 0},
		{"K under-estimated by half", m.k / 2, n},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Certify(logits, labels, tc.k, m.head, m.classes)
			if err != nil {
				t.Fatal(err)
			}
			broken, err := CheckCertificates(m, x, res, 0.99, PGDOptions{Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if tc.broken == 0 && len(broken) > 0 || len(broken) < tc.broken {
				t.Errorf("%d certificates broken (%v), want at least %d and none for a sound bound", len(broken), broken, tc.broken)
			}
		})
	}
}

// TestLipschitzProbe checks that the exact bound of a linear model is never
// exceeded, that half of it is, and that a zero bound on a changing margin
// gives an infinite ratio.
func TestLipschitzProbe(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	m := newLinearModel(rng, 6, 10, 2, true)
	g, err := NewGloRo(m.k, m.head, m.classes)
	if err != nil {
		t.Fatal(err)
	}
	x := randomImages(rng, 50, m.dim, 0, 1)
	tests := []struct {
		name       string
		x          []float32
		n          int
		lip        MarginLipschitz
		radius     float64
		violations bool
		worstAbove float64 // the worst ratio must exceed this
		worstBelow float64 // and stay below this
	}{
		{"exact bound, local pairs", x, 50, g.MarginLipschitz, 0.1, false, 0.5, 1 + 1e-4},
		{"exact bound, image pairs", x, 50, g.MarginLipschitz, 0, false, 0.5, 1 + 1e-4},
		{"exact bound, uniform points", nil, 0, g.MarginLipschitz, 0, false, 0.5, 1 + 1e-4},
		{"half the bound", x, 50, func(c, j int) float64 { return g.MarginLipschitz(c, j) / 2 }, 0.1, true, 1.1, 2 + 1e-4},
		{"zero bound", x, 50, func(c, j int) float64 { return 0 }, 0.1, true, math.MaxFloat64, math.Inf(1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := LipschitzProbe(m, tc.x, tc.n, tc.lip, ProbeOptions{Pairs: 500, Radius: tc.radius, Seed: 1, BatchSize: 64})
			if err != nil {
				t.Fatal(err)
			}
			if (p.Violations > 0) != tc.violations || !(p.WorstRatio > tc.worstAbove) || p.WorstRatio > tc.worstBelow {
				t.Errorf("%+v: want violations %v, worst ratio in (%v, %v]", p, tc.violations, tc.worstAbove, tc.worstBelow)
			}
			if p.Pairs != 500 || p.WorstC >= p.WorstJ {
				t.Errorf("%+v: want 500 pairs and worst c < j", p)
			}
		})
	}
}
