package nn

import (
	"fmt"
	"math"
	"sync/atomic"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// backends are the Gemmers the tests and benchmarks compare: the build's default
// as Gemm uses it (nil: OpenBLAS with cgo, large products split over the
// cores), its BLAS called directly, and gonum's pure Go.
func backends() []struct {
	name string
	g    Gemmer
} {
	return []struct {
		name string
		g    Gemmer
	}{{defaultBackend, nil}, {defaultBackend + "-unsplit", blas32.Implementation()}, {"gonum", PureGo()}}
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
		// Split over the cores by columns and by rows, sizes not multiples of
		// the split block, every transpose, padded leading dimensions.
		{77, 300, 200, false, false, 1, 0, 0, 0, 0},
		{77, 300, 200, true, true, -0.5, 1, 3, 1, 2},
		{301, 50, 260, true, false, 1, 0.5, 0, 2, 1},
		{301, 50, 260, false, true, 2, 0, 1, 0, 3},
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

// countingGemm is naiveGemm that counts its calls (from any goroutine).
type countingGemm struct{ calls *atomic.Int32 }

func (c countingGemm) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, cc []float32, ldc int) {
	c.calls.Add(1)
	naiveGemm{}.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, cc, ldc)
}

// TestSplitProduct: a large product is cut into one call per core, whose
// blocks together equal the whole; a small one is left to the caller.
func TestSplitProduct(t *testing.T) {
	rng := newRNG(1001)
	var calls atomic.Int32
	g := countingGemm{&calls}
	for _, c := range []struct {
		m, n, k int
		tA, tB  bool
		split   bool
	}{
		{40, 200, 300, false, false, true}, // by columns
		{200, 40, 300, true, true, true},   // by rows
		{16, 16, 16, false, false, false},  // too small
	} {
		ra, ca := c.m, c.k
		if c.tA {
			ra, ca = c.k, c.m
		}
		rb, cb := c.k, c.n
		if c.tB {
			rb, cb = c.n, c.k
		}
		a, b, c0 := randF32(rng, ra*ca), randF32(rng, rb*cb), randF32(rng, c.m*c.n)
		tA, tB := blas.NoTrans, blas.NoTrans
		if c.tA {
			tA = blas.Trans
		}
		if c.tB {
			tB = blas.Trans
		}
		want, got := append([]float32(nil), c0...), append([]float32(nil), c0...)
		naiveGemm{}.Sgemm(tA, tB, c.m, c.n, c.k, 1.5, a, ca, b, cb, 0.5, want, c.n)
		calls.Store(0)
		did := splitProduct(g, tA, tB, c.m, c.n, c.k, 1.5, a, ca, b, cb, 0.5, got, c.n)
		if did != (c.split && parts() > 1) {
			t.Fatalf("%dx%dx%d: split %v, want %v on %d cores", c.m, c.n, c.k, did, c.split, parts())
		}
		if !did {
			continue
		}
		if int(calls.Load()) != parts() {
			t.Errorf("%dx%dx%d: %d calls, want one per core (%d)", c.m, c.n, c.k, calls.Load(), parts())
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%dx%dx%d: c[%d] = %g, unsplit %g", c.m, c.n, c.k, i, got[i], want[i])
			}
		}
	}
}
