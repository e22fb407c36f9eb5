package nn

import (
	"math"
	"math/rand/v2"
)

// chunkCols is the least number of output pixels (Gemm columns) a ConvOp hands
// to one Gemm: images with few output pixels (the 4×4 neck) are batched together
// so that the product stays large enough for the BLAS to run near its peak.
const chunkCols = 256

// A ConvOp is a convolution of fixed geometry whose kernel is supplied by the
// caller on each call, so that an owner can convolve with a derived kernel (the
// LiResNet block's I + A·V/√D) and receive that kernel's gradient. It owns the
// im2col scratch for one chunk of images; any batch size n is processed chunk by
// chunk, so its memory does not grow with the batch. Weights are Cout×Cin×K×K.
type ConvOp struct {
	ConvGeom
	chunk int       // images per Gemm
	col   []float32 // (Cin·K·K) × (chunk·Ho·Wo) patches, or their gradient
	tmp   []float32 // Cout × (chunk·Ho·Wo) outputs or output gradients, when chunk > 1
}

// NewConvOp allocates the scratch of a convolution of geometry g for batches of up
// to maxBatch images per chunk (larger batches are fine, they take more chunks).
func NewConvOp(g ConvGeom, maxBatch int) *ConvOp {
	if !g.valid() || maxBatch < 1 {
		panic("nn: NewConvOp: invalid geometry or batch")
	}
	p := g.Ho() * g.Wo()
	chunk := min(maxBatch, (chunkCols+p-1)/p)
	o := &ConvOp{ConvGeom: g, chunk: chunk}
	o.col = make([]float32, g.Cin*g.K*g.K*chunk*p)
	if chunk > 1 {
		o.tmp = make([]float32, g.Cout*chunk*p)
	}
	return o
}

// Forward computes out = conv(in; weight) + bias for n images (bias may be nil).
func (o *ConvOp) Forward(out, in, weight, bias []float32, n int) {
	o.check(out, in, weight, n)
	p, r := o.Ho()*o.Wo(), o.Cin*o.K*o.K
	inLen, outLen := o.InLen(), o.OutLen()
	for b0 := 0; b0 < n; b0 += o.chunk {
		g := min(o.chunk, n-b0)
		x := in[b0*inLen : (b0+g)*inLen]
		y := out[b0*outLen : (b0+g)*outLen]
		if g == 1 {
			Gemm(false, false, o.Cout, p, r, 1, weight, r, o.patches(x, 1), p, 0, y, p)
			continue
		}
		l := g * p
		Gemm(false, false, o.Cout, l, r, 1, weight, r, o.patches(x, g), l, 0, o.tmp, l)
		for c := 0; c < o.Cout; c++ { // Cout × (g·P) → g × Cout × P
			for i := 0; i < g; i++ {
				copy(y[i*outLen+c*p:][:p], o.tmp[c*l+i*p:])
			}
		}
	}
	if bias != nil {
		for i := 0; i < n*o.Cout; i++ {
			b, row := bias[i%o.Cout], out[i*p:][:p]
			for j := range row {
				row[j] += b
			}
		}
	}
}

// Backward takes dOut = ∂L/∂out for n images and the forward's in and weight; it
// ACCUMULATES ∂L/∂weight into dWeight and ∂L/∂bias into dBias and WRITES ∂L/∂in
// into dIn. Any of dIn, dWeight, dBias may be nil to skip it; in is only read
// when dWeight is wanted.
func (o *ConvOp) Backward(dIn, dWeight, dBias, dOut, in, weight []float32, n int) {
	p, r := o.Ho()*o.Wo(), o.Cin*o.K*o.K
	inLen, outLen := o.InLen(), o.OutLen()
	if len(dOut) < n*outLen || len(weight) != o.WeightLen() ||
		(dIn != nil && len(dIn) < n*inLen) || (dWeight != nil && (len(dWeight) != len(weight) || len(in) < n*inLen)) ||
		(dBias != nil && len(dBias) != o.Cout) {
		panic("nn: ConvOp.Backward: bad slice length")
	}
	if dBias != nil {
		for c := 0; c < o.Cout; c++ {
			var s float64
			for i := 0; i < n; i++ {
				var si float32
				for _, v := range dOut[i*outLen+c*p:][:p] {
					si += v
				}
				s += float64(si)
			}
			dBias[c] += float32(s)
		}
	}
	if dIn == nil && dWeight == nil {
		return
	}
	for b0 := 0; b0 < n; b0 += o.chunk {
		g := min(o.chunk, n-b0)
		l := g * p
		dy := dOut[b0*outLen : (b0+g)*outLen]
		if g > 1 { // g × Cout × P → Cout × (g·P)
			for c := 0; c < o.Cout; c++ {
				for i := 0; i < g; i++ {
					copy(o.tmp[c*l+i*p:][:p], dy[i*outLen+c*p:])
				}
			}
			dy = o.tmp
		}
		if dWeight != nil {
			cols := o.patches(in[b0*inLen:(b0+g)*inLen], g)
			Gemm(false, true, o.Cout, r, l, 1, dy, l, cols, l, 1, dWeight, r)
		}
		if dIn != nil {
			dx := dIn[b0*inLen : (b0+g)*inLen]
			if g == 1 && o.pointwise() {
				Gemm(true, false, r, l, o.Cout, 1, weight, r, dy, l, 0, dx, l)
				continue
			}
			Gemm(true, false, r, l, o.Cout, 1, weight, r, dy, l, 0, o.col, l)
			o.col2im(dx, o.col, g)
		}
	}
}

// Transpose applies the adjoint convᵀ (the transposed convolution, bias-free) to
// n images of Cout×Ho×Wo, writing Cin×H×W images into out. Output padding is
// implicit, so for every stride it is the exact adjoint of Forward without bias:
// <conv(x), y> = <x, convᵀ(y)>.
func (o *ConvOp) Transpose(out, in, weight []float32, n int) {
	o.Backward(out, nil, nil, in, nil, weight, n)
}

// patches returns the im2col matrix of g images x: x itself for a pointwise
// conv of one image, else o.col filled by im2col.
func (o *ConvOp) patches(x []float32, g int) []float32 {
	if g == 1 && o.pointwise() {
		return x
	}
	o.im2col(o.col, x, g)
	return o.col
}

func (o *ConvOp) check(out, in, weight []float32, n int) {
	if len(out) < n*o.OutLen() || len(in) < n*o.InLen() || len(weight) != o.WeightLen() {
		panic("nn: ConvOp.Forward: bad slice length")
	}
}

// Conv2d is a convolution layer that owns its kernel and optional bias; see
// ConvOp for the variant whose kernel is supplied by the caller.
type Conv2d struct {
	Op     *ConvOp
	Weight *Param // Cout×Cin×K×K
	Bias   *Param // Cout; nil without bias
}

// NewConv2d makes a conv layer named name (params name.weight, name.bias) with
// the LiResNet/PyTorch initialisation: orthogonal weight (reshaped Cout × Cin·K·K)
// and bias from U(±1/√(Cin·K·K)), drawn from the caller's rng.
func NewConv2d(name string, g ConvGeom, bias bool, maxBatch int, rng *rand.Rand) *Conv2d {
	c := &Conv2d{Op: NewConvOp(g, maxBatch), Weight: NewParam(name+".weight", g.Cout, g.Cin, g.K, g.K)}
	fanIn := g.Cin * g.K * g.K
	Orthogonal(c.Weight.W, g.Cout, fanIn, rng)
	if bias {
		c.Bias = NewParam(name+".bias", g.Cout)
		Uniform(c.Bias.W, 1/math.Sqrt(float64(fanIn)), rng)
	}
	return c
}

// Forward computes out = conv(in) + bias for n images.
func (c *Conv2d) Forward(out, in []float32, n int) {
	c.Op.Forward(out, in, c.Weight.W, c.bias(), n)
}

// Backward accumulates the weight and bias gradients for dOut and the forward's
// input in, and writes ∂L/∂in into dIn unless it is nil.
func (c *Conv2d) Backward(dIn, dOut, in []float32, n int) {
	var dBias []float32
	if c.Bias != nil {
		dBias = c.Bias.G
	}
	c.Op.Backward(dIn, c.Weight.G, dBias, dOut, in, c.Weight.W, n)
}

// Transpose applies the bias-free adjoint convᵀ (see ConvOp.Transpose).
func (c *Conv2d) Transpose(out, in []float32, n int) {
	c.Op.Transpose(out, in, c.Weight.W, n)
}

// Params lists the layer's parameters: weight, then bias if any.
func (c *Conv2d) Params() []*Param {
	if c.Bias == nil {
		return []*Param{c.Weight}
	}
	return []*Param{c.Weight, c.Bias}
}

// Operator is the bias-free conv at its real input size, for PowerIteration. It
// holds the slice Weight.W, so the weights must be updated in place (as optimizers
// and checkpoint loads that copy do), not by reassigning Weight.W.
func (c *Conv2d) Operator() Operator { return ConvOperator{Op: c.Op, Weight: c.Weight.W} }

func (c *Conv2d) bias() []float32 {
	if c.Bias == nil {
		return nil
	}
	return c.Bias.W
}
