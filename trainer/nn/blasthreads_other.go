//go:build !cgo || noopenblas

package nn

// setBLASThreads has nothing to set for gonum's pure-Go BLAS.
func setBLASThreads(n int) int { return n }
