package nn

import "math"

// LipschitzBound returns a proven upper bound on the ℓ2 Lipschitz constant of
// the layer's map in exact arithmetic: the operator norm of x ↦ crop(Re
// IDFT(M_orth · DFT(pad x))) for the float32 M_orth it holds, which is the
// largest singular value of M_orth over the frequencies. In exact arithmetic
// Newton–Schulz keeps every singular value below one; in float32 they can
// exceed it by rounding, so a certificate must not assume 1. Every
// frequency's matrix (complex ones through the real embedding [[Re, −Im],
// [Im, Re]], which has the same singular values) is proven by
// SquaredNormBound, the Cholesky check of s·I − MᴴM with its float64
// rounding bounded explicitly (specbound.go). It returns +Inf when no bound
// can be established. The bound is kept until the weights change. It does
// not cover the rounding of a forward pass: the certified one is LOT64's
// float64 evaluation, whose rounding LOT64 bounds.
func (l *LOT) LipschitzBound() float64 {
	l.Orthogonalize(false)
	if l.bound > 0 {
		return l.bound
	}
	ci, co := l.Cin, l.Cout
	oc := ci * co
	mats := func(yield func(matrix) bool) {
		for j := range l.nR + l.nC {
			var a matrix
			if j < l.nR {
				a = matrix{make([]float64, oc), co, ci}
				for i, v := range l.moR[j*oc:][:oc] {
					a.b[i] = float64(v)
				}
			} else {
				m := l.moC[(j-l.nR)*oc:][:oc]
				a = matrix{make([]float64, 4*oc), 2 * co, 2 * ci}
				ld := 2 * ci
				for r := range co {
					for c := range ci {
						re, im := float64(real(m[r*ci+c])), float64(imag(m[r*ci+c]))
						a.b[r*ld+c], a.b[r*ld+ci+c] = re, -im
						a.b[(co+r)*ld+c], a.b[(co+r)*ld+ci+c] = im, re
					}
				}
			}
			if !yield(a) {
				return
			}
		}
	}
	sq, err := proveMax(mats, 30)
	if err != nil {
		return math.Inf(1)
	}
	l.bound = Up(math.Sqrt(sq), 1)
	return l.bound
}
