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
*/
import "C"

import (
	"fmt"

	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/netlib/blas/netlib"
)

func init() {
	blas32.Use(netlib.Implementation{})
	defaultBackend = "openblas"
}

// gemmInfo names OpenBLAS's kernels (chosen from the CPU, or by the
// environment variable OPENBLAS_CORETYPE) and its thread count (from
// OPENBLAS_NUM_THREADS, else one per core).
func gemmInfo() string {
	return fmt.Sprintf("openblas, %s kernels, %d threads", C.GoString(C.openblas_get_corename()), int(C.openblas_get_num_threads()))
}
