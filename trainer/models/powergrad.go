package models

import (
	"math"

	"certmix/trainer/nn"
)

// trackedPI runs power iterations while keeping every iterate, so that the
// gradient of the bound can flow through the iterations, as in the
// authors' LiResNet (where the vectors are not detached). Near-identity
// kernels (the LinearRes blocks) have nearly equal top singular values;
// there the iterates are far from the singular vector and the gradient
// through them differs from u vᵀ by tens of percent.
type trackedPI struct {
	pi    *nn.PowerIteration
	hist  [][]float32 // v_0 .. v_T
	norms []float64   // ‖AᵀA v_t‖
	z, w  []float32   // scratch: A·x (out), Aᵀ·y (in)
	dv    []float32
}

func newTrackedPI(pi *nn.PowerIteration) *trackedPI {
	op := pi.Op
	return &trackedPI{pi: pi, z: make([]float32, op.OutLen()), w: make([]float32, op.InLen()), dv: make([]float32, op.InLen())}
}

// step runs iters iterations from the persistent vector, keeping them, and
// returns σ = ‖A v_T‖; the vector persists as PowerIteration.Step leaves it.
func (t *trackedPI) step(iters int) float32 {
	p, op := t.pi, t.pi.Op
	for len(t.hist) < iters+1 {
		t.hist = append(t.hist, make([]float32, op.InLen()))
	}
	t.norms = t.norms[:0]
	for i := range iters {
		copy(t.hist[i], p.V)
		op.Apply(p.U, p.V)
		op.ApplyT(p.V, p.U)
		t.norms = append(t.norms, scale(p.V))
	}
	copy(t.hist[iters], p.V)
	op.Apply(p.U, p.V)
	p.Sigma = float32(scale(p.U))
	return p.Sigma
}

// backward adds dσ times the gradient of the last step's σ with respect to
// the operator's weight into dW, through every iteration.
func (t *trackedPI) backward(dW []float32, dSigma float32) {
	p, op := t.pi, t.pi.Op
	T := len(t.norms)
	du := make([]float32, op.OutLen())
	for i, u := range p.U {
		du[i] = dSigma * u
	}
	vT := t.hist[T]
	op.WeightGrad(dW, du, vT)
	op.ApplyT(t.dv, du)
	dw, dz := make([]float32, op.InLen()), make([]float32, op.OutLen())
	for i := T - 1; i >= 0; i-- {
		next, cur := t.hist[i+1], t.hist[i]
		var dot float64
		for j := range next {
			dot += float64(next[j]) * float64(t.dv[j])
		}
		inv := 1 / t.norms[i]
		for j := range dw {
			dw[j] = float32((float64(t.dv[j]) - float64(next[j])*dot) * inv)
		}
		op.Apply(t.z, cur) // z = A v_t
		op.Apply(dz, dw)   // dz = A dw
		op.WeightGrad(dW, t.z, dw)
		op.WeightGrad(dW, dz, cur)
		op.ApplyT(t.dv, dz)
	}
}

// scale normalises x to unit norm and returns the norm it had.
func scale(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	n := math.Sqrt(s)
	if n > 0 {
		inv := float32(1 / n)
		for i := range x {
			x[i] *= inv
		}
	}
	return n
}
