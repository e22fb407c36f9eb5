package nn

import (
	"math"
	"math/rand/v2"
)

// An Operator is a bias-free linear map A (a conv at its real input size, or a
// linear layer) seen as a matrix of OutLen()×InLen(), whose spectral norm
// PowerIteration estimates.
type Operator interface {
	InLen() int
	OutLen() int
	// Apply writes out = A·in.
	Apply(out, in []float32)
	// ApplyT writes out = Aᵀ·in, the exact adjoint of Apply.
	ApplyT(out, in []float32)
	// WeightGrad ACCUMULATES into dW the gradient of <u, A·v> with respect to A's
	// weight, u and v fixed (for a matrix, u·vᵀ).
	WeightGrad(dW, u, v []float32)
}

// ConvOperator is the conv of Op with kernel Weight and no bias, on one image of
// Op's real input size (zero padding and stride included). Weight is read at each
// call, so an owner may refill it in place (e.g. the LiResNet effective kernel).
type ConvOperator struct {
	Op     *ConvOp
	Weight []float32
}

// InLen is Cin·H·W.
func (c ConvOperator) InLen() int { return c.Op.InLen() }

// OutLen is Cout·Ho·Wo.
func (c ConvOperator) OutLen() int { return c.Op.OutLen() }

// Apply writes out = conv(in) without bias.
func (c ConvOperator) Apply(out, in []float32) { c.Op.Forward(out, in, c.Weight, nil, 1) }

// ApplyT writes out = convᵀ(in).
func (c ConvOperator) ApplyT(out, in []float32) { c.Op.Transpose(out, in, c.Weight, 1) }

// WeightGrad is the conv weight gradient for input v and output gradient u.
func (c ConvOperator) WeightGrad(dW, u, v []float32) {
	c.Op.Backward(nil, dW, nil, u, v, c.Weight, 1)
}

// LinearOperator is v ↦ Weight·v for a Weight of Out×In (PyTorch layout).
type LinearOperator struct {
	In, Out int
	Weight  []float32
}

// InLen is In.
func (l LinearOperator) InLen() int { return l.In }

// OutLen is Out.
func (l LinearOperator) OutLen() int { return l.Out }

// Apply writes out = Weight·in.
func (l LinearOperator) Apply(out, in []float32) {
	LinearForward(out, in, l.Weight, nil, 1, l.In, l.Out)
}

// ApplyT writes out = Weightᵀ·in.
func (l LinearOperator) ApplyT(out, in []float32) {
	LinearTranspose(out, in, l.Weight, 1, l.In, l.Out)
}

// WeightGrad accumulates the outer product u·vᵀ into dW.
func (l LinearOperator) WeightGrad(dW, u, v []float32) {
	LinearBackward(nil, dW, nil, u, v, l.Weight, 1, l.In, l.Out)
}

// PowerIteration estimates the spectral norm σ = ‖A‖₂ of an Operator, the layer's
// Lipschitz bound. Its vector V persists across Steps (and across training steps,
// via checkpoints), so a few iterations per step keep it converged. Power
// iteration approaches σ from below: a certificate is only as sound as the
// convergence, hence many iterations before evaluation.
type PowerIteration struct {
	Op    Operator
	V     []float32 // persistent unit vector, InLen long
	U     []float32 // A·V/‖A·V‖ after the last Step, OutLen long
	Sigma float32   // ‖A·V‖ after the last Step

	w  []float32 // AᵀA·V scratch, InLen long
	du []float32 // dσ·U scratch, OutLen long
}

// NewPowerIteration starts power iteration on op from a normalised N(0, 1) vector
// drawn from the caller's rng.
func NewPowerIteration(op Operator, rng *rand.Rand) *PowerIteration {
	p := &PowerIteration{
		Op: op,
		V:  make([]float32, op.InLen()), U: make([]float32, op.OutLen()),
		w: make([]float32, op.InLen()), du: make([]float32, op.OutLen()),
	}
	Normal(p.V, 1, rng)
	normalize(p.V)
	return p
}

// SetV replaces the persistent vector by a normalised copy of v (e.g. a reference
// vector or one restored from a checkpoint).
func (p *PowerIteration) SetV(v []float32) {
	if len(v) != len(p.V) {
		panic("nn: PowerIteration.SetV: bad length")
	}
	copy(p.V, v)
	normalize(p.V)
}

// Step performs iters updates V ← normalize(AᵀA·V), then sets U = A·V/‖A·V‖ and
// returns σ = ‖A·V‖. Step(0) only re-evaluates σ for the current V.
func (p *PowerIteration) Step(iters int) float32 {
	for range iters {
		p.Op.Apply(p.U, p.V)
		p.Op.ApplyT(p.w, p.U)
		if normalize(p.w) > 0 {
			copy(p.V, p.w)
		}
	}
	p.Op.Apply(p.U, p.V)
	p.Sigma = normalize(p.U)
	return p.Sigma
}

// Backward ACCUMULATES dSigma·∂σ/∂W into dW, the gradient of σ = ‖A·V‖ with V held
// constant: ∂σ/∂W = U·Vᵀ for a matrix, and for a conv the weight gradient with
// input V and output gradient U. Call it after Step.
func (p *PowerIteration) Backward(dW []float32, dSigma float32) {
	for i, u := range p.U {
		p.du[i] = dSigma * u
	}
	p.Op.WeightGrad(dW, p.du, p.V)
}

// normalize scales x to unit ℓ2 norm (unless it is zero) and returns its norm.
func normalize(x []float32) float32 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	nrm := math.Sqrt(s)
	if nrm == 0 {
		return 0
	}
	inv := float32(1 / nrm)
	for i := range x {
		x[i] *= inv
	}
	return float32(nrm)
}
