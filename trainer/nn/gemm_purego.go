//go:build !cgo || noopenblas

package nn

// gemmInfo describes the pure-Go BLAS of a build without OpenBLAS.
func gemmInfo() string { return "gonum pure Go" }
