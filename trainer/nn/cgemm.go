package nn

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// A CGemmer computes C ← alpha·op(A)·op(B) + beta·C on row-major complex64
// matrices, with the argument conventions of BLAS cgemm (gonum's
// blas.Complex64.Cgemm); op may conjugate-transpose. It is the complex twin of
// Gemmer: every complex matrix product of this package (the LOT layer's
// per-frequency products, its Newton–Schulz iterations and its DFTs) passes
// through Cgemm, so the same seam serves a GPU. gonum.Implementation and
// netlib.Implementation satisfy it.
type CGemmer interface {
	Cgemm(tA, tB blas.Transpose, m, n, k int, alpha complex64, a []complex64, lda int,
		b []complex64, ldb int, beta complex64, c []complex64, ldc int)
}

// cgemmer is the override set by SetCGemmer; nil means defaultCGemmer:
// OpenBLAS when built with cgo (cgemm_cgo.go), gonum's pure Go otherwise.
var cgemmer CGemmer

var defaultCGemmer CGemmer = gonum.Implementation{}

// SetCGemmer makes g the implementation behind Cgemm and returns the previous
// override (nil for the default); SetCGemmer(nil) restores the default. Like
// SetGemmer it is not synchronised.
func SetCGemmer(g CGemmer) (prev CGemmer) {
	prev, cgemmer = cgemmer, g
	return prev
}

// Cgemm computes C ← alpha·op(A)·op(B) + beta·C, where op(A) is m×k, op(B) is
// k×n and C is m×n, all row-major with leading dimensions lda, ldb, ldc; op(X)
// is X, Xᵀ or Xᴴ by tA and tB. Empty products (m or n zero) do nothing.
func Cgemm(tA, tB blas.Transpose, m, n, k int, alpha complex64, a []complex64, lda int,
	b []complex64, ldb int, beta complex64, c []complex64, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	g := cgemmer
	if g == nil {
		g = defaultCGemmer
	}
	g.Cgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
