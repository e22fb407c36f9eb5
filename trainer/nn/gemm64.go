package nn

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// gemm64 runs the float64 and complex128 products of LOT64: OpenBLAS (one
// thread per call) when the build links it (gemm_cgo.go), else gonum's pure
// Go. Both compute every entry as an inner product of the operands' entries
// in some order (alpha = 1 and beta = 0 are exact), which is all LOT64's
// rounding bound assumes.
var gemm64 interface {
	Dgemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int)
	Zgemm(tA, tB blas.Transpose, m, n, k int, alpha complex128, a []complex128, lda int, b []complex128, ldb int, beta complex128, c []complex128, ldc int)
} = gonum.Implementation{}
