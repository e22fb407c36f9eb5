//go:build cgo && !noopenblas

package audit

// With cgo, the filter's matrix products run on OpenBLAS through gonum's
// netlib bindings (Debian: libopenblas-dev), as trainer/nn's do. Each call
// runs on one thread: the search splits its work over cores itself, one
// tile of test images per worker, so results do not depend on the thread
// count. Build with CGO_ENABLED=0 or -tags noopenblas for gonum's pure Go.

/*
#cgo LDFLAGS: -lopenblas
extern void openblas_set_num_threads(int);
*/
import "C"

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/netlib/blas/netlib"
)

func init() {
	blas32.Use(netlib.Implementation{})
	C.openblas_set_num_threads(1)
}

// Backend names the BLAS the filter uses.
const Backend = "openblas"
