//go:build cgo && !noopenblas

package nn

// OpenBLAS's cblas_cgemm behind CGemmer. gonum's netlib binding would do, but
// it passes alpha and beta to C by address, which moves them to the heap: two
// allocations per product, hundreds per LOT step. This wrapper passes them by
// value and builds the C arrays on the C stack.
//
// Products of at least cgemm3mMin multiply-adds go to cblas_cgemm3m, the 3M
// method (three real products instead of four): measured here, 150 against
// 120 effective GFLOP per CPU-second at 512×512×512 and on par at 64
// (BenchmarkCgemm3m). Its rounding error is of the same order (each complex
// product's imaginary part is formed as (a+b)(c+d) − ac − bd).

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>

static void certmix_cgemm(int ta, int tb, int m, int n, int k, float ar, float ai,
		const void *a, int lda, const void *b, int ldb, float br, float bi, void *c, int ldc, int m3) {
	const float alpha[2] = {ar, ai}, beta[2] = {br, bi};
	if (m3) {
		cblas_cgemm3m(CblasRowMajor, (enum CBLAS_TRANSPOSE)ta, (enum CBLAS_TRANSPOSE)tb, m, n, k,
			alpha, a, lda, b, ldb, beta, c, ldc);
		return;
	}
	cblas_cgemm(CblasRowMajor, (enum CBLAS_TRANSPOSE)ta, (enum CBLAS_TRANSPOSE)tb, m, n, k,
		alpha, a, lda, b, ldb, beta, c, ldc);
}
*/
import "C"

import (
	"unsafe"

	"gonum.org/v1/gonum/blas"
)

func init() { defaultCGemmer = openBLAS{} }

// cgemm3mMin is the size m·n·k from which Cgemm uses the 3M method.
const cgemm3mMin = 128 * 128 * 128

// openBLAS is cblas_cgemm with the bounds checks of gonum's implementations.
type openBLAS struct{}

func cblasTrans(t blas.Transpose) (C.int, bool) {
	switch t {
	case blas.NoTrans:
		return C.CblasNoTrans, false
	case blas.Trans:
		return C.CblasTrans, true
	case blas.ConjTrans:
		return C.CblasConjTrans, true
	}
	panic("nn: Cgemm: bad transpose")
}

func (openBLAS) Cgemm(tA, tB blas.Transpose, m, n, k int, alpha complex64, a []complex64, lda int,
	b []complex64, ldb int, beta complex64, c []complex64, ldc int) {
	ta, transA := cblasTrans(tA)
	tb, transB := cblasTrans(tB)
	rowA, colA, rowB, colB := m, k, k, n
	if transA {
		rowA, colA = k, m
	}
	if transB {
		rowB, colB = n, k
	}
	if m < 0 || n < 0 || k < 0 || lda < max(1, colA) || ldb < max(1, colB) || ldc < max(1, n) {
		panic("nn: Cgemm: bad dimension or leading dimension")
	}
	if m == 0 || n == 0 {
		return
	}
	if (k > 0 && (len(a) < lda*(rowA-1)+colA || len(b) < ldb*(rowB-1)+colB)) || len(c) < ldc*(m-1)+n {
		panic("nn: Cgemm: slice too short")
	}
	var pa, pb unsafe.Pointer
	if k > 0 {
		pa, pb = unsafe.Pointer(&a[0]), unsafe.Pointer(&b[0])
	}
	m3 := C.int(0)
	if m*n*k >= cgemm3mMin {
		m3 = 1
	}
	C.certmix_cgemm(ta, tb, C.int(m), C.int(n), C.int(k), C.float(real(alpha)), C.float(imag(alpha)),
		pa, C.int(lda), pb, C.int(ldb), C.float(real(beta)), C.float(imag(beta)), unsafe.Pointer(&c[0]), C.int(ldc), m3)
}
