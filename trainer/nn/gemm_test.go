package nn

import (
	"fmt"
	"math"
	"testing"

	"gonum.org/v1/gonum/blas/blas32"
)

// backends are the Gemmers the tests and benchmarks compare: the build's default
// (OpenBLAS with cgo) and gonum's pure Go.
func backends() []struct {
	name string
	g    Gemmer
} {
	return []struct {
		name string
		g    Gemmer
	}{{defaultBackend, blas32.Implementation()}, {"gonum", PureGo()}}
}

func TestGemmBackendsAgree(t *testing.T) {
	t.Logf("default backend: %s", GemmInfo())
	defer SetGemmer(SetGemmer(nil))
	rng := newRNG(1000)
	for _, c := range []struct {
		m, n, k     int
		tA, tB      bool
		alpha, beta float32
		padA, padB  int // extra leading-dimension slack
		padC        int
	}{
		{7, 5, 3, false, false, 1, 0, 0, 0, 0},
		{33, 17, 65, true, false, 1, 1, 2, 0, 1},
		{16, 40, 9, false, true, 0.5, -2, 0, 3, 0},
		{64, 64, 64, true, true, 1, 0.25, 1, 1, 2},
		{128, 256, 1152, false, false, 1, 0, 0, 0, 0},
	} {
		t.Run(fmt.Sprintf("%dx%dx%d_tA%v_tB%v", c.m, c.n, c.k, c.tA, c.tB), func(t *testing.T) {
			ra, ca := c.m, c.k
			if c.tA {
				ra, ca = c.k, c.m
			}
			rb, cb := c.k, c.n
			if c.tB {
				rb, cb = c.n, c.k
			}
			lda, ldb, ldc := ca+c.padA, cb+c.padB, c.n+c.padC
			a, b, c0 := randF32(rng, ra*lda), randF32(rng, rb*ldb), randF32(rng, c.m*ldc)
			SetGemmer(naiveGemm{})
			want := append([]float32(nil), c0...)
			Gemm(c.tA, c.tB, c.m, c.n, c.k, c.alpha, a, lda, b, ldb, c.beta, want, ldc)
			for _, be := range backends() {
				SetGemmer(be.g)
				got := append([]float32(nil), c0...)
				Gemm(c.tA, c.tB, c.m, c.n, c.k, c.alpha, a, lda, b, ldb, c.beta, got, ldc)
				for i := range got {
					if math.Abs(float64(got[i]-want[i])) > 1e-4*math.Sqrt(float64(c.k))*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("%s: c[%d] = %g, naive %g", be.name, i, got[i], want[i])
					}
				}
			}
		})
	}
}

// BenchmarkSgemm reports GFLOP/s of each backend on the products a LiResNet block
// makes (per 16×16 image: forward, input gradient, weight gradient) and a square one.
func BenchmarkSgemm(b *testing.B) {
	defer SetGemmer(SetGemmer(nil))
	for _, be := range backends() {
		for _, s := range []struct {
			name    string
			m, n, k int
			tA, tB  bool
		}{
			{"fwd128x256x1152", 128, 256, 1152, false, false},
			{"dcol1152x256x128", 1152, 256, 128, true, false},
			{"dW128x1152x256", 128, 1152, 256, false, true},
			{"square1024", 1024, 1024, 1024, false, false},
		} {
			b.Run(be.name+"/"+s.name, func(b *testing.B) {
				SetGemmer(be.g)
				rng := newRNG(1)
				a, x, c := randF32(rng, s.m*s.k), randF32(rng, s.k*s.n), make([]float32, s.m*s.n)
				lda, ldb := s.k, s.n
				if s.tA {
					lda = s.m
				}
				if s.tB {
					ldb = s.k
				}
				for b.Loop() {
					Gemm(s.tA, s.tB, s.m, s.n, s.k, 1, a, lda, x, ldb, 0, c, s.n)
				}
				b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkConvBlock times one LiResNet backbone conv (W = 128, 16×16, k3, batch
// 256): forward, then backward with input, weight and bias gradients.
func BenchmarkConvBlock(b *testing.B) {
	defer SetGemmer(SetGemmer(nil))
	const n = 256
	for _, be := range backends() {
		for _, c := range []struct {
			name string
			g    ConvGeom
		}{
			{"block128", ConvGeom{Cin: 128, Cout: 128, K: 3, Stride: 1, Pad: 1, H: 16, W: 16}},
			{"stem3-128", ConvGeom{Cin: 3, Cout: 128, K: 5, Stride: 2, Pad: 2, H: 32, W: 32}},
			{"neck128-256", ConvGeom{Cin: 128, Cout: 256, K: 4, Stride: 4, Pad: 0, H: 16, W: 16}},
		} {
			b.Run(be.name+"/"+c.name, func(b *testing.B) {
				SetGemmer(be.g)
				rng := newRNG(2)
				conv := NewConv2d("c", c.g, true, n, rng)
				in, dOut := randF32(rng, n*c.g.InLen()), randF32(rng, n*c.g.OutLen())
				out, dIn := make([]float32, len(dOut)), make([]float32, len(in))
				for b.Loop() {
					conv.Forward(out, in, n)
					conv.Backward(dIn, dOut, in, n)
				}
				flops := 3 * 2 * float64(c.g.WeightLen()*c.g.Ho()*c.g.Wo()*n) // fwd, dIn, dW
				sec := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(sec*1e3, "ms/fwd+bwd")
				b.ReportMetric(flops/sec/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkIm2col times the data movement around the Gemms of a LiResNet block
// conv for one 16×16 image: im2col (forward) and col2im (input gradient).
func BenchmarkIm2col(b *testing.B) {
	g := ConvGeom{Cin: 128, Cout: 128, K: 3, Stride: 1, Pad: 1, H: 16, W: 16}
	rng := newRNG(3)
	in, col := randF32(rng, g.InLen()), make([]float32, g.Cin*9*g.Ho()*g.Wo())
	for b.Loop() {
		g.im2col(col, in, 1)
		g.col2im(in, col, 1)
	}
}
