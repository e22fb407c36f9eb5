package nn

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// gemm64 runs the float64 and complex128 products of LOT64: OpenBLAS (one
// thread per call) when the build links it (gemm_cgo.go), else gonum's pure
// Go. Both compute every entry as an inner product of the operands' entries
// in some order (alpha = 1 and beta = 0 are exact), which is all LOT64's
// rounding bound assumes.
var gemm64 interface {
	Dgemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int)
	Zgemm(tA, tB blas.Transpose, m, n, k int, alpha complex128, a []complex128, lda int, b []complex128, ldb int, beta complex128, c []complex128, ldc int)
	Dsbmv(ul blas.Uplo, n, k int, alpha float64, a []float64, lda int, x []float64, incX int, beta float64, y []float64, incY int)
} = gonum.Implementation{}

// bandCholesky factorises in place the symmetric positive definite band
// matrix of order n with kd super-diagonals stored row-major upper (element
// (i, j), i ≤ j ≤ i+kd, at ab[i*ldab + j−i]) as UᵀU, and reports whether
// it succeeded (false: the matrix is not numerically positive definite).
// LAPACK's dpbtrf: OpenBLAS's with cgo (gemm_cgo.go), else gonum's.
// Both run the reference blocked algorithm, whose every entry is an inner
// product in some order, which is all the check in BandedConvNormBound
// assumes.
var bandCholesky = func(n, kd int, ab []float64, ldab int) bool {
	_, ok := lapack64.Pbtrf(blas64.SymmetricBand{Uplo: blas.Upper, N: n, K: kd, Stride: ldab, Data: ab})
	return ok
}

// Dgemm computes C = alpha·op(A)·op(B) + beta·C in float64 (row-major, as
// blas64) on the backend LOT64 uses: OpenBLAS with cgo, one thread per
// call, else gonum's pure Go. The proven forward passes of the models
// (LiResNet's float64 tail) run their products through it; their rounding
// bounds assume only that every entry is an inner product of the operands'
// entries in some order, with or without fused multiply-adds.
func Dgemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	gemm64.Dgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
