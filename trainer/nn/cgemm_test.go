package nn

import (
	"fmt"
	"math/cmplx"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// TestCgemmBackendsAgree: the default complex backend (OpenBLAS with cgo) and
// gonum's pure Go agree with a naive complex128 product, for every
// combination of NoTrans, Trans and ConjTrans and with leading-dimension slack.
func TestCgemmBackendsAgree(t *testing.T) {
	defer SetCGemmer(SetCGemmer(nil))
	rng := newRNG(2500)
	ops := []blas.Transpose{blas.NoTrans, blas.Trans, blas.ConjTrans}
	for _, s := range []struct{ m, n, k, pad int }{{5, 7, 3, 0}, {17, 9, 33, 2}, {64, 64, 64, 1}, {130, 129, 128, 1}} { // the last by the 3M method
		for _, tA := range ops {
			for _, tB := range ops {
				t.Run(fmt.Sprintf("%dx%dx%d_%c%c", s.m, s.n, s.k, tA, tB), func(t *testing.T) {
					ra, ca, rb, cb := s.m, s.k, s.k, s.n
					if tA != blas.NoTrans {
						ra, ca = s.k, s.m
					}
					if tB != blas.NoTrans {
						rb, cb = s.n, s.k
					}
					lda, ldb, ldc := ca+s.pad, cb+s.pad, s.n+s.pad
					rnd := func(n int) []complex64 {
						f := randF32(rng, 2*n)
						c := make([]complex64, n)
						for i := range c {
							c[i] = complex(f[2*i], f[2*i+1])
						}
						return c
					}
					a, b, c0 := rnd(ra*lda), rnd(rb*ldb), rnd(s.m*ldc)
					alpha, beta := complex64(complex(0.5, -1)), complex64(complex(2, 0.25))
					at := func(x []complex64, ld int, tr blas.Transpose, i, j int) complex128 {
						if tr == blas.NoTrans {
							return complex128(x[i*ld+j])
						}
						v := complex128(x[j*ld+i])
						if tr == blas.ConjTrans {
							v = cmplx.Conj(v)
						}
						return v
					}
					for _, be := range []struct {
						name string
						g    CGemmer
					}{{"default", defaultCGemmer}, {"gonum", PureGo().(CGemmer)}} {
						SetCGemmer(be.g)
						got := append([]complex64(nil), c0...)
						Cgemm(tA, tB, s.m, s.n, s.k, alpha, a, lda, b, ldb, beta, got, ldc)
						for i := range s.m {
							for j := range s.n {
								var sum complex128
								for l := range s.k {
									sum += at(a, lda, tA, i, l) * at(b, ldb, tB, l, j)
								}
								want := complex128(alpha)*sum + complex128(beta)*complex128(c0[i*ldc+j])
								if cmplx.Abs(complex128(got[i*ldc+j])-want) > 1e-4*float64(s.k)*(1+cmplx.Abs(want)) {
									t.Fatalf("%s: c[%d,%d] = %v, naive %v", be.name, i, j, got[i*ldc+j], want)
								}
							}
						}
					}
				})
			}
		}
	}
}

// BenchmarkCgemm3m reports effective GFLOP (8 per complex multiply-add) per
// second and per CPU-second (all threads: robust on a shared machine) of the
// default complex backend at the LOT layers' Newton–Schulz sizes, on both
// sides of cgemm3mMin.
func BenchmarkCgemm3m(b *testing.B) {
	for _, r := range []int{64, 127, 128, 256, 512} {
		a, c := make([]complex64, r*r), make([]complex64, r*r)
		for i := range a {
			a[i] = complex(float32(i%7)-3, float32(i%5)-2)
		}
		b.Run(fmt.Sprintf("n%d", r), func(b *testing.B) {
			c0 := cpuTime()
			for range b.N {
				Cgemm(blas.NoTrans, blas.NoTrans, r, r, r, 1, a, r, a, r, 0, c, r)
			}
			flops := 8 * float64(r*r*r) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			b.ReportMetric(flops/(cpuTime()-c0).Seconds()/1e9, "GFLOP/cpu-s")
		})
	}
}
