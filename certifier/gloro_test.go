package certifier

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestCertifyHandmade checks radii and predictions on logits small enough to
// work out by hand, including the edge cases of ties and zero Lipschitz
// constants.
func TestCertifyHandmade(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name    string
		k       float64
		head    []float32 // classes × 2
		logits  []float32
		label   int
		pred    int
		radius  float64
		classes int
	}{
		{"identity head", 1, []float32{1, 0, 0, 1}, []float32{2, 1}, 0, 0, 1 / math.Sqrt2, 2},
		{"scaled K, second class wins", 2, []float32{0.6, 0.8, 0.6, -0.8}, []float32{0, 1.6}, 1, 1, 0.5, 2},
		{"tie is radius 0", 1, []float32{1, 0, 0, 1, 0.6, 0.8}, []float32{1, 1, 0}, 0, 0, 0, 3},
		{"tie with equal rows is radius 0", 1, []float32{1, 0, 1, 0}, []float32{1, 1}, 1, 0, 0, 2},
		{"K = 0 never changes", 0, []float32{1, 0, 0, 1}, []float32{1, 0}, 0, 0, inf, 2},
		{"equal rows skip that pair", 1, []float32{1, 0, 1, 0, 0, 1}, []float32{3, 1, 0}, 0, 0, 3 / math.Sqrt2, 3},
		{"misclassified keeps its radius", 1, []float32{1, 0, 0, 1, 0, 0}, []float32{3, 1, 0}, 2, 0, math.Sqrt2, 3},
		{"min over classes", 1, []float32{0, 0, 3, 4, 1, 0}, []float32{1, 5, 4}, 1, 1, 1 / math.Sqrt(20), 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Certify(tc.logits, []int{tc.label}, tc.k, tc.head, tc.classes)
			if err != nil {
				t.Fatal(err)
			}
			want := Result{Label: tc.label, Prediction: tc.pred, Radius: tc.radius}
			if got := res[0]; got.Label != want.Label || got.Prediction != want.Prediction || !closeTo(got.Radius, want.Radius, 1e-12) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

// TestCertifyErrors checks that malformed input is rejected with context.
func TestCertifyErrors(t *testing.T) {
	head := []float32{1, 0, 0, 1}
	tests := []struct {
		name    string
		logits  []float32
		labels  []int
		k       float64
		head    []float32
		classes int
		shape   bool   // wraps ErrShape
		msg     string // in the error, if not empty
	}{
		{"one class", []float32{1}, []int{0}, 1, []float32{1}, 1, true, ""},
		{"logit count", []float32{1, 2, 3}, []int{0}, 1, head, 2, true, ""},
		{"label range", []float32{1, 2}, []int{2}, 1, head, 2, true, ""},
		{"head rows", []float32{1, 2}, []int{0}, 1, []float32{1, 0, 0}, 2, true, ""},
		{"NaN logit", []float32{float32(math.NaN()), 2}, []int{0}, 1, head, 2, false, ""},
		{"negative K", []float32{1, 2}, []int{0}, -1, head, 2, false, ""},
		{"infinite K", []float32{1, 2}, []int{0}, math.Inf(1), head, 2, false, ""},
		{"NaN head", []float32{1, 2}, []int{0}, 1, []float32{1, 0, float32(math.NaN()), 1}, 2, false, "head weight [1,0] = NaN"},
		{"infinite head", []float32{1, 2, 3}, []int{0}, 1, []float32{1, 0, 0, 0, 1, float32(math.Inf(-1)), 0, 0, 1}, 3, false, "head weight [1,2] = -Inf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Certify(tc.logits, tc.labels, tc.k, tc.head, tc.classes)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrShape) != tc.shape {
				t.Errorf("errors.Is(%v, ErrShape) = %v, want %v", err, !tc.shape, tc.shape)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

// TestCertifiedIsStrictForRadiusClosedForIBP: Certified(ε) holds for ε
// below the radius but not at it (GloRo's strict y_c > y_⊥), and for every
// ε from 0 up to and including a positive IBP radius (boxes certify the
// closed ball); a result with neither certifies nothing, not even ε = 0.
func TestCertifiedIsStrictForRadiusClosedForIBP(t *testing.T) {
	for _, tc := range []struct {
		radius, ibp, eps float64
		want             bool
	}{
		{0.5, 0, 0.25, true},
		{0.5, 0, 0.5, false},
		{0.5, 0, 0.75, false},
		{0, 0.3, 0, true},
		{0, 0.3, 0.3, true},
		{0, 0.3, math.Nextafter(0.3, 1), false},
		{0, 0, 0, false},
		{0.1, 0.3, 0.2, true},
		{0.3, 0.1, 0.2, true},
	} {
		r := Result{Radius: tc.radius, IBP: tc.ibp}
		if got := r.Certified(tc.eps); got != tc.want {
			t.Errorf("radius %v, IBP %v: Certified(%v) = %v, want %v", tc.radius, tc.ibp, tc.eps, got, tc.want)
		}
	}
}

// TestCertifyLinearExact checks that the GloRo radius of a linear model is
// its exact distance to the decision boundary: moving (1 − δ)·r towards every
// facet keeps the prediction (for a linear margin that direction is the worst
// case, so the whole ball is safe), and moving (1 + δ)·r towards the nearest
// facet changes it.
func TestCertifyLinearExact(t *testing.T) {
	tests := []struct {
		name         string
		classes, dim int
		k            float64
		lln          bool
	}{
		{"K=1 raw rows", 2, 5, 1, false},
		{"K=1 raw rows, 10 classes", 10, 30, 1, false},
		{"K=3.5 LLN rows", 10, 30, 3.5, true},
		{"K=0.2 LLN rows, 100 classes", 100, 64, 0.2, true},
	}
	const n, delta = 200, 1e-3
	for ti, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ti), 1))
			m := newLinearModel(rng, tc.classes, tc.dim, tc.k, tc.lln)
			x := randomImages(rng, n, tc.dim, 0, 1)
			labels := make([]int, n)
			for i := range labels {
				labels[i] = rng.IntN(tc.classes)
			}
			logits := make([]float32, n*tc.classes)
			if err := m.Logits(logits, x, n); err != nil {
				t.Fatal(err)
			}
			res, err := Certify(logits, labels, tc.k, m.head, tc.classes)
			if err != nil {
				t.Fatal(err)
			}
			p := make([]float32, tc.dim)
			move := func(x0 []float32, u []float64, s float64) []float32 {
				for i := range p {
					p[i] = float32(float64(x0[i]) - s*u[i])
				}
				return p
			}
			for i, r := range res {
				x0 := x[i*tc.dim : (i+1)*tc.dim]
				c := r.Prediction
				if r.Label != labels[i] || c != m.predict(t, x0) {
					t.Fatalf("image %d: result %+v, label %d, model predicts %d", i, r, labels[i], m.predict(t, x0))
				}
				nearest, best := -1, math.Inf(1)
				for j := range tc.classes {
					if j == c {
						continue
					}
					u := m.facet(c, j)
					if got := m.predict(t, move(x0, u, (1-delta)*r.Radius)); got != c {
						t.Errorf("image %d: %.3g·r towards facet %d predicts %d, want %d", i, 1-delta, j, got, c)
					}
					// The distance to facet j, from the effective weights.
					var s float64
					for q := range u {
						s += u[q] * float64(x0[q])
					}
					// margin/‖w_c − w_j‖ = u·x + (b_c − b_j)/‖w_c − w_j‖
					var norm float64
					for q := range u {
						d := m.weight(c, q) - m.weight(j, q)
						norm += d * d
					}
					if dj := s + float64(m.bias[c]-m.bias[j])/math.Sqrt(norm); dj < best {
						nearest, best = j, dj
					}
				}
				if math.Abs(best-r.Radius) > 1e-5*max(1, best) {
					t.Errorf("image %d: radius %v, distance to the nearest facet %v", i, r.Radius, best)
				}
				if got := m.predict(t, move(x0, m.facet(c, nearest), (1+delta)*r.Radius)); got == c {
					t.Errorf("image %d: %.3g·r towards facet %d still predicts %d", i, 1+delta, nearest, c)
				}
			}
		})
	}
}

// TestBottomLogitAgreesWithRadius checks GloRo's rule y_c > y_⊥ against
// Radius > ε: on the exact boundary y_c − y_j = ε·K_cj both say "not
// certified", and on random logits both agree.
func TestBottomLogitAgreesWithRadius(t *testing.T) {
	// K_01 = 2·‖(0,0) − (1,0)‖ = 2, rounded up by a few ulps (NewGloRo's
	// rounding allowance); y_0 − y_1 = 1 ⇒ r = 0.5 less those ulps.
	g, err := NewGloRo(2, []float32{0, 0, 1, 0}, 2)
	if err != nil {
		t.Fatal(err)
	}
	boundary := []struct {
		eps       float64
		bottom    float64
		certified bool
	}{
		{0, 0, true},
		{0.25, 0.5, true},
		{0.5, 1, false}, // the boundary case: y_⊥ = y_c
		{0.75, 1.5, false},
	}
	logits := []float32{1, 0}
	res, err := g.Certify(logits, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	if k := g.MarginLipschitz(0, 1); k <= 2 || k > 2*(1+1e-14) {
		t.Fatalf("K_01 = %v, want just above 2", k)
	}
	if r := res[0].Radius; r >= 0.5 || r < 0.5*(1-1e-14) {
		t.Fatalf("radius %v, want just below 0.5", r)
	}
	for _, tc := range boundary {
		c, bottom, err := g.BottomLogit(logits, tc.eps)
		if err != nil {
			t.Fatal(err)
		}
		if c != 0 || bottom < tc.bottom || bottom > tc.bottom+1e-14 {
			t.Errorf("ε = %v: prediction %d, y_⊥ = %v; want 0, %v", tc.eps, c, bottom, tc.bottom)
		}
		if gloro, cert := float64(logits[c]) > bottom, res[0].Certified(tc.eps); gloro != tc.certified || cert != tc.certified {
			t.Errorf("ε = %v: y_c > y_⊥ is %v, radius > ε is %v, want %v", tc.eps, gloro, cert, tc.certified)
		}
	}

	rng := rand.New(rand.NewPCG(7, 7))
	m := newLinearModel(rng, 10, 16, 1.7, true)
	g, err = NewGloRo(m.k, m.head, m.classes)
	if err != nil {
		t.Fatal(err)
	}
	for range 2000 {
		y := make([]float32, 10)
		for j := range y {
			y[j] = float32(4 * rng.NormFloat64())
		}
		eps := rng.Float64()
		res, err := g.Certify(y, []int{0})
		if err != nil {
			t.Fatal(err)
		}
		c, bottom, err := g.BottomLogit(y, eps)
		if err != nil {
			t.Fatal(err)
		}
		if c != res[0].Prediction {
			t.Fatalf("predictions %d and %d", c, res[0].Prediction)
		}
		if (float64(y[c]) > bottom) != res[0].Certified(eps) {
			t.Errorf("logits %v ε %v: y_c > y_⊥ = %v, radius %v", y, eps, float64(y[c]) > bottom, res[0].Radius)
		}
	}
	if _, _, err := g.BottomLogit([]float32{1}, 0.1); !errors.Is(err, ErrShape) {
		t.Errorf("short logits: %v, want ErrShape", err)
	}
}

// TestNormalizeRows checks unit rows, a zero row and the shape check.
func TestNormalizeRows(t *testing.T) {
	w, err := NormalizeRows([]float32{3, 4, 0, 0, 0, -2}, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0.6, 0.8, 0, 0, 0, -1}
	for i := range w {
		if math.Abs(float64(w[i]-want[i])) > 1e-7 {
			t.Fatalf("got %v, want %v", w, want)
		}
	}
	if _, err := NormalizeRows([]float32{1, 2, 3}, 2); !errors.Is(err, ErrShape) {
		t.Errorf("ragged rows: %v, want ErrShape", err)
	}
	// One row is a matrix too; no rows is not.
	if w, err := NormalizeRows([]float32{0, -3, 4}, 1); err != nil || !slices.Equal(w, []float32{0, -0.6, 0.8}) {
		t.Errorf("one row: %v, %v; want [0 -0.6 0.8]", w, err)
	}
	if _, err := NormalizeRows(nil, 0); !errors.Is(err, ErrShape) {
		t.Errorf("no rows: %v, want ErrShape", err)
	}
}

// TestBottomLogitAtZeroEps: at ε = 0 the bottom logit is the largest other
// logit, also where a margin's Lipschitz bound K_cj overflows to +Inf
// (0·Inf must not make it NaN); at ε > 0 that class's bottom is +Inf.
func TestBottomLogitAtZeroEps(t *testing.T) {
	g, err := NewGloRo(1e308, []float32{1, 0, -1, 0, 1, 0}, 3) // K_01 = 2e308 = +Inf, K_02 = 0
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(g.MarginLipschitz(0, 1), 1) {
		t.Fatalf("K_01 = %v, want +Inf for this test", g.MarginLipschitz(0, 1))
	}
	for _, tc := range []struct{ eps, want float64 }{{0, 0.5}, {1e-3, math.Inf(1)}} {
		c, bottom, err := g.BottomLogit([]float32{2, 0.5, -1}, tc.eps)
		if err != nil || c != 0 || bottom != tc.want {
			t.Errorf("ε = %v: prediction %d, bottom %v, %v; want 0, %v", tc.eps, c, bottom, err, tc.want)
		}
	}
}

// closeTo reports a == b (also for infinities) or a relative difference of at
// most tol.
func closeTo(a, b, tol float64) bool {
	return a == b || math.Abs(a-b) <= tol*max(1, math.Abs(b))
}

// TestGloRoMarginLipschitzIsAnUpperBound checks K_cj ≥ K·‖ŵ_c − ŵ_j‖ in
// exact rational arithmetic (compared as squares) on random heads with
// many features and weights of mixed magnitudes, where the float64 sum of
// squares rounds: rounded to nearest, about half the pairs fall below.
func TestGloRoMarginLipschitzIsAnUpperBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 15))
	for trial := range 12 {
		classes, f := 10, 1+rng.IntN(1024)
		head := make([]float32, classes*f)
		for i := range head {
			head[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(9)-6)))
		}
		k := 1 + rng.Float64()*10
		g, err := NewGloRo(k, head, classes)
		if err != nil {
			t.Fatal(err)
		}
		kr := new(big.Rat).SetFloat64(k)
		for c := range classes {
			for j := range classes {
				if c == j {
					continue
				}
				s := new(big.Rat)
				for x := range f {
					d := new(big.Rat).Sub(new(big.Rat).SetFloat64(float64(head[c*f+x])), new(big.Rat).SetFloat64(float64(head[j*f+x])))
					s.Add(s, d.Mul(d, d))
				}
				exact := s.Mul(s, new(big.Rat).Mul(kr, kr)) // (K·‖ŵ_c − ŵ_j‖)²
				got := new(big.Rat).SetFloat64(g.MarginLipschitz(c, j))
				if got.Mul(got, got).Cmp(exact) < 0 {
					t.Fatalf("trial %d (%d features): K_%d%d = %v is below the exact K·‖ŵ_c − ŵ_j‖", trial, f, c, j, g.MarginLipschitz(c, j))
				}
			}
		}
	}
}

// TestNewGloRoRowLengthLimit checks the limit the rounding bound of K_cj
// assumes: rows of 2^20 − 1 features are taken, 2^20 refused.
func TestNewGloRoRowLengthLimit(t *testing.T) {
	if _, err := NewGloRo(1, make([]float32, 2*(1<<20-1)), 2); err != nil {
		t.Errorf("rows of 2^20 − 1 features: %v", err)
	}
	if _, err := NewGloRo(1, make([]float32, 2*(1<<20)), 2); !errors.Is(err, ErrShape) {
		t.Errorf("rows of 2^20 features: %v, want ErrShape", err)
	}
}
