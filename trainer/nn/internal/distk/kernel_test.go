package distk

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// withPath runs f with the kernel path name, restoring the previous one.
func withPath(t testing.TB, name string, f func()) {
	prev, err := SetPath(name)
	if err != nil {
		t.Fatal(err)
	}
	defer SetPath(prev)
	f()
}

func bitsEqual(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

// awkward are layer sizes that are not multiples of the vector width, the
// tile width or the tile height.
var awkward = []struct{ n, k, m int }{
	{1, 1, 1}, {1, 3, 17}, {5, 7, 31}, {7, 33, 33}, {13, 100, 45}, {6, 16, 32}, {8, 64, 64}, {17, 129, 70}, {3, 250, 11},
}

// TestKernelsAgree: the AVX-512 kernels give bit for bit the pure-Go
// kernels' results on awkward sizes, with ties (repeated values) so that the
// arg-max's lowest-index rule is exercised.
func TestKernelsAgree(t *testing.T) {
	if !haveAVX512 {
		t.Skip("no AVX-512 on this machine: the pure-Go path is the only one, nothing to compare")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range awkward {
		t.Run(fmt.Sprintf("n%d_k%d_m%d", s.n, s.k, s.m), func(t *testing.T) {
			x, w := randVec(rng, s.n*s.k), randVec(rng, s.m*s.k)
			for i := range x { // ties: a few repeated coordinates
				if rng.IntN(5) == 0 {
					x[i] = x[rng.IntN(i+1)]
				}
			}
			wp := make([]float32, PackedLen(s.m, s.k))
			Pack(wp, w, s.m, s.k)
			run := func(path string, withIdx bool) ([]float32, []int32) {
				f := &Inf{Y: make([]float32, s.n*s.m), X: x, WP: wp, N: s.n, K: s.k, M: s.m}
				if withIdx {
					f.Idx = make([]int32, s.n*s.m)
				}
				withPath(t, path, f.Run)
				return f.Y, f.Idx
			}
			for _, withIdx := range []bool{true, false} {
				yg, ig := run("go", withIdx)
				ya, ia := run("avx512", withIdx)
				if !bitsEqual(yg, ya) || !slices.Equal(ig, ia) {
					t.Errorf("arg-max %v: AVX-512 and Go differ", withIdx)
				}
			}
			lo, hi := make([]float32, len(x)), make([]float32, len(x))
			for i, v := range x {
				r := float32(rng.Float64()) * 0.5
				lo[i], hi[i] = v-r, v+r
			}
			var bl, bh [2][]float32
			for p, path := range []string{"go", "avx512"} {
				f := &InfBounds{DLo: make([]float32, s.n*s.m), DHi: make([]float32, s.n*s.m), Lo: lo, Hi: hi, WP: wp, N: s.n, K: s.k, M: s.m}
				withPath(t, path, f.Run)
				bl[p], bh[p] = f.DLo, f.DHi
			}
			if !bitsEqual(bl[0], bl[1]) || !bitsEqual(bh[0], bh[1]) {
				t.Errorf("interval bounds: AVX-512 and Go differ")
			}
			for _, topK := range []int{10, 3} {
				if topK > s.k {
					continue
				}
				var sy, sl, sh [2][]float32
				for p, path := range []string{"go", "avx512"} {
					f := &Sort{Y: make([]float32, s.n*s.m), X: x, WP: wp, N: s.n, K: s.k, M: s.m, TopK: topK, Q: 0.85}
					withPath(t, path, f.Run)
					b := &Sort{DLo: make([]float32, s.n*s.m), DHi: make([]float32, s.n*s.m), Lo: lo, Hi: hi, WP: wp, N: s.n, K: s.k, M: s.m, TopK: topK, Q: 0.85}
					withPath(t, path, b.Run)
					sy[p], sl[p], sh[p] = f.Y, b.DLo, b.DHi
				}
				if !bitsEqual(sy[0], sy[1]) || !bitsEqual(sl[0], sl[1]) || !bitsEqual(sh[0], sh[1]) {
					t.Errorf("sort units (K=%d): AVX-512 and Go differ", topK)
				}
			}
			for _, p := range []float64{8, 37.5, 999} {
				fg, gg := runFinite(t, "go", x, w, s.n, s.k, s.m, p)
				fa, ga := runFinite(t, "avx512", x, w, s.n, s.k, s.m, p)
				if !bitsEqual(fg.Y, fa.Y) {
					t.Errorf("p=%v: forward: AVX-512 and Go differ", p)
				}
				if !bitsEqual(gg.DX, ga.DX) || !bitsEqual(gg.DW, ga.DW) {
					t.Errorf("p=%v: backward: AVX-512 and Go differ", p)
				}
			}
		})
	}
}

// runFinite runs the finite-p forward and backward on one path, with a
// fixed upstream gradient and a non-zero starting DW.
func runFinite(t testing.TB, path string, x, w []float32, n, k, m int, p float64) (*Finite, *FiniteGrad) {
	wp := make([]float32, PackedLen(m, k))
	Pack(wp, w, m, k)
	f := &Finite{Y: make([]float32, n*m), Max: make([]float32, n*m), Inv: make([]float32, n*m), X: x, WP: wp, N: n, K: k, M: m, P: p}
	g := &FiniteGrad{DX: make([]float32, n*k), DW: make([]float32, m*k), X: x, W: w, Y: f.Y, G: make([]float32, n*m),
		N: n, K: k, M: m, P: p, Scratch: make([]float32, GradScratchLen(n, k))}
	for i := range g.G {
		g.G[i] = float32(i%7) - 3
	}
	for i := range g.DW {
		g.DW[i] = float32(i%5) * 0.25
	}
	withPath(t, path, func() {
		f.Run()
		g.Run()
	})
	return f, g
}

// TestPowAccuracy: Pow is r^p to the documented accuracy, exact at r = 1
// and 0 where r^p is below 2^-125.
func TestPowAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, p := range []float32{1, 7, 8, 31.7, 100, 999, 1000} {
		worst := 0.0
		for range 20000 {
			r := float32(rng.Float64())
			if rng.IntN(4) == 0 {
				r = 1 - float32(rng.Float64())*1e-3
			}
			want := math.Pow(float64(r), float64(p))
			got := float64(Pow(r, p))
			if want < 0x1p-124 {
				if got > 0x1p-124 {
					t.Fatalf("Pow(%v, %v) = %v, want about %v", r, p, got, want)
				}
				continue
			}
			e := math.Abs(got-want) / want / max(1, math.Abs(math.Log2(want)))
			worst = max(worst, e)
		}
		if worst > 1e-6 {
			t.Errorf("p=%v: relative error %.3g per unit of |log2 r^p|, want <= 1e-6", p, worst)
		}
		if got := Pow(1, p); math.Abs(float64(got)-1) > 1e-6 {
			t.Errorf("Pow(1, %v) = %v", p, got)
		}
		if got := Pow(0, p); got != 0 {
			t.Errorf("Pow(0, %v) = %v", p, got)
		}
	}
}

// TestFiniteAgainstFloat64: the finite-p forward and backward equal the
// spec's formulas evaluated in float64 (d = (sum |x-w|^p)^(1/p); dd/dx_i =
// sign · (|x_i-w_i|/d)^(p-1)).
func TestFiniteAgainstFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, path := range []string{"go", "avx512"} {
		if path == "avx512" && !haveAVX512 {
			t.Run(path, func(t *testing.T) { t.Skip("no AVX-512 on this machine: only the pure-Go path runs") })
			continue
		}
		for _, p := range []float64{8, 100, 1000} {
			n, k, m := 5, 37, 19
			x, w := randVec(rng, n*k), randVec(rng, m*k)
			f, g := runFinite(t, path, x, w, n, k, m, p)
			dx := make([]float64, n*k)
			for b := range n {
				for j := range m {
					var mx, s float64
					for i := range k {
						mx = max(mx, math.Abs(float64(x[b*k+i])-float64(w[j*k+i])))
					}
					for i := range k {
						s += math.Pow(math.Abs(float64(x[b*k+i])-float64(w[j*k+i]))/mx, p)
					}
					d := mx * math.Pow(s, 1/p)
					if got := float64(f.Y[b*m+j]); math.Abs(got-d) > 2e-6*d {
						t.Fatalf("%s p=%v y[%d,%d] = %v, want %v", path, p, b, j, got, d)
					}
					for i := range k {
						diff := float64(x[b*k+i]) - float64(w[j*k+i])
						dx[b*k+i] += float64(g.G[b*m+j]) * math.Copysign(math.Pow(math.Abs(diff)/d, p-1), diff)
					}
				}
			}
			for i, want := range dx {
				if got := float64(g.DX[i]); math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
					t.Fatalf("%s p=%v dx[%d] = %v, want %v", path, p, i, got, want)
				}
			}
		}
	}
}

// TestInfExact: the p = inf forward is the max and its first arg-max,
// against a direct loop over the unpacked weight.
func TestInfExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, path := range []string{"go", "avx512"} {
		if path == "avx512" && !haveAVX512 {
			t.Run(path, func(t *testing.T) { t.Skip("no AVX-512 on this machine: only the pure-Go path runs") })
			continue
		}
		for _, s := range awkward {
			x, w := randVec(rng, s.n*s.k), randVec(rng, s.m*s.k)
			wp := make([]float32, PackedLen(s.m, s.k))
			Pack(wp, w, s.m, s.k)
			f := &Inf{Y: make([]float32, s.n*s.m), Idx: make([]int32, s.n*s.m), X: x, WP: wp, N: s.n, K: s.k, M: s.m}
			withPath(t, path, f.Run)
			for b := range s.n {
				for j := range s.m {
					best, at := -1.0, -1
					for i := range s.k {
						if d := math.Abs(float64(x[b*s.k+i]) - float64(w[j*s.k+i])); d > best {
							best, at = d, i
						}
					}
					// float32 subtraction rounds, the float64 one does not.
					if got := float64(f.Y[b*s.m+j]); math.Abs(got-best) > 1e-6*best || int(f.Idx[b*s.m+j]) != at {
						t.Fatalf("%s %v b=%d j=%d: %v at %d, want %v at %d", path, s, b, j, got, f.Idx[b*s.m+j], best, at)
					}
				}
			}
		}
	}
}

// benchInf reports G ops/s, one op being one |x - w| evaluation.
func benchInf(b *testing.B, path string, withIdx bool, n, k, m int) {
	rng := rand.New(rand.NewPCG(5, 6))
	x, w := randVec(rng, n*k), randVec(rng, m*k)
	wp := make([]float32, PackedLen(m, k))
	Pack(wp, w, m, k)
	f := &Inf{Y: make([]float32, n*m), X: x, WP: wp, N: n, K: k, M: m}
	if withIdx {
		f.Idx = make([]int32, n*m)
	}
	withPath(b, path, func() {
		b.ResetTimer()
		for b.Loop() {
			f.Run()
		}
		b.ReportMetric(float64(n*k*m)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gops/s")
	})
}

// BenchmarkFinite: the finite-p forward and backward at B=128, 1024x1024
// (p = 8), in G |x - w| evaluations per second.
func BenchmarkFinite(b *testing.B) {
	const n, k, m = 128, 1024, 1024
	rng := rand.New(rand.NewPCG(5, 6))
	x, w := randVec(rng, n*k), randVec(rng, m*k)
	for _, path := range []string{"avx512", "go"} {
		if path == "avx512" && !haveAVX512 {
			b.Run(path, func(b *testing.B) { b.Skip("no AVX-512 on this machine: only the pure-Go path runs") })
			continue
		}
		f, g := runFinite(b, path, x, w, n, k, m, 8)
		for _, pass := range []string{"forward", "backward"} {
			b.Run(path+"/"+pass, func(b *testing.B) {
				withPath(b, path, func() {
					for b.Loop() {
						if pass == "forward" {
							f.Run()
						} else {
							g.Run()
						}
					}
				})
				b.ReportMetric(float64(n*k*m)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gops/s")
			})
		}
	}
}

// BenchmarkInf: the p = inf forward at B=128, 1024x1024, with and without
// the arg-max, on both paths and all of GOMAXPROCS' cores.
func BenchmarkInf(b *testing.B) {
	for _, path := range []string{"avx512", "go"} {
		if path == "avx512" && !haveAVX512 {
			b.Run(path, func(b *testing.B) { b.Skip("no AVX-512 on this machine: only the pure-Go path runs") })
			continue
		}
		for _, withIdx := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/argmax=%v", path, withIdx), func(b *testing.B) { benchInf(b, path, withIdx, 128, 1024, 1024) })
		}
	}
}
