package nn

import (
	"sync"

	"certmix/trainer/nn/internal/wino"

	"certmix/trainer/nn/internal/pool"
)

// winogradCols is about the number of tiles (Gemm columns) a Winograd conv
// transforms and multiplies at once: enough for the BLAS to run near its peak,
// few enough that the transformed chunk (2·16·C·T floats, 16 MiB at C = 128)
// stays in the last-level cache between its transform and its Gemms.
const winogradCols = 1024

// A Conv is a convolution of fixed geometry whose kernel is supplied by the
// caller, as ConvOp and Winograd provide it: the seam through which a model
// runs its convolutions, so that another implementation (another algorithm, a
// GPU) can stand in for either.
type Conv interface {
	// Forward computes out = conv(in; weight) + bias for n images (bias may be nil).
	Forward(out, in, weight, bias []float32, n int)
	// Backward ACCUMULATES ∂L/∂weight into dWeight and ∂L/∂bias into dBias and
	// WRITES ∂L/∂in into dIn, for dOut = ∂L/∂out; any of the three may be nil.
	Backward(dIn, dWeight, dBias, dOut, in, weight []float32, n int)
}

var (
	_ Conv = (*ConvOp)(nil)
	_ Conv = (*Winograd)(nil)
)

// Winograd is a 3×3 stride-1 convolution (any zero padding) computed with
// Winograd's F(2×2, 3×3): each 2×2 block of outputs takes 16 multiplies per
// input channel instead of direct convolution's 36, so its Gemms (16 per chunk
// of images, one per tap ξ of the 4×4 transformed tile) hold 2.25 times fewer
// flops than im2col's. Backward is the exact adjoint of the same computation:
// the output gradient is transformed once (dM = A dY Aᵀ), and both the input
// gradient (dV = Uᵀ dM, then the adjoint of the input transform) and the
// kernel gradient (dU = Σ dM Vᵀ, then Gᵀ dU G) are Gemms in the transformed
// domain.
//
// Soundness. Winograd is for training only. In exact arithmetic it is the
// same linear map as ConvOp (Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A is an identity for the
// 3×3 correlation of every tile), so it has the same operator and the same
// norm; in float32 its result differs from ConvOp's by rounding only (about
// 2e-6 of an output's scale, as ConvOp's own rounding: TestWinogradMatchesConv).
// A certificate never rests on it: the Lipschitz bound K is the product of
// power iterations on ConvOperator (ConvOp), and the logits a certificate is
// computed from come from a forward pass through ConvOp as well (the models'
// Logits), so K bounds the certified computation just as it did before
// Winograd existed (up to ConvOp's own float32 rounding, as ever), with no
// allowance needed for the transforms.
//
// Between calls a Winograd holds nothing but scratch (the transformed kernel
// is recomputed from the weight each call), so one serves several layers of
// one geometry used in turn: the LiResNet blocks share one.
type Winograd struct {
	ConvGeom
	tilesY, tilesX int  // 2×2 output tiles per column and per row
	chunk          int  // images per pass
	kernels16      bool // planes are 16×16 with padding 1 and the AVX2 kernels run here
	u, du          []float32
	v, m           []float32
	planes         []*winoPlane // one per part of a parallel transform

	// The stage that run does, and its arguments (see tiles and gemms).
	stage       winoStage
	dst, src, b []float32
	cols        int
	dW, dX      bool    // backprop: the kernel and the input gradient wanted
	beta        float32 // backprop: 0 to start dU, 1 to add to it
	done        sync.WaitGroup
}

// winoStage names a tile transform.
type winoStage int

const (
	stageInput winoStage = iota
	stageInputT
	stageOutput
	stageOutputT
	stageProducts // the forward Gemms, over taps ξ
	stageBackprop // the backward Gemms, over taps ξ
)

// NewWinograd allocates a Winograd convolution of geometry g (K = 3,
// stride 1) for chunks of up to maxBatch images (larger batches take more
// chunks). It panics on another geometry.
func NewWinograd(g ConvGeom, maxBatch int) *Winograd {
	if !g.valid() || g.K != 3 || g.Stride != 1 || maxBatch < 1 {
		panic("nn: NewWinograd: want a valid 3x3 stride-1 geometry")
	}
	w := &Winograd{ConvGeom: g, tilesY: (g.Ho() + 1) / 2, tilesX: (g.Wo() + 1) / 2,
		kernels16: wino.Available && g.H == 16 && g.W == 16 && g.Pad == 1}
	tiles := w.tilesY * w.tilesX
	w.chunk = min(maxBatch, (winogradCols+tiles-1)/tiles)
	t := w.chunk * tiles
	w.u, w.du = make([]float32, 16*g.Cout*g.Cin), make([]float32, 16*g.Cout*g.Cin)
	w.v, w.m = make([]float32, 16*g.Cin*t), make([]float32, 16*g.Cout*t)
	for range parts() {
		w.planes = append(w.planes, w.newPlane())
	}
	return w
}

// Forward computes out = conv(in; weight) + bias for n images (bias may be nil).
func (w *Winograd) Forward(out, in, weight, bias []float32, n int) {
	if len(out) < n*w.OutLen() || len(in) < n*w.InLen() || len(weight) != w.WeightLen() || (bias != nil && len(bias) != w.Cout) {
		panic("nn: Winograd.Forward: bad slice length")
	}
	w.kernelTiles(w.u, weight)
	tiles, inLen, outLen := w.tilesY*w.tilesX, w.InLen(), w.OutLen()
	for b0 := 0; b0 < n; b0 += w.chunk {
		g := min(w.chunk, n-b0)
		T := g * tiles
		w.tiles(stageInput, w.v, in[b0*inLen:], nil, g*w.Cin, T)
		w.gemms(stageProducts, T)
		w.tiles(stageOutput, out[b0*outLen:], w.m, bias, g*w.Cout, T)
	}
}

// tiles runs a tile transform over planes planes (images·channels) with T
// tiles per row of the transformed matrices, split over the cores.
func (w *Winograd) tiles(st winoStage, dst, src, bias []float32, planes, T int) {
	w.stage, w.dst, w.src, w.b, w.cols = st, dst, src, bias, T
	pool.Split((*winoParts)(w), planes, len(w.planes), &w.done)
	w.dst, w.src, w.b = nil, nil, nil
}

// winoParts is a Winograd as the pool's loop (pool.Ranged), without giving
// Winograd itself an exported Run method.
type winoParts Winograd

// Run does planes (or taps) [lo, hi) of the current stage with part's scratch.
func (p *winoParts) Run(part, lo, hi int) { (*Winograd)(p).run(part, lo, hi) }

// run does planes [lo, hi) of the current transform with part's scratch.
func (w *Winograd) run(part, lo, hi int) {
	s := w.planes[part]
	switch w.stage {
	case stageInput:
		w.inputTiles(w.dst, w.src, lo, hi, w.cols, s)
	case stageInputT:
		w.inputTilesT(w.dst, w.src, lo, hi, w.cols, s)
	case stageOutput:
		w.outputTiles(w.dst, w.src, w.b, lo, hi, w.cols, s)
	case stageOutputT:
		w.outputTilesT(w.dst, w.src, lo, hi, w.cols, s)
	case stageProducts, stageBackprop:
		w.taps(lo, hi)
	}
}

// gemms runs the 16 taps' products of the current stage, T columns each.
// They are independent, so with the default BLAS (safe for concurrent calls)
// the cores take whole taps, each product one unsplit Gemm; another Gemmer
// gets them one after another.
func (w *Winograd) gemms(st winoStage, T int) {
	w.stage, w.cols = st, T
	if concurrentGemm() {
		pool.Split((*winoParts)(w), 16, len(w.planes), &w.done)
		return
	}
	w.taps(0, 16)
}

// taps does the products of taps [lo, hi): in the forward stage
// M_ξ = U_ξ · V_ξ (Cout×Cin times Cin×T); in backprop
// dU_ξ += dM_ξ · V_ξᵀ and then dV_ξ = U_ξᵀ · dM_ξ over V_ξ.
func (w *Winograd) taps(lo, hi int) {
	T := w.cols
	kc, ct, kt := w.Cout*w.Cin, w.Cin*T, w.Cout*T
	for xi := lo; xi < hi; xi++ {
		u, v, m := w.u[xi*kc:], w.v[xi*ct:], w.m[xi*kt:]
		if w.stage == stageProducts {
			gemmWhole(false, false, w.Cout, T, w.Cin, 1, u, w.Cin, v, T, 0, m, T)
			continue
		}
		if w.dW {
			gemmWhole(false, true, w.Cout, w.Cin, T, 1, m, T, v, T, w.beta, w.du[xi*kc:], w.Cin)
		}
		if w.dX {
			gemmWhole(true, false, w.Cin, T, w.Cout, 1, u, w.Cin, m, T, 0, v, T)
		}
	}
}

// Backward takes dOut = ∂L/∂out for n images and the forward's in and weight; it
// ACCUMULATES ∂L/∂weight into dWeight and ∂L/∂bias into dBias and WRITES ∂L/∂in
// into dIn. Any of dIn, dWeight, dBias may be nil to skip it; in is only read
// when dWeight is wanted.
func (w *Winograd) Backward(dIn, dWeight, dBias, dOut, in, weight []float32, n int) {
	inLen, outLen := w.InLen(), w.OutLen()
	if len(dOut) < n*outLen || len(weight) != w.WeightLen() ||
		(dIn != nil && len(dIn) < n*inLen) || (dWeight != nil && (len(dWeight) != len(weight) || len(in) < n*inLen)) ||
		(dBias != nil && len(dBias) != w.Cout) {
		panic("nn: Winograd.Backward: bad slice length")
	}
	if dBias != nil {
		biasGrad(dBias, dOut, w.Cout, w.Ho()*w.Wo(), n)
	}
	if dIn == nil && dWeight == nil {
		return
	}
	if dIn != nil {
		w.kernelTiles(w.u, weight)
	}
	tiles := w.tilesY * w.tilesX
	w.dW, w.dX = dWeight != nil, dIn != nil
	for b0 := 0; b0 < n; b0 += w.chunk {
		g := min(w.chunk, n-b0)
		T := g * tiles
		w.tiles(stageOutputT, w.m, dOut[b0*outLen:], nil, g*w.Cout, T)
		if dWeight != nil {
			w.tiles(stageInput, w.v, in[b0*inLen:], nil, g*w.Cin, T)
		}
		w.beta = 1
		if b0 == 0 {
			w.beta = 0
		}
		w.gemms(stageBackprop, T)
		if dIn != nil {
			w.tiles(stageInputT, dIn[b0*inLen:], w.v, nil, g*w.Cin, T)
		}
	}
	if dWeight != nil {
		w.kernelTilesT(dWeight, w.du)
	}
}

// biasGrad adds to dBias the sum of dOut over images and pixels, per channel
// (c channels of p pixels, n images), summing each image in float32 and the
// images in float64.
func biasGrad(dBias, dOut []float32, c, p, n int) {
	for ch := range c {
		var s float64
		for i := range n {
			var si float32
			for _, v := range dOut[(i*c+ch)*p:][:p] {
				si += v
			}
			s += float64(si)
		}
		dBias[ch] += float32(s)
	}
}
