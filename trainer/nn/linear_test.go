package nn

import (
	"fmt"
	"math"
	"testing"
)

var linearCases = []struct{ in, out, n int }{{1, 1, 1}, {5, 3, 4}, {3, 7, 2}, {16, 9, 5}}

func TestLinearForwardGrad(t *testing.T) {
	for i, c := range linearCases {
		t.Run(fmt.Sprintf("%dx%d_n%d", c.out, c.in, c.n), func(t *testing.T) {
			rng := newRNG(300 + uint64(i))
			l := NewLinear("fc", c.in, c.out, true, rng)
			in := randF32(rng, c.n*c.in)
			out := make([]float32, c.n*c.out)
			l.Forward(out, in, c.n)
			x, w, b := to64(in), to64(l.Weight.W), to64(l.Bias.W)
			for j, v := range refLinear(x, w, b, c.n, c.in, c.out) {
				if math.Abs(v-float64(out[j])) > 1e-5*(1+math.Abs(v)) {
					t.Fatalf("out[%d] = %g, want %g", j, out[j], v)
				}
			}
			r := to64(randF32(rng, len(out)))
			dOut := make([]float32, len(r))
			for j, v := range r {
				dOut[j] = float32(v)
			}
			g0w, g0b := randF32(rng, len(w)), randF32(rng, len(b))
			copy(l.Weight.G, g0w)
			copy(l.Bias.G, g0b)
			dIn := randF32(rng, len(in))
			l.Backward(dIn, dOut, in, c.n)
			for j := range g0w {
				g0w[j] = l.Weight.G[j] - g0w[j]
			}
			for j := range g0b {
				g0b[j] = l.Bias.G[j] - g0b[j]
			}
			loss := func() float64 {
				var s float64
				for j, v := range refLinear(x, w, b, c.n, c.in, c.out) {
					s += v * r[j]
				}
				return s
			}
			checkFD(t, "dIn", x, loss, dIn)
			checkFD(t, "dWeight", w, loss, g0w)
			checkFD(t, "dBias", b, loss, g0b)

			// Transpose is the adjoint of the bias-free forward.
			LinearForward(out, in, l.Weight.W, nil, c.n, c.in, c.out)
			y := randF32(rng, len(out))
			aty := make([]float32, len(in))
			l.Transpose(aty, y, c.n)
			if lhs, rhs := dot64(to64(out), y), dot64(x, aty); math.Abs(lhs-rhs) > 1e-5*(1+math.Abs(lhs)) {
				t.Fatalf("<Wx, y> = %g, <x, Wᵀy> = %g", lhs, rhs)
			}
		})
	}
}

func TestLinearInit(t *testing.T) {
	l := NewLinear("fc", 64, 32, true, newRNG(1))
	bound := float32(1 / math.Sqrt(64))
	for _, p := range l.Params() {
		var maxAbs float32
		for _, v := range p.W {
			maxAbs = max(maxAbs, float32(math.Abs(float64(v))))
		}
		if maxAbs > bound || maxAbs < 0.8*bound {
			t.Errorf("%s: max |w| = %g, want just under %g", p.Name, maxAbs, bound)
		}
	}
	if l.Params()[0].Name != "fc.weight" || l.Params()[1].Name != "fc.bias" {
		t.Errorf("param names %q %q", l.Params()[0].Name, l.Params()[1].Name)
	}
}
