//go:build cgo && !noopenblas

package nn

// With cgo, Gemm defaults to OpenBLAS through gonum's netlib bindings. netlib's
// cgo code names no library, so the directive below links OpenBLAS (Debian:
// apt-get install libopenblas-dev) into every binary that imports nn. Build with
// CGO_ENABLED=0 or -tags noopenblas for gonum's pure-Go BLAS instead.

/*
#cgo LDFLAGS: -lopenblas
*/
import "C"

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/netlib/blas/netlib"
)

func init() {
	blas32.Use(netlib.Implementation{})
	defaultBackend = "openblas"
}
