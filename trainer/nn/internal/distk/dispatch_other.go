//go:build !amd64 || purego

package distk

import "errors"

// Without amd64 assembly the pure-Go kernels are the only path.
const haveAVX512 = false

var errNoAVX512 = errors.New("built without the amd64 kernels")

var avx512Kernels = scalarKernels
