// Package wino holds the AVX2 kernels of trainer/nn's Winograd F(2×2, 3×3)
// tile transforms for planes of 16×16 with padding 1 (the LiResNet block
// geometry: 8×8 tiles, one YMM register per tile row). It is separate from nn
// only because Go assembly cannot live in a package that uses cgo. Each
// kernel does one plane, exactly as nn's Go code for that plane does, with
// the same operations in the same order: nn's TestWinogradKernelsMatchGo
// checks that both agree exactly, and the Go code is the reference.
//
// Transformed tiles are addressed as in nn: tap ξ of tile ty·8 + tx of the
// plane is at ξ·stride + ty·8 + tx from the pointer passed, stride in floats.
// The caller guarantees that every element so addressed, and the 256 of the
// plane, lie inside its slices.
package wino

// Available reports whether the kernels run on this machine.
var Available = available
