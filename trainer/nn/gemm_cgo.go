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
*/
import "C"

import (
	"fmt"

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
}

// gemmInfo names OpenBLAS's kernels (chosen from the CPU, or by the
// environment variable OPENBLAS_CORETYPE), its threads per call and the
// cores Gemm splits products over.
func gemmInfo() string {
	return fmt.Sprintf("openblas, %s kernels, %d thread(s) per call, products split over %d cores",
		C.GoString(C.openblas_get_corename()), int(C.openblas_get_num_threads()), parts())
}
