package nn

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// LipschitzBound returns a proven upper bound on the ℓ2 Lipschitz constant of
// the layer as evaluation computes it: the operator norm of x ↦ crop(Re
// IDFT(M_orth · DFT(pad x))) for the float32 M_orth it holds, which is the
// largest singular value of M_orth over the frequencies. In exact arithmetic
// Newton–Schulz keeps every singular value below one; in float32 they can
// exceed it by rounding, so a certificate must not assume 1. For every
// frequency the Gram matrix G = M Mᴴ (or Mᴴ M, the smaller) is formed in
// float64 from the float32 values (each product exact) and t·I − G is shown
// positive definite by a Cholesky factorisation, for the first t of 1, 1 + 2⁻²⁰,
// 1 + 2⁻¹⁸, …; then σ_max² ≤ t up to float64 rounding of the Gram and the
// factorisation (below 1e-9 at these sizes, added). Complex frequencies go
// through the real embedding [[Re, −Im], [Im, Re]], whose Gram is positive
// definite exactly when the complex one is. It returns +Inf when no t up to
// 2³⁰ works (a layer that is not orthogonal at all). The bound is kept until
// the weights change.
func (l *LOT) LipschitzBound() float64 {
	l.Orthogonalize(false)
	if l.bound > 0 {
		return l.bound
	}
	ci, co := l.Cin, l.Cout
	oc := ci * co
	worst := 0.0
	for j := range l.nR + l.nC {
		var a blas64.General // the frequency's matrix, real or embedded
		if j < l.nR {
			a = blas64.General{Rows: co, Cols: ci, Stride: ci, Data: make([]float64, oc)}
			for i, v := range l.moR[j*oc:][:oc] {
				a.Data[i] = float64(v)
			}
		} else {
			m := l.moC[(j-l.nR)*oc:][:oc]
			a = blas64.General{Rows: 2 * co, Cols: 2 * ci, Stride: 2 * ci, Data: make([]float64, 4*oc)}
			for r := range co {
				for c := range ci {
					re, im := float64(real(m[r*ci+c])), float64(imag(m[r*ci+c]))
					a.Data[r*a.Stride+c], a.Data[r*a.Stride+ci+c] = re, -im
					a.Data[(co+r)*a.Stride+c], a.Data[(co+r)*a.Stride+ci+c] = im, re
				}
			}
		}
		worst = max(worst, gramBound(a))
	}
	l.bound = math.Sqrt(worst + 1e-9)
	return l.bound
}

// gramBound returns the first t of the ladder with t·I − G positive definite
// (G = A Aᵀ or Aᵀ A, the smaller), proved by Cholesky.
func gramBound(a blas64.General) float64 {
	tA, tB, n := blas.NoTrans, blas.Trans, a.Rows
	if a.Cols < a.Rows {
		tA, tB, n = blas.Trans, blas.NoTrans, a.Cols
	}
	g := blas64.General{Rows: n, Cols: n, Stride: n, Data: make([]float64, n*n)}
	blas64.Gemm(tA, tB, 1, a, a, 0, g)
	work := blas64.Symmetric{N: n, Stride: n, Uplo: blas.Upper, Data: make([]float64, n*n)}
	for t := 1.0; t < 1<<30; {
		for i, v := range g.Data {
			work.Data[i] = -v
		}
		for i := range n {
			work.Data[i*n+i] += t
		}
		if _, ok := lapack64.Potrf(work); ok {
			return t
		}
		if t == 1 {
			t = 1 + 0x1p-20
		} else {
			t = 1 + 4*(t-1)
		}
	}
	return math.Inf(1)
}
