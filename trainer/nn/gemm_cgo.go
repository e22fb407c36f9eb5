//go:build cgo && !noopenblas

package nn

// With cgo, Gemm defaults to OpenBLAS through gonum's netlib bindings. netlib's
// cgo code names no library, so the directive below links OpenBLAS (Debian:
// apt-get install libopenblas-dev) into every binary that imports nn. Build with
// CGO_ENABLED=0 or -tags noopenblas for gonum's pure-Go BLAS instead.

/*
#cgo LDFLAGS: -lopenblas
extern char *openblas_get_corename(void);
extern int openblas_get_num_threads(void);
extern void openblas_set_num_threads(int);
#include <stddef.h>
// LAPACK's Fortran dpbtrf in OpenBLAS (32-bit integers, the hidden length of
// the character argument last).
extern void dpbtrf_(const char *uplo, const int *n, const int *kd, double *ab, const int *ldab, int *info, size_t uplo_len);
static int certmix_dpbtrf(int n, int kd, double *ab, int ldab) {
	int info = 0;
	dpbtrf_("L", &n, &kd, ab, &ldab, &info, 1);
	return info;
}
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"

	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/netlib/blas/netlib"
)

// OpenBLAS runs each call on one thread, and Gemm splits large products over
// GOMAXPROCS cores itself (gemm_split.go), whatever OPENBLAS_NUM_THREADS says.
func init() {
	blas32.Use(netlib.Implementation{})
	gemm64 = netlib.Implementation{}
	defaultBackend = "openblas"
	C.openblas_set_num_threads(1)
	splitGemm = true
	bandCholesky = openblasBandCholesky
}

// openblasBandCholesky is bandCholesky on OpenBLAS's LAPACK: the row-major
// upper band storage is, read column-major, the lower band storage of the
// same symmetric matrix, which dpbtrf factorises as LLᵀ with L = Uᵀ in the
// same places.
func openblasBandCholesky(n, kd int, ab []float64, ldab int) bool {
	if n == 0 {
		return true
	}
	if n < 0 || kd < 0 || ldab < kd+1 || len(ab) < (n-1)*ldab+kd+1 || n > math.MaxInt32 || ldab > math.MaxInt32 {
		panic(fmt.Sprintf("nn: band Cholesky of order %d, %d super-diagonals, stride %d, %d values", n, kd, ldab, len(ab)))
	}
	return C.certmix_dpbtrf(C.int(n), C.int(kd), (*C.double)(unsafe.Pointer(&ab[0])), C.int(ldab)) == 0
}

// gemmInfo names OpenBLAS's kernels (chosen from the CPU, or by the
// environment variable OPENBLAS_CORETYPE), its threads per call and the
// cores Gemm splits products over.
func gemmInfo() string {
	return fmt.Sprintf("openblas, %s kernels, %d thread(s) per call, products split over %d cores",
		C.GoString(C.openblas_get_corename()), int(C.openblas_get_num_threads()), parts())
}
