package nn

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// A Gemmer computes C ← alpha·op(A)·op(B) + beta·C on row-major float32 matrices,
// with the argument conventions of BLAS sgemm (gonum's blas.Float32.Sgemm). It is
// the one seam through which every matrix product of this package passes, so a
// GPU (or other) implementation can replace the CPU BLAS without touching layers.
// gonum.Implementation and netlib.Implementation satisfy it.
type Gemmer interface {
	Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int,
		b []float32, ldb int, beta float32, c []float32, ldc int)
}

// gemmer is the override set by SetGemmer; nil means blas32.Implementation(),
// which is OpenBLAS when built with cgo (gemm_cgo.go) and pure Go otherwise.
var gemmer Gemmer

// defaultBackend names blas32's implementation; gemm_cgo.go sets it to "openblas".
var defaultBackend = "gonum"

// SetGemmer makes g the implementation behind Gemm and returns the previous
// override (nil for the default). SetGemmer(nil) restores the default. It is not
// synchronised: call it before using the layers, not during a step.
func SetGemmer(g Gemmer) (prev Gemmer) {
	prev, gemmer = gemmer, g
	return prev
}

// PureGo returns gonum's pure-Go BLAS, usable with SetGemmer in any build, e.g.
// to compare against OpenBLAS.
func PureGo() Gemmer { return gonum.Implementation{} }

// GemmBackend names the implementation Gemm currently uses: "openblas", "gonum",
// or "custom" after SetGemmer.
func GemmBackend() string {
	if gemmer != nil {
		return "custom"
	}
	return defaultBackend
}

// GemmInfo describes the implementation behind Gemm for logs and benchmark
// reports: for OpenBLAS, its kernels and thread count, and whether certmix
// chose the kernels (see useAVX512Kernels).
func GemmInfo() string {
	if gemmer != nil {
		return "custom"
	}
	return gemmInfo()
}

// Gemm computes C ← alpha·op(A)·op(B) + beta·C, where op(A) is m×k, op(B) is k×n
// and C is m×n, all row-major with leading dimensions lda, ldb, ldc; op(X) is Xᵀ
// when the matching trans flag is set. Empty products (m or n zero) do nothing.
func Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	tA, tB := blas.NoTrans, blas.NoTrans
	if transA {
		tA = blas.Trans
	}
	if transB {
		tB = blas.Trans
	}
	g := gemmer
	if g == nil {
		g = blas32.Implementation()
		if splitGemm && splitProduct(g, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) {
			return
		}
	}
	g.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
