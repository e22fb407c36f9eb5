package nn

import (
	"math"
	"math/big"
	"testing"
)

// pi200 is π to 70 decimal digits.
const pi200 = "3.1415926535897932384626433832795028841971693993751058209749445923078164"

// sinCos200 returns sin and cos of x to about 200 bits (Taylor series; x in
// [0, 2π)).
func sinCos200(x *big.Float) (s, c *big.Float) {
	const prec = 240
	s, c = new(big.Float).SetPrec(prec), new(big.Float).SetPrec(prec).SetInt64(1)
	term := new(big.Float).SetPrec(prec).SetInt64(1) // x^k/k!
	for k := 1; k < 120; k++ {
		term.Mul(term, x)
		term.Quo(term, new(big.Float).SetPrec(prec).SetInt64(int64(k)))
		switch k % 4 {
		case 0:
			c.Add(c, term)
		case 1:
			s.Add(s, term)
		case 2:
			c.Sub(c, term)
		case 3:
			s.Sub(s, term)
		}
	}
	return s, c
}

// TestTwiddleError: every cos and sin of 2π·m/n that unitRoot returns for
// n <= maxLen64 is within rootErr of the exact value (LOT64's τ).
func TestTwiddleError(t *testing.T) {
	pi, _, err := big.ParseFloat(pi200, 10, 240, big.ToNearestEven)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for n := 1; n <= maxLen64; n++ {
		for m := range n {
			x := new(big.Float).SetPrec(240).Mul(pi, big.NewFloat(float64(2*m)))
			x.Quo(x, new(big.Float).SetPrec(240).SetInt64(int64(n)))
			s, c := sinCos200(x)
			gc, gs := unitRoot(m, n)
			for _, p := range [][2]any{{gc, c}, {gs, s}} {
				d := new(big.Float).SetPrec(240).Sub(new(big.Float).SetPrec(240).SetFloat64(p[0].(float64)), p[1].(*big.Float))
				e, _ := d.Float64()
				worst = max(worst, math.Abs(e))
			}
		}
	}
	if worst > rootErr {
		t.Fatalf("largest twiddle error %g = %.2f u, over the bound τ = %.0f u", worst, worst/u64, rootErr/u64)
	}
	t.Logf("largest twiddle error %.2f u (bound %.0f u)", worst/u64, rootErr/u64)
}

// refLOT computes the exact map T of l (see LOT64) on one image x (float64
// values taken as exact) in 120-bit arithmetic: the full n×n DFT of the
// padded planes with 240-bit twiddles, M̃ on the full spectrum (the stored
// half and its Hermitian extension), the full inverse DFT, the interior and
// the bias. It also returns the largest |imaginary part| of the inverse,
// which is zero in exact arithmetic when M̃ is Hermitian.
func refLOT(l *LOT, x []float64) (out []float64, maxImag float64) {
	const prec = 120
	nf := func() *big.Float { return new(big.Float).SetPrec(prec) }
	n, h, N, pad := l.dft.Len, l.dft.Half, l.N, l.dft.Pad
	ci, co := l.Cin, l.Cout
	xs := x
	if l.Stride > 1 {
		xs = make([]float64, ci*N*N)
		spaceToDepth(xs, x, 1, l.InC, l.Size, l.Stride)
	}
	pi, _, _ := big.ParseFloat(pi200, 10, 240, big.ToNearestEven)
	cosT, sinT := make([]*big.Float, n), make([]*big.Float, n)
	for k := range n {
		a := new(big.Float).SetPrec(240).Mul(pi, big.NewFloat(float64(2*k)))
		a.Quo(a, new(big.Float).SetPrec(240).SetInt64(int64(n)))
		sinT[k], cosT[k] = sinCos200(a)
	}
	// spectrum X[c][u][v], re and im
	type cplx struct{ re, im *big.Float }
	X := make([]cplx, ci*n*n)
	for c := range ci {
		for u := range n {
			for v := range n {
				re, im := nf(), nf()
				for y := range N {
					for xx := range N {
						val := new(big.Float).SetPrec(prec).SetFloat64(xs[(c*N+y)*N+xx])
						k := (u*(y+pad) + v*(xx+pad)) % n
						re.Add(re, nf().Mul(val, cosT[k]))
						im.Sub(im, nf().Mul(val, sinT[k]))
					}
				}
				X[(c*n+u)*n+v] = cplx{re, im}
			}
		}
	}
	oc := co * ci
	out = make([]float64, co*N*N)
	for o := range co {
		Z := make([]cplx, n*n)
		for u := range n {
			for v := range n {
				re, im := nf(), nf()
				for c := range ci {
					var m complex64
					if v < h {
						m = l.mo[(u*h+v)*oc+o*ci+c]
					} else {
						m = l.mo[(((n-u)%n)*h+n-v)*oc+o*ci+c]
						m = complex(real(m), -imag(m))
					}
					mr, mi := nf().SetFloat64(float64(real(m))), nf().SetFloat64(float64(imag(m)))
					xv := X[(c*n+u)*n+v]
					re.Add(re, nf().Sub(nf().Mul(mr, xv.re), nf().Mul(mi, xv.im)))
					im.Add(im, nf().Add(nf().Mul(mr, xv.im), nf().Mul(mi, xv.re)))
				}
				Z[u*n+v] = cplx{re, im}
			}
		}
		scale := nf().SetInt64(int64(n * n))
		for y := range N {
			for xx := range N {
				re, im := nf(), nf()
				for u := range n {
					for v := range n {
						k := (u*(y+pad) + v*(xx+pad)) % n
						z := Z[u*n+v]
						re.Add(re, nf().Sub(nf().Mul(z.re, cosT[k]), nf().Mul(z.im, sinT[k])))
						im.Add(im, nf().Add(nf().Mul(z.re, sinT[k]), nf().Mul(z.im, cosT[k])))
					}
				}
				re.Quo(re, scale)
				im.Quo(im, scale)
				re.Add(re, nf().SetFloat64(float64(l.Bias.W[o])))
				out[(o*N+y)*N+xx], _ = re.Float64()
				fi, _ := im.Float64()
				maxImag = max(maxImag, math.Abs(fi))
			}
		}
	}
	return out, maxImag
}

// TestLOT64ErrorBound: for LOT layers of every shape (stride 1 and 2, odd
// and even transform lengths, a 1×1 layer at n = 1), LOT64.Forward is within
// Alpha·‖x‖ + Beta of the exact map computed in 120-bit arithmetic (refLOT,
// whose own error is far below), the bound is below 1e-9 relative, and
// Forward agrees with the float32 LOT.Forward to float32 accuracy.
func TestLOT64ErrorBound(t *testing.T) {
	for ci, c := range []struct {
		name                          string
		inC, cout, k, stride, size, b int
	}{
		{"stride2_n6", 2, 4, 3, 2, 8, 2},
		{"stride1_n7", 3, 4, 3, 1, 5, 2},
		{"stride2_n10", 2, 8, 3, 2, 16, 1},
		{"1x1_n1", 6, 4, 1, 1, 1, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			rng := newRNG(uint64(4200 + ci))
			l := NewLOT("l", c.inC, c.cout, c.k, c.stride, c.size, c.b, 10, rng)
			for i := range l.Weight.W {
				l.Weight.W[i] += float32(0.3 * rng.NormFloat64())
			}
			for i := range l.Bias.W {
				l.Bias.W[i] = float32(0.5 * rng.NormFloat64())
			}
			p, err := l.Float64(c.b)
			if err != nil {
				t.Fatal(err)
			}
			x32 := make([]float32, c.b*l.InLen())
			x := make([]float64, len(x32))
			for i := range x {
				x32[i] = float32(rng.NormFloat64())
				x[i] = float64(x32[i])
			}
			out := make([]float64, c.b*l.OutLen())
			p.Forward(out, x, c.b)
			out32 := make([]float32, c.b*l.OutLen())
			l.Forward(out32, x32, c.b, false)
			for img := range c.b {
				xi := x[img*l.InLen() : (img+1)*l.InLen()]
				ref, imag := refLOT(l, xi)
				var d2, x2, r2 float64
				for j, v := range out[img*l.OutLen() : (img+1)*l.OutLen()] {
					d2 += (v - ref[j]) * (v - ref[j])
					r2 += ref[j] * ref[j]
					if e := math.Abs(float64(out32[img*l.OutLen()+j]) - v); e > 1e-5*(1+math.Abs(v)) {
						t.Errorf("image %d value %d: float64 %v, float32 %v", img, j, v, out32[img*l.OutLen()+j])
					}
				}
				for _, v := range xi {
					x2 += v * v
				}
				diff, bound := math.Sqrt(d2), p.Alpha*math.Sqrt(x2)+p.Beta
				t.Logf("image %d: error %.3g, bound %.3g (%.3g relative to ‖Tx‖ %.3g), imaginary part %.1g", img, diff, bound, bound/math.Sqrt(r2), math.Sqrt(r2), imag)
				if imag > 1e-25 {
					t.Errorf("image %d: the exact inverse has imaginary part %g: M̃ is not Hermitian", img, imag)
				}
				if diff > bound+1e-25*math.Sqrt(r2) {
					t.Errorf("image %d: float64 error %g exceeds the proven bound %g", img, diff, bound)
				}
				if bound > 1e-9*math.Sqrt(x2) {
					t.Errorf("image %d: bound %g is over 1e-9 of ‖x‖ = %g", img, bound, math.Sqrt(x2))
				}
			}
		})
	}
}
