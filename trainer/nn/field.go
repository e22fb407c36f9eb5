package nn

import (
	"math"

	"gonum.org/v1/gonum/blas"
)

// field is the arithmetic that Newton–Schulz needs of its scalars, so that one
// generic implementation runs on complex64 matrices (most frequencies of a LOT
// layer) and on float32 ones (the frequencies whose spectrum is real, where a
// real product costs a quarter of a complex one). Its implementations are the
// zero-size types real32 and complex32; all scalars passed in are real.
type field[T any] interface {
	// gemm is C ← alpha·op(A)·op(B) + beta·C; ConjTrans is Trans for reals.
	// With a split (a product not already inside a parallel loop) it may be
	// computed over the cores; without, it is one single-threaded product.
	gemm(split *cgemmSplit, tA, tB blas.Transpose, m, n, k int, alpha float32, a []T, lda int, b []T, ldb int, beta float32, c []T, ldc int)
	// shiftIdentity writes dst = a·I + s·q for r×r matrices.
	shiftIdentity(dst, q []T, r int, a, s float32)
	addDiagonal(x []T, r int, v float32)
	scale(x []T, s float32)
	axpy(dst []T, a float32, x []T) // dst += a·x
	frob2(x []T) float64            // Σ|x|²
	dotRe(a, b []T) float64         // Re Σ conj(a)·b
	hermSum(dst, g []T, r int)      // dst = g + gᴴ
}

type real32 struct{}

func (real32) gemm(split *cgemmSplit, tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if split != nil {
		Gemm(tA != blas.NoTrans, tB != blas.NoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) // splits large products itself
		return
	}
	gemmWhole(tA != blas.NoTrans, tB != blas.NoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func (real32) shiftIdentity(dst, q []float32, r int, a, s float32) {
	for i, v := range q[:r*r] {
		dst[i] = s * v
	}
	for i := range r {
		dst[i*r+i] += a
	}
}

func (real32) addDiagonal(x []float32, r int, v float32) {
	for i := range r {
		x[i*r+i] += v
	}
}

func (real32) scale(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

func (real32) axpy(dst []float32, a float32, x []float32) {
	for i, v := range x {
		dst[i] += a * v
	}
}

func (real32) frob2(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s
}

func (real32) dotRe(a, b []float32) float64 {
	var s float64
	for i, v := range a {
		s += float64(v) * float64(b[i])
	}
	return s
}

func (real32) hermSum(dst, g []float32, r int) {
	for i := range r {
		for j := range r {
			dst[i*r+j] = g[i*r+j] + g[j*r+i]
		}
	}
}

type complex32 struct{}

func (complex32) gemm(split *cgemmSplit, tA, tB blas.Transpose, m, n, k int, alpha float32, a []complex64, lda int, b []complex64, ldb int, beta float32, c []complex64, ldc int) {
	if split != nil {
		cgemmPar(split, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	Cgemm(tA, tB, m, n, k, complex(alpha, 0), a, lda, b, ldb, complex(beta, 0), c, ldc)
}

func (complex32) shiftIdentity(dst, q []complex64, r int, a, s float32) {
	cs := complex(s, 0)
	for i, v := range q[:r*r] {
		dst[i] = cs * v
	}
	for i := range r {
		dst[i*r+i] += complex(a, 0)
	}
}

func (complex32) addDiagonal(x []complex64, r int, v float32) {
	for i := range r {
		x[i*r+i] += complex(v, 0)
	}
}

func (complex32) scale(x []complex64, s float32) {
	f := floats(x)
	for i := range f {
		f[i] *= s
	}
}

func (complex32) axpy(dst []complex64, a float32, x []complex64) {
	d, f := floats(dst), floats(x)
	for i, v := range f {
		d[i] += a * v
	}
}

func (complex32) frob2(x []complex64) float64 {
	return real32{}.frob2(floats(x))
}

func (complex32) dotRe(a, b []complex64) float64 {
	return real32{}.dotRe(floats(a), floats(b)) // Re(conj(a)b) = a_re b_re + a_im b_im
}

func (complex32) hermSum(dst, g []complex64, r int) {
	for i := range r {
		for j := range r {
			v := g[j*r+i]
			dst[i*r+j] = g[i*r+j] + complex(real(v), -imag(v))
		}
	}
}

// sqrt32 is √x for a float64 in float32.
func sqrt32(x float64) float32 { return float32(math.Sqrt(x)) }
