package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// Float64 references with naive loops, and the helpers the tests share.

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

func randF32(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	Normal(x, 1, rng)
	return x
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func dot64(x []float64, y []float32) float64 {
	var s float64
	for i, v := range x {
		s += v * float64(y[i])
	}
	return s
}

// refConv is a direct convolution in float64; b may be nil.
func refConv(in, w, b []float64, g ConvGeom, n int) []float64 {
	ho, wo := g.Ho(), g.Wo()
	out := make([]float64, n*g.OutLen())
	for i := 0; i < n; i++ {
		for co := 0; co < g.Cout; co++ {
			for oy := 0; oy < ho; oy++ {
				for ox := 0; ox < wo; ox++ {
					var s float64
					if b != nil {
						s = b[co]
					}
					for ci := 0; ci < g.Cin; ci++ {
						for ky := 0; ky < g.K; ky++ {
							for kx := 0; kx < g.K; kx++ {
								iy, ix := oy*g.Stride-g.Pad+ky, ox*g.Stride-g.Pad+kx
								if iy < 0 || iy >= g.H || ix < 0 || ix >= g.W {
									continue
								}
								s += w[((co*g.Cin+ci)*g.K+ky)*g.K+kx] * in[((i*g.Cin+ci)*g.H+iy)*g.W+ix]
							}
						}
					}
					out[((i*g.Cout+co)*ho+oy)*wo+ox] = s
				}
			}
		}
	}
	return out
}

// refLinear is out = in·wᵀ + b in float64; b may be nil.
func refLinear(in, w, b []float64, n, nIn, nOut int) []float64 {
	out := make([]float64, n*nOut)
	for i := 0; i < n; i++ {
		for j := 0; j < nOut; j++ {
			var s float64
			if b != nil {
				s = b[j]
			}
			for k := 0; k < nIn; k++ {
				s += in[i*nIn+k] * w[j*nIn+k]
			}
			out[i*nOut+j] = s
		}
	}
	return out
}

// refMinMax splits each sample's c channels into halves and returns concat(max, min).
func refMinMax(in []float64, c, spatial, n int) []float64 {
	out := make([]float64, len(in))
	h := c / 2 * spatial
	for i := 0; i < n; i++ {
		for j := 0; j < h; j++ {
			a, b := in[i*2*h+j], in[i*2*h+h+j]
			out[i*2*h+j], out[i*2*h+h+j] = math.Max(a, b), math.Min(a, b)
		}
	}
	return out
}

// checkFD compares the analytic gradient grad of loss with respect to x against
// central differences of loss (computed in float64), perturbing x in place.
func checkFD(t *testing.T, what string, x []float64, loss func() float64, grad []float32) {
	t.Helper()
	const h = 1e-3
	bad := 0
	for i := range x {
		x0 := x[i]
		x[i] = x0 + h
		lp := loss()
		x[i] = x0 - h
		lm := loss()
		x[i] = x0
		num := (lp - lm) / (2 * h)
		if d := math.Abs(num - float64(grad[i])); d > 1e-4+1e-3*math.Abs(num) {
			if bad++; bad <= 5 {
				t.Errorf("%s[%d]: analytic %.7g, finite difference %.7g", what, i, grad[i], num)
			}
		}
	}
}

// naiveGemm is a straightforward Gemmer: a third reference for the BLAS backends
// and an allocation-free stand-in for TestNoAllocs.
type naiveGemm struct{}

func (naiveGemm) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for l := 0; l < k; l++ {
				ia, ib := i*lda+l, l*ldb+j
				if tA == blas.Trans {
					ia = l*lda + i
				}
				if tB == blas.Trans {
					ib = j*ldb + l
				}
				s += a[ia] * b[ib]
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * s
			} else {
				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
			}
		}
	}
}
