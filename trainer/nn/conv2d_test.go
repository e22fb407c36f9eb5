package nn

import (
	"fmt"
	"math"
	"testing"
)

// convCase is one geometry, batch n and chunk bound maxBatch (small values force
// several chunks, including a partial last one).
type convCase struct {
	g           ConvGeom
	n, maxBatch int
}

func (c convCase) String() string {
	g := c.g
	return fmt.Sprintf("%d->%d_k%d_s%d_p%d_%dx%d_n%d_mb%d", g.Cin, g.Cout, g.K, g.Stride, g.Pad, g.H, g.W, c.n, c.maxBatch)
}

var convCases = []convCase{
	{ConvGeom{Cin: 3, Cout: 5, K: 3, Stride: 1, Pad: 1, H: 6, W: 5}, 2, 8},   // odd channels, non-square
	{ConvGeom{Cin: 2, Cout: 3, K: 1, Stride: 1, Pad: 0, H: 4, W: 4}, 3, 8},   // pointwise, chunked
	{ConvGeom{Cin: 2, Cout: 3, K: 1, Stride: 1, Pad: 0, H: 4, W: 4}, 3, 1},   // pointwise, one image per Gemm
	{ConvGeom{Cin: 3, Cout: 4, K: 5, Stride: 2, Pad: 2, H: 8, W: 8}, 2, 8},   // stem-like
	{ConvGeom{Cin: 2, Cout: 4, K: 4, Stride: 4, Pad: 0, H: 8, W: 8}, 2, 8},   // neck-like
	{ConvGeom{Cin: 3, Cout: 2, K: 4, Stride: 2, Pad: 1, H: 7, W: 7}, 2, 8},   // even kernel, stride 2
	{ConvGeom{Cin: 1, Cout: 3, K: 3, Stride: 2, Pad: 0, H: 7, W: 6}, 3, 2},   // stride 2, chunks of 2
	{ConvGeom{Cin: 2, Cout: 3, K: 5, Stride: 4, Pad: 2, H: 9, W: 9}, 2, 8},   // stride 4, k5
	{ConvGeom{Cin: 3, Cout: 3, K: 3, Stride: 1, Pad: 2, H: 4, W: 4}, 2, 8},   // pad 2: output larger than input
	{ConvGeom{Cin: 2, Cout: 2, K: 3, Stride: 1, Pad: 1, H: 10, W: 10}, 5, 8}, // 3 images per chunk, partial chunk
	{ConvGeom{Cin: 1, Cout: 1, K: 1, Stride: 2, Pad: 1, H: 5, W: 5}, 2, 8},   // k1 stride 2 with padding
	{ConvGeom{Cin: 2, Cout: 3, K: 4, Stride: 4, Pad: 0, H: 7, W: 7}, 2, 8},   // stride 4 leaving input uncovered
	{ConvGeom{Cin: 3, Cout: 1, K: 5, Stride: 1, Pad: 0, H: 5, W: 6}, 2, 8},   // kernel as large as the input
	{ConvGeom{Cin: 2, Cout: 3, K: 5, Stride: 1, Pad: 2, H: 6, W: 7}, 2, 8},   // same size, k5
	{ConvGeom{Cin: 1, Cout: 2, K: 3, Stride: 1, Pad: 1, H: 2, W: 3}, 3, 8},   // same size, tiny image
	{ConvGeom{Cin: 2, Cout: 2, K: 5, Stride: 1, Pad: 2, H: 2, W: 1}, 2, 8},   // kernel wider than image
}

func TestConvForward(t *testing.T) {
	for i, c := range convCases {
		t.Run(c.String(), func(t *testing.T) {
			rng := newRNG(uint64(i))
			conv := NewConv2d("c", c.g, true, c.maxBatch, rng)
			Uniform(conv.Bias.W, 1, rng)
			in := randF32(rng, c.n*c.g.InLen())
			out := make([]float32, c.n*c.g.OutLen())
			conv.Forward(out, in, c.n)
			want := refConv(to64(in), to64(conv.Weight.W), to64(conv.Bias.W), c.g, c.n)
			for j, w := range want {
				if math.Abs(w-float64(out[j])) > 1e-5*(1+math.Abs(w)) {
					t.Fatalf("out[%d] = %g, direct convolution %g", j, out[j], w)
				}
			}
		})
	}
}

func TestConvGrad(t *testing.T) {
	for i, c := range convCases {
		t.Run(c.String(), func(t *testing.T) {
			rng := newRNG(100 + uint64(i))
			conv := NewConv2d("c", c.g, true, c.maxBatch, rng)
			in := randF32(rng, c.n*c.g.InLen())
			r := to64(randF32(rng, c.n*c.g.OutLen())) // loss = <r, conv(in)>
			g0w, g0b := randF32(rng, c.g.WeightLen()), randF32(rng, c.g.Cout)
			copy(conv.Weight.G, g0w)
			copy(conv.Bias.G, g0b)
			dIn := randF32(rng, len(in)) // garbage that Backward must overwrite
			dOut := make([]float32, len(r))
			for j, v := range r {
				dOut[j] = float32(v)
			}
			conv.Backward(dIn, dOut, in, c.n)
			dW, dB := make([]float32, len(g0w)), make([]float32, len(g0b))
			for j := range dW {
				dW[j] = conv.Weight.G[j] - g0w[j] // Backward accumulates
			}
			for j := range dB {
				dB[j] = conv.Bias.G[j] - g0b[j]
			}
			x, w, b := to64(in), to64(conv.Weight.W), to64(conv.Bias.W)
			loss := func() float64 {
				var s float64
				for j, v := range refConv(x, w, b, c.g, c.n) {
					s += v * r[j]
				}
				return s
			}
			checkFD(t, "dIn", x, loss, dIn)
			checkFD(t, "dWeight", w, loss, dW)
			checkFD(t, "dBias", b, loss, dB)
		})
	}
}

func TestConvAdjoint(t *testing.T) {
	cases := []convCase{
		{ConvGeom{Cin: 3, Cout: 128, K: 5, Stride: 2, Pad: 2, H: 32, W: 32}, 2, 2},    // LiResNet stem
		{ConvGeom{Cin: 128, Cout: 128, K: 3, Stride: 1, Pad: 1, H: 16, W: 16}, 2, 2},  // LiResNet block
		{ConvGeom{Cin: 128, Cout: 256, K: 4, Stride: 4, Pad: 0, H: 16, W: 16}, 2, 2},  // LiResNet neck
		{ConvGeom{Cin: 128, Cout: 256, K: 4, Stride: 4, Pad: 0, H: 16, W: 16}, 20, 8}, // neck, chunked
	}
	cases = append(cases, convCases...)
	for i, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			rng := newRNG(200 + uint64(i))
			op := NewConvOp(c.g, c.maxBatch)
			w := randF32(rng, c.g.WeightLen())
			x, y := randF32(rng, c.n*c.g.InLen()), randF32(rng, c.n*c.g.OutLen())
			ax, aty := make([]float32, len(y)), make([]float32, len(x))
			op.Forward(ax, x, w, nil, c.n)
			op.Transpose(aty, y, w, c.n)
			lhs, rhs := dot64(to64(ax), y), dot64(to64(x), aty)
			scale := math.Sqrt(dot64(to64(ax), ax)*dot64(to64(y), y)) + math.Sqrt(dot64(to64(x), x)*dot64(to64(aty), aty))
			if math.Abs(lhs-rhs) > 1e-5*scale {
				t.Fatalf("<conv x, y> = %.9g, <x, convᵀ y> = %.9g (scale %.3g)", lhs, rhs, scale)
			}
		})
	}
}
