package nn

import (
	"math"
	"math/rand/v2"
)

// LinearForward computes out = in·weightᵀ + bias for n rows: in is n×nIn, weight
// nOut×nIn (PyTorch layout), bias nOut or nil, out n×nOut. The plain-function form
// lets an owner supply a derived weight (e.g. the row-normalised LLN head).
func LinearForward(out, in, weight, bias []float32, n, nIn, nOut int) {
	if len(out) < n*nOut || len(in) < n*nIn || len(weight) != nOut*nIn || (bias != nil && len(bias) != nOut) {
		panic("nn: LinearForward: bad slice length")
	}
	Gemm(false, true, n, nOut, nIn, 1, in, nIn, weight, nIn, 0, out, nOut)
	if bias != nil {
		for i := 0; i < n; i++ {
			row := out[i*nOut:][:nOut]
			for j, b := range bias {
				row[j] += b
			}
		}
	}
}

// LinearBackward ACCUMULATES ∂L/∂weight = dOutᵀ·in into dWeight and the column sums
// of dOut into dBias, and WRITES ∂L/∂in = dOut·weight into dIn; nil skips any of them.
func LinearBackward(dIn, dWeight, dBias, dOut, in, weight []float32, n, nIn, nOut int) {
	if len(dOut) < n*nOut || len(weight) != nOut*nIn || (dIn != nil && len(dIn) < n*nIn) ||
		(dWeight != nil && (len(dWeight) != nOut*nIn || len(in) < n*nIn)) || (dBias != nil && len(dBias) != nOut) {
		panic("nn: LinearBackward: bad slice length")
	}
	if dWeight != nil {
		Gemm(true, false, nOut, nIn, n, 1, dOut, nOut, in, nIn, 1, dWeight, nIn)
	}
	if dBias != nil {
		for j := range dBias {
			var s float64
			for i := 0; i < n; i++ {
				s += float64(dOut[i*nOut+j])
			}
			dBias[j] += float32(s)
		}
	}
	if dIn != nil {
		LinearTranspose(dIn, dOut, weight, n, nIn, nOut)
	}
}

// LinearTranspose applies the adjoint: out = in·weight, i.e. weightᵀ·v for each of
// the n rows v of in (n×nOut), giving n×nIn.
func LinearTranspose(out, in, weight []float32, n, nIn, nOut int) {
	Gemm(false, false, n, nIn, nOut, 1, in, nOut, weight, nIn, 0, out, nIn)
}

// Linear is a fully connected layer out = in·Wᵀ + b with W of shape (Out, In).
type Linear struct {
	In, Out int
	Weight  *Param // Out×In
	Bias    *Param // Out; nil without bias
}

// NewLinear makes a linear layer named name (params name.weight, name.bias) with
// PyTorch's default initialisation: weight and bias from U(±1/√In), drawn from rng.
func NewLinear(name string, in, out int, bias bool, rng *rand.Rand) *Linear {
	if in < 1 || out < 1 {
		panic("nn: NewLinear: invalid size")
	}
	l := &Linear{In: in, Out: out, Weight: NewParam(name+".weight", out, in)}
	bound := 1 / math.Sqrt(float64(in))
	Uniform(l.Weight.W, bound, rng)
	if bias {
		l.Bias = NewParam(name+".bias", out)
		Uniform(l.Bias.W, bound, rng)
	}
	return l
}

// Forward computes out (n×Out) = in (n×In)·Wᵀ + b.
func (l *Linear) Forward(out, in []float32, n int) {
	var b []float32
	if l.Bias != nil {
		b = l.Bias.W
	}
	LinearForward(out, in, l.Weight.W, b, n, l.In, l.Out)
}

// Backward accumulates the weight and bias gradients and writes ∂L/∂in into dIn
// unless it is nil.
func (l *Linear) Backward(dIn, dOut, in []float32, n int) {
	var db []float32
	if l.Bias != nil {
		db = l.Bias.G
	}
	LinearBackward(dIn, l.Weight.G, db, dOut, in, l.Weight.W, n, l.In, l.Out)
}

// Transpose computes out (n×In) = in (n×Out)·W, the bias-free adjoint Wᵀv per row.
func (l *Linear) Transpose(out, in []float32, n int) {
	LinearTranspose(out, in, l.Weight.W, n, l.In, l.Out)
}

// Params lists the layer's parameters: weight, then bias if any.
func (l *Linear) Params() []*Param {
	if l.Bias == nil {
		return []*Param{l.Weight}
	}
	return []*Param{l.Weight, l.Bias}
}

// Operator is the bias-free map v ↦ Wv, for PowerIteration. Like Conv2d.Operator
// it holds the slice Weight.W, which must be updated in place.
func (l *Linear) Operator() Operator {
	return LinearOperator{In: l.In, Out: l.Out, Weight: l.Weight.W}
}
