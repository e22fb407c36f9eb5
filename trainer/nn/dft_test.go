package nn

import (
	"fmt"
	"math"
	"math/cmplx"
	"testing"

	"gonum.org/v1/gonum/dsp/fourier"
)

// dftSizes are the LOT layer's transform geometries (N, Pad): n = 34, 18, 10, 6,
// 4, 1 on CIFAR, and an odd n.
var dftSizes = [][2]int{{32, 1}, {16, 1}, {8, 1}, {4, 1}, {2, 1}, {1, 0}, {5, 1}}

// refDFT is the half spectrum of b×c padded planes in complex128, [u][v][c][b].
func refDFT(x []float32, N, pad, b, c int) []complex128 {
	n := N + 2*pad
	h := n/2 + 1
	out := make([]complex128, n*h*c*b)
	root := make([]complex128, n) // e^{−2πi m/n}
	for m := range root {
		root[m] = cmplx.Exp(complex(0, -2*math.Pi*float64(m)/float64(n)))
	}
	for bi := range b {
		for ci := range c {
			for u := range n {
				for v := range h {
					var s complex128
					for y := range N {
						for xx := range N {
							s += complex(float64(x[((bi*c+ci)*N+y)*N+xx]), 0) * root[(u*(y+pad)+v*(xx+pad))%n]
						}
					}
					out[((u*h+v)*c+ci)*b+bi] = s
				}
			}
		}
	}
	return out
}

func TestDFTForward(t *testing.T) {
	rng := newRNG(1200)
	for _, s := range dftSizes {
		t.Run(fmt.Sprintf("N%d_pad%d", s[0], s[1]), func(t *testing.T) {
			const b, c = 3, 2
			d := NewRealDFT2(s[0], s[1], b*c)
			x := randF32(rng, b*c*s[0]*s[0])
			got := make([]complex64, d.Frequencies()*b*c)
			d.Forward(got, x, b, c)
			want := refDFT(x, s[0], s[1], b, c)
			var e, w float64
			for i, v := range want {
				e += cmplx.Abs(complex128(got[i])-v) * cmplx.Abs(complex128(got[i])-v)
				w += cmplx.Abs(v) * cmplx.Abs(v)
			}
			if r := math.Sqrt(e / w); r > 1e-6 {
				t.Errorf("relative error %.3g against the direct DFT", r)
			}
			// Inverse undoes Forward on the interior.
			back := make([]float32, len(x))
			d.Inverse(back, got, b, c)
			for i, v := range x {
				if math.Abs(float64(back[i]-v)) > 1e-5 {
					t.Fatalf("Inverse(Forward(x))[%d] = %g, x = %g", i, back[i], v)
				}
			}
		})
	}
}

// TestDFTAdjoint: Re⟨Forward x, y⟩ = ⟨x, ForwardT y⟩ and ⟨Inverse y, x⟩ =
// Re⟨y, InverseT x⟩, the identities the LOT backward pass relies on.
func TestDFTAdjoint(t *testing.T) {
	rng := newRNG(1201)
	for _, s := range dftSizes {
		t.Run(fmt.Sprintf("N%d_pad%d", s[0], s[1]), func(t *testing.T) {
			const b, c = 2, 3
			d := NewRealDFT2(s[0], s[1], b*c)
			F := d.Frequencies()
			x := randF32(rng, b*c*s[0]*s[0])
			y := make([]complex64, F*b*c)
			yf := randF32(rng, 2*len(y))
			for i := range y {
				y[i] = complex(yf[2*i], yf[2*i+1])
			}
			fx, ty := make([]complex64, len(y)), make([]float32, len(x))
			d.Forward(fx, x, b, c)
			d.ForwardT(ty, y, b, c)
			if l, r := dotRe(fx, y), dot32(x, ty); math.Abs(l-r) > 1e-4*(math.Abs(l)+1) {
				t.Errorf("Forward: <Fx, y> = %g, <x, Fᵀy> = %g", l, r)
			}
			iy, tx := make([]float32, len(x)), make([]complex64, len(y))
			d.Inverse(iy, y, b, c)
			d.InverseT(tx, x, b, c)
			if l, r := dot32(iy, x), dotRe(y, tx); math.Abs(l-r) > 1e-4*(math.Abs(l)+1) {
				t.Errorf("Inverse: <Iy, x> = %g, <y, Iᵀx> = %g", l, r)
			}
		})
	}
}

func dotRe(a, b []complex64) float64 { return complex32{}.dotRe(a, b) }
func dot32(a, b []float32) float64   { return real32{}.dotRe(a, b) }

// BenchmarkDFT compares the matrix-product DFT with gonum's mixed-radix FFT
// (fourier.CmplxFFT along rows and columns of each padded plane) on a LOT
// layer's input spectra at batch 256: the choice of dft.go.
func BenchmarkDFT(b *testing.B) {
	for _, s := range []struct{ N, pad, c int }{{32, 1, 3}, {16, 1, 64}, {8, 1, 128}, {4, 1, 256}, {2, 1, 512}} {
		const batch = 256
		x := randF32(newRNG(1), batch*s.c*s.N*s.N)
		d := NewRealDFT2(s.N, s.pad, batch*s.c)
		spec := make([]complex64, d.Frequencies()*batch*s.c)
		b.Run(fmt.Sprintf("matrix_n%d_c%d", s.N+2*s.pad, s.c), func(b *testing.B) {
			c0 := cpuTime()
			for range b.N {
				d.Forward(spec, x, batch, s.c)
			}
			b.ReportMetric((cpuTime()-c0).Seconds()/float64(b.N), "cpu-s/op")
		})
		n := s.N + 2*s.pad
		fft := fourier.NewCmplxFFT(n)
		plane, col := make([]complex128, n*n), make([]complex128, n)
		b.Run(fmt.Sprintf("gonumfft_n%d_c%d", n, s.c), func(b *testing.B) {
			c0 := cpuTime()
			defer func() { b.ReportMetric((cpuTime()-c0).Seconds()/float64(b.N), "cpu-s/op") }()
			for range b.N {
				for p := range batch * s.c {
					clear(plane)
					for y := range s.N {
						for xx := range s.N {
							plane[(y+s.pad)*n+xx+s.pad] = complex(float64(x[(p*s.N+y)*s.N+xx]), 0)
						}
					}
					for y := range n {
						fft.Coefficients(plane[y*n:(y+1)*n], plane[y*n:(y+1)*n])
					}
					for v := range n/2 + 1 {
						for u := range n {
							col[u] = plane[u*n+v]
						}
						fft.Coefficients(col, col)
						for u := range n {
							spec[(u*(n/2+1)+v)*batch*s.c+p] = complex64(col[u])
						}
					}
				}
			}
		})
	}
}
