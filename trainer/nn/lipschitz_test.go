package nn

import (
	"fmt"
	"math"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// explicitSigma builds the matrix of op column by column from unit vectors and
// returns its largest singular value.
func explicitSigma(t *testing.T, op Operator) float64 {
	t.Helper()
	m, n := op.OutLen(), op.InLen()
	a := mat.NewDense(m, n, nil)
	e, col := make([]float32, n), make([]float32, m)
	for j := 0; j < n; j++ {
		clear(e)
		e[j] = 1
		op.Apply(col, e)
		for i, v := range col {
			a.Set(i, j, float64(v))
		}
	}
	var svd mat.SVD
	if !svd.Factorize(a, mat.SVDNone) {
		t.Fatal("SVD failed")
	}
	return svd.Values(nil)[0]
}

var powerConvs = []ConvGeom{
	{Cin: 2, Cout: 3, K: 3, Stride: 1, Pad: 1, H: 5, W: 5},
	{Cin: 3, Cout: 2, K: 5, Stride: 2, Pad: 2, H: 8, W: 8},
	{Cin: 2, Cout: 4, K: 4, Stride: 4, Pad: 0, H: 8, W: 8},
	{Cin: 3, Cout: 3, K: 3, Stride: 2, Pad: 0, H: 7, W: 7},
}

func powerOperators() (names []string, ops []Operator) {
	rng := newRNG(500)
	for _, g := range powerConvs {
		c := NewConv2d("c", g, false, 1, rng)
		Normal(c.Weight.W, 1, rng) // generic weights, not orthogonal
		names = append(names, fmt.Sprintf("conv%d-%d_k%d_s%d_p%d_%dx%d", g.Cin, g.Cout, g.K, g.Stride, g.Pad, g.H, g.W))
		ops = append(ops, c.Operator())
	}
	for _, d := range [][2]int{{5, 7}, {9, 4}, {12, 12}} {
		l := NewLinear("fc", d[0], d[1], false, rng)
		names = append(names, fmt.Sprintf("linear%dx%d", d[1], d[0]))
		ops = append(ops, l.Operator())
	}
	return names, ops
}

func TestPowerIterationConverges(t *testing.T) {
	names, ops := powerOperators()
	for i, op := range ops {
		t.Run(names[i], func(t *testing.T) {
			want := explicitSigma(t, op)
			p := NewPowerIteration(op, newRNG(600+uint64(i)))
			got := float64(p.Step(2000))
			if rel := math.Abs(got-want) / want; rel > 1e-3 {
				t.Fatalf("σ = %.6g, largest singular value %.6g (rel %.2g)", got, want, rel)
			}
			if got > want*(1+1e-5) {
				t.Errorf("σ = %.8g exceeds the largest singular value %.8g", got, want)
			}
			// The state persists: more steps keep it there, and U = A·V/σ is a unit vector.
			if again := float64(p.Step(1)); math.Abs(again-got) > 1e-4*want {
				t.Errorf("σ moved from %g to %g after one more step", got, again)
			}
			var un float64
			for _, u := range p.U {
				un += float64(u) * float64(u)
			}
			if math.Abs(un-1) > 1e-5 {
				t.Errorf("‖U‖² = %g", un)
			}
		})
	}
}

// TestPowerIterationSetV: a reference vector is normalised, and Step(0) returns
// ‖A·v‖ for it.
func TestPowerIterationSetV(t *testing.T) {
	rng := newRNG(700)
	l := NewLinear("fc", 2, 2, false, rng)
	copy(l.Weight.W, []float32{3, 0, 0, 1})
	p := NewPowerIteration(l.Operator(), rng)
	p.SetV([]float32{0, 2})
	if s := p.Step(0); s != 1 {
		t.Fatalf("σ(e₂) = %g, want 1", s)
	}
	p.SetV([]float32{0.1, 2}) // e₂ is itself a fixed point; tilt it
	if s := p.Step(30); math.Abs(float64(s)-3) > 1e-6 {
		t.Fatalf("σ = %g, want 3", s)
	}
}

// TestPowerIterationGrad: Backward is the gradient of σ(W) = ‖A_W·V‖ with V fixed,
// against finite differences of the float64 reference.
func TestPowerIterationGrad(t *testing.T) {
	rng := newRNG(800)
	for gi, g := range powerConvs {
		t.Run(fmt.Sprintf("conv%d", gi), func(t *testing.T) {
			c := NewConv2d("c", g, true, 1, rng)
			p := NewPowerIteration(c.Operator(), rng)
			p.Step(5) // not converged: the gradient holds for any fixed V
			dW := make([]float32, g.WeightLen())
			p.Backward(dW, 2)
			w, v := to64(c.Weight.W), to64(p.V)
			checkFD(t, "dσ/dW", w, func() float64 {
				var s float64
				for _, y := range refConv(v, w, nil, g, 1) {
					s += y * y
				}
				return 2 * math.Sqrt(s)
			}, dW)
		})
	}
	t.Run("linear", func(t *testing.T) {
		l := NewLinear("fc", 6, 4, false, rng)
		p := NewPowerIteration(l.Operator(), rng)
		p.Step(3)
		dW := make([]float32, 24)
		p.Backward(dW, 1)
		w, v := to64(l.Weight.W), to64(p.V)
		checkFD(t, "dσ/dW", w, func() float64 {
			var s float64
			for _, y := range refLinear(v, w, nil, 1, 6, 4) {
				s += y * y
			}
			return math.Sqrt(s)
		}, dW)
	})
}
