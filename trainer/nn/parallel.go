package nn

import "runtime"

// The layers' own loops (Winograd transforms, split products, LOT's loops
// over frequencies) run on the workers of internal/pool, shared with the
// distance kernels: between Gemms the BLAS threads are idle, so these loops
// use the cores through the pool, and handing it work allocates nothing.

// maxParts bounds the parts a layer splits its Go loops into (and so the
// per-part scratch it allocates).
const maxParts = 8

// parts is how many parts Go loops are split into: one per core Go may use
// (GOMAXPROCS now), at most maxParts.
func parts() int {
	return min(runtime.GOMAXPROCS(0), maxParts)
}
