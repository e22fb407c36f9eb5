//go:build !cgo || noopenblas

package audit

// Backend names the BLAS the filter uses.
const Backend = "gonum pure Go"
