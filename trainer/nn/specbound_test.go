package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/mat"
)

// denseConv returns the convolution of geometry g with kernel w as a dense
// float64 matrix (OutLen × InLen), built tap by tap from the definition.
func denseConv(g ConvGeom, w []float32) *mat.Dense {
	ho, wo := g.Ho(), g.Wo()
	a := mat.NewDense(g.OutLen(), g.InLen(), nil)
	for o := range g.Cout {
		for i := range ho {
			for j := range wo {
				row := (o*ho+i)*wo + j
				for c := range g.Cin {
					for ky := range g.K {
						for kx := range g.K {
							y, x := i*g.Stride-g.Pad+ky, j*g.Stride-g.Pad+kx
							if y < 0 || y >= g.H || x < 0 || x >= g.W {
								continue
							}
							col := (c*g.H+y)*g.W + x
							a.Set(row, col, a.At(row, col)+float64(w[((o*g.Cin+c)*g.K+ky)*g.K+kx]))
						}
					}
				}
			}
		}
	}
	return a
}

// svdNorm is the largest singular value of a by a float64 SVD.
func svdNorm(t *testing.T, a mat.Matrix) float64 {
	var svd mat.SVD
	if !svd.Factorize(a, mat.SVDNone) {
		t.Fatal("SVD failed")
	}
	return svd.Values(nil)[0]
}

// TestConvNormBoundAboveSVD: for the DFT bound and the banded one, on random kernels of every geometry the four
// architectures use (LiResNet's stem 5x5 stride 2, blocks 3x3 — also as
// I + A·V/√D —, neck 4x4 stride 4; LOT's stride-2 downsampling; with and
// without padding, rectangular grids), the proven bound is at least the
// exact norm from an SVD of the full operator, every time, and not far
// above it.
func TestConvNormBoundAboveSVD(t *testing.T) {
	cases := []struct {
		name string
		g    ConvGeom
	}{
		{"stem 5x5 s2 p2", ConvGeom{Cin: 1, Cout: 4, K: 5, Stride: 2, Pad: 2, H: 12, W: 12}},
		{"stem 5x5 s2 p2 rgb", ConvGeom{Cin: 3, Cout: 4, K: 5, Stride: 2, Pad: 2, H: 10, W: 8}},
		{"block 3x3 p1", ConvGeom{Cin: 4, Cout: 4, K: 3, Stride: 1, Pad: 1, H: 8, W: 8}},
		{"block 3x3 p0", ConvGeom{Cin: 3, Cout: 5, K: 3, Stride: 1, Pad: 0, H: 7, W: 9}},
		{"neck 4x4 s4", ConvGeom{Cin: 4, Cout: 8, K: 4, Stride: 4, Pad: 0, H: 8, W: 8}},
		{"neck 4x4 s4 p1", ConvGeom{Cin: 2, Cout: 3, K: 4, Stride: 4, Pad: 1, H: 9, W: 9}},
		{"lot 2x2 s2", ConvGeom{Cin: 3, Cout: 6, K: 2, Stride: 2, Pad: 0, H: 8, W: 8}},
		{"lot 3x3 s2 p1", ConvGeom{Cin: 2, Cout: 4, K: 3, Stride: 2, Pad: 1, H: 9, W: 7}},
		{"1x1", ConvGeom{Cin: 6, Cout: 3, K: 1, Stride: 1, Pad: 0, H: 5, W: 5}},
		{"kernel as big as input", ConvGeom{Cin: 2, Cout: 2, K: 5, Stride: 1, Pad: 0, H: 5, W: 5}},
	}
	rng := rand.New(rand.NewPCG(15, 1))
	for _, tc := range cases {
		for trial := range 4 {
			w := make([]float32, tc.g.WeightLen())
			Normal(w, 1, rng)
			if trial == 3 && tc.g.Cin == tc.g.Cout && tc.g.K == 3 { // LiResNet block kernel: identity plus a small part
				for i := range w {
					w[i] *= 0.05
				}
				for o := range tc.g.Cout {
					w[(o*tc.g.Cin+o)*9+4] += 1
				}
			}
			exact := svdNorm(t, denseConv(tc.g, w))
			got, err := ConvNormBound(tc.g, w)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !(got >= exact) {
				t.Errorf("%s trial %d: bound %.17g below the exact norm %.17g", tc.name, trial, got, exact)
			}
			if got > 3*exact {
				t.Errorf("%s trial %d: bound %g more than 3x the exact norm %g", tc.name, trial, got, exact)
			}
			band, err := BandedConvNormBound(tc.g, w, nil)
			if err != nil {
				t.Fatalf("%s: banded: %v", tc.name, err)
			}
			if !(band >= exact) || band > exact*(1+1e-5) {
				t.Errorf("%s trial %d: banded bound %.17g, exact norm %.17g: want above and within 1e-5", tc.name, trial, band, exact)
			}
			best, err := ConvNormBoundFrom(tc.g, w, nil)
			if err != nil || best != min(got, band) {
				t.Errorf("%s trial %d: ConvNormBoundFrom %v (%v), want the smaller of %v and %v", tc.name, trial, best, err, got, band)
			}
			t.Logf("%s trial %d: exact %.9g DFT bound %.9g (+%.2g relative), banded +%.2g", tc.name, trial, exact, got, got/exact-1, band/exact-1)
		}
	}
}

// TestLinearNormBound: the proven bound of a random matrix is above its SVD
// norm and within 1e-5 of it (the candidate comes from power iteration and
// the ladder's first rungs); also for a matrix whose top singular values
// cluster, where power iteration converges slowly.
func TestLinearNormBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 2))
	for _, sh := range [][2]int{{10, 7}, {7, 10}, {64, 64}, {3, 40}} {
		w := make([]float32, sh[0]*sh[1])
		Normal(w, 1, rng)
		exact := svdNorm(t, mat.NewDense(sh[0], sh[1], f64(w)))
		got, err := LinearNormBound(w, sh[0], sh[1])
		if err != nil {
			t.Fatal(err)
		}
		if !(got >= exact) || got > exact*(1+1e-5) {
			t.Errorf("%v: bound %.17g, exact %.17g", sh, got, exact)
		}
	}
	// Clustered: an orthogonal-ish matrix with singular values 1, 1 − 1e-7, ….
	n := 32
	q := mat.NewDense(n, n, nil)
	for i := range n {
		for j := range n {
			q.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(q)
	var qq mat.Dense
	qr.QTo(&qq)
	w := make([]float32, n*n)
	for i := range n {
		for j := range n {
			var s float64
			for k := range n {
				s += qq.At(i, k) * (1 - 1e-7*float64(k)) * qq.At(j, k)
			}
			w[i*n+j] = float32(s)
		}
	}
	exact := svdNorm(t, mat.NewDense(n, n, f64(w)))
	got, err := LinearNormBound(w, n, n)
	if err != nil {
		t.Fatal(err)
	}
	if !(got >= exact) || got > exact*(1+1e-5) {
		t.Errorf("clustered: bound %.17g, exact %.17g", got, exact)
	}
}

// TestSquaredNormBoundRefuses: a candidate below the true squared norm fails
// the Cholesky check (the check is not vacuous).
func TestSquaredNormBoundRefuses(t *testing.T) {
	b := []float64{3, 0, 0, 4, 1, 1}
	exact := svdNorm(t, mat.NewDense(3, 2, b))
	if _, ok := SquaredNormBound(b, 3, 2, exact*exact*(1-1e-12)); ok {
		t.Error("a candidate below ‖B‖² was proven")
	}
	if s, ok := SquaredNormBound(b, 3, 2, exact*exact*(1+1e-9)); !ok || s < exact*exact {
		t.Errorf("a candidate above ‖B‖² was not proven: %v %v", s, ok)
	}
}

func f64(w []float32) []float64 {
	out := make([]float64, len(w))
	for i, v := range w {
		out[i] = float64(v)
	}
	return out
}

// TestBandCholeskyAgreesWithGonum checks the band Cholesky the norm checks
// run (OpenBLAS's dpbtrf under cgo, read through the row-major/column-major
// transposition) against gonum's Pbtrf on random symmetric band matrices:
// the same factor on positive definite ones, and both refusing indefinite
// ones. Under a pure-Go build both are gonum's and the test says so.
func TestBandCholeskyAgreesWithGonum(t *testing.T) {
	if defaultBackend != "openblas" {
		t.Skip("no OpenBLAS in this build: bandCholesky is gonum's Pbtrf itself")
	}
	rng := rand.New(rand.NewPCG(3, 9))
	for trial := range 20 {
		n, kd := 5+rng.IntN(120), rng.IntN(12)
		kd = min(kd, n-1)
		ld := kd + 1 + rng.IntN(3)
		ab := make([]float64, n*ld)
		for i := range n {
			for d := 0; d <= kd && i+d < n; d++ {
				ab[i*ld+d] = rng.NormFloat64()
			}
		}
		shift := float64(kd+1) * 3 // diagonal dominance: positive definite
		if trial%4 == 3 {
			shift = -1 // a negative diagonal entry at least: indefinite
		}
		for i := range n {
			ab[i*ld] = shift + rng.Float64()
		}
		if trial%4 == 3 {
			ab[(n/2)*ld] = -5
		}
		want := slices.Clone(ab)
		_, wantOK := lapack64.Pbtrf(blas64.SymmetricBand{Uplo: blas.Upper, N: n, K: kd, Stride: ld, Data: want})
		got := slices.Clone(ab)
		gotOK := bandCholesky(n, kd, got, ld)
		if gotOK != wantOK || gotOK != (trial%4 != 3) {
			t.Fatalf("trial %d (n %d, kd %d): factorisation succeeded %v, gonum %v", trial, n, kd, gotOK, wantOK)
		}
		if !gotOK {
			continue
		}
		for i := range n {
			for d := 0; d <= kd && i+d < n; d++ {
				if a, b := got[i*ld+d], want[i*ld+d]; math.Abs(a-b) > 1e-12*(1+math.Abs(b)) {
					t.Fatalf("trial %d: factor entry (%d, %d) = %v, gonum %v", trial, i, i+d, a, b)
				}
			}
		}
	}
}
