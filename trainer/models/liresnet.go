// Package models assembles the paper's architectures from trainer/nn:
// LiResNet (GloroNet's backbone) and DistNet (l_inf-dist Net and SortNet).
package models

import (
	"fmt"
	"math"
	"math/rand/v2"

	"certmix/trainer/nn"
)

// LiResNet is GloroNet's backbone (the hu23 snapshot's models) for 32x32 images: stem conv
// 5x5 stride 2 and MinMax; D LinearRes blocks (one 3x3 conv with kernel
// I + A*V/sqrt(D)) each followed by MinMax; neck conv 4x4 stride 4, MinMax,
// Linear to 512, MinMax; and a head whose rows are normalised to unit norm
// (last-layer normalisation). Inputs are in [0,1]; the net sees x - 0.5.
type LiResNet struct {
	Depth, Width, Classes, Channels int
	maxBatch                        int

	Stem   *nn.Conv2d
	Blocks []*LinearRes
	Neck   *nn.Conv2d
	FC     *nn.Linear
	Head   *nn.Param // Classes x 512, normalised row-wise on every use
	HBias  *nn.Param

	// Power iterations of the sub-network's layers, vectors persistent.
	PIStem, PINeck, PIFC *nn.PowerIteration
	PIBlocks             []*nn.PowerIteration
	tracked              []*trackedPI // stem, blocks, neck, fc: for gradients through the iterations
	wasTracked           bool

	actStem, actBlock, actNeck, actFC *nn.MinMax
	exact                             bool // the last forward ran the blocks' exact convs

	// Activations of the last Forward, sized for maxBatch.
	x0, stemOut, stemAct []float32
	blockOut, blockAct   [][]float32
	neckOut, neckAct     []float32
	fcOut, fcAct, logits []float32
	headHat              []float32 // normalised head rows
	headNorm             []float32
	// Gradient scratch.
	g1, g2 []float32
}

// LinearRes is the LiResNet block: one 3x3 convolution whose kernel is the
// identity at the centre tap plus A ⊙ V / sqrt(D), and a bias. The
// convolution has two implementations of one linear map: Op (im2col), whose
// operator the power iteration bounds and through which certification and
// attacks evaluate the network, and Fast (Winograd F(2x2,3x3), 2.25 times
// fewer multiplies), which training's Forward and Backward use.
type LinearRes struct {
	Op       *nn.ConvOp
	Fast     nn.Conv
	V        *nn.Param // W x W x 3 x 3, "weight"
	A        *nn.Param // W, "affine"
	Bias     *nn.Param // W
	Identity []float32 // W x W x 3 x 3, fixed
	Kernel   []float32 // the effective kernel, recomputed from V and A
	dKernel  []float32
	scale    float32 // 1/sqrt(D)
}

// Features is the width of the layer before the head.
const Features = 512

// InputSide is the side of the square images LiResNet and LipConvnet take:
// their stride-2 stages (and LiResNet's 4x4 stride-4 neck) end at a fixed
// size, so smaller images are padded to it (trainer.Config.ToInput).
const InputSide = 32

// inputPlane is the values of one channel of an input image.
const inputPlane = InputSide * InputSide

// NewLiResNet builds L{depth}W{width} for classes classes and inputs of
// channels x 32 x 32, with weights drawn from rng, for batches up to maxBatch.
func NewLiResNet(depth, width, classes, channels, maxBatch int, rng *rand.Rand) (*LiResNet, error) {
	if depth < 1 || width < 2 || width%2 != 0 || classes < 2 || channels < 1 || maxBatch < 1 {
		return nil, fmt.Errorf("LiResNet L%dW%d, %d classes, %d channels, batch %d: depth >= 1, even width >= 2, classes >= 2", depth, width, classes, channels, maxBatch)
	}
	m := &LiResNet{Depth: depth, Width: width, Classes: classes, Channels: channels, maxBatch: maxBatch}
	m.Stem = nn.NewConv2d("stem.0", nn.ConvGeom{Cin: channels, Cout: width, K: 5, Stride: 2, Pad: 2, H: InputSide, W: InputSide}, true, maxBatch, rng)
	blockGeom := nn.ConvGeom{Cin: width, Cout: width, K: 3, Stride: 1, Pad: 1, H: 16, W: 16}
	fast := nn.NewWinograd(blockGeom, maxBatch) // scratch only: one serves every block
	for i := range depth {
		b := &LinearRes{Op: nn.NewConvOp(blockGeom, maxBatch), Fast: fast,
			V: nn.NewParam(fmt.Sprintf("backbone.%d.weight", 2*i), width, width, 3, 3),
			A: nn.NewParam(fmt.Sprintf("backbone.%d.affine", 2*i), width, 1, 1, 1), Bias: nn.NewParam(fmt.Sprintf("backbone.%d.bias", 2*i), width),
			Identity: make([]float32, width*width*9), Kernel: make([]float32, width*width*9), dKernel: make([]float32, width*width*9),
			scale: float32(1 / math.Sqrt(float64(depth)))}
		nn.Normal(b.V.W, 1/(9*float64(width)), rng)
		for o := range width {
			b.A.W[o] = 1
			b.Identity[(o*width+o)*9+4] = 1
		}
		b.kernel()
		m.Blocks = append(m.Blocks, b)
	}
	m.Neck = nn.NewConv2d("neck.0", nn.ConvGeom{Cin: width, Cout: 2 * width, K: 4, Stride: 4, Pad: 0, H: 16, W: 16}, true, maxBatch, rng)
	m.FC = nn.NewLinear("neck.3", 32*width, Features, true, rng)
	m.Head = nn.NewParam("head.weight", classes, Features)
	m.HBias = nn.NewParam("head.bias", classes)
	bound := 1 / math.Sqrt(Features)
	nn.Uniform(m.Head.W, bound, rng)
	nn.Uniform(m.HBias.W, bound, rng)

	m.PIStem = nn.NewPowerIteration(m.Stem.Operator(), rng)
	for _, b := range m.Blocks {
		m.PIBlocks = append(m.PIBlocks, nn.NewPowerIteration(nn.ConvOperator{Op: b.Op, Weight: b.Kernel}, rng))
	}
	m.PINeck = nn.NewPowerIteration(m.Neck.Operator(), rng)
	m.PIFC = nn.NewPowerIteration(m.FC.Operator(), rng)
	for _, pi := range m.PowerIterations() {
		m.tracked = append(m.tracked, newTrackedPI(pi))
	}

	m.actStem = nn.NewMinMax(width, 256)
	m.actBlock = nn.NewMinMax(width, 256)
	m.actNeck = nn.NewMinMax(2*width, 16)
	m.actFC = nn.NewMinMax(Features, 1)
	n := maxBatch
	m.x0 = make([]float32, n*channels*inputPlane)
	m.stemOut, m.stemAct = make([]float32, n*width*256), make([]float32, n*width*256)
	for range depth {
		m.blockOut = append(m.blockOut, make([]float32, n*width*256))
		m.blockAct = append(m.blockAct, make([]float32, n*width*256))
	}
	m.neckOut, m.neckAct = make([]float32, n*32*width), make([]float32, n*32*width)
	m.fcOut, m.fcAct = make([]float32, n*Features), make([]float32, n*Features)
	m.logits = make([]float32, n*classes)
	m.headHat, m.headNorm = make([]float32, classes*Features), make([]float32, classes)
	m.g1, m.g2 = make([]float32, n*max(width*256, channels*inputPlane)), make([]float32, n*max(width*256, channels*inputPlane))
	return m, nil
}

// kernel recomputes the block's effective kernel I + A ⊙ V / sqrt(D) in place.
func (b *LinearRes) kernel() {
	per := len(b.Kernel) / len(b.A.W)
	for o, a := range b.A.W {
		for i := o * per; i < (o+1)*per; i++ {
			b.Kernel[i] = b.Identity[i] + b.V.W[i]*a*b.scale
		}
	}
}

// backKernel turns the gradient of the effective kernel into those of V and A.
func (b *LinearRes) backKernel() {
	per := len(b.Kernel) / len(b.A.W)
	for o, a := range b.A.W {
		var da float32
		for i := o * per; i < (o+1)*per; i++ {
			b.V.G[i] += b.dKernel[i] * a * b.scale
			da += b.dKernel[i] * b.V.W[i] * b.scale
		}
		b.A.G[o] += da
	}
	clear(b.dKernel)
}

// Params lists every trainable parameter, named as in the authors' PyTorch model.
func (m *LiResNet) Params() []*nn.Param {
	ps := m.Stem.Params()
	for _, b := range m.Blocks {
		ps = append(ps, b.V, b.A, b.Bias)
	}
	ps = append(ps, m.Neck.Params()...)
	ps = append(ps, m.FC.Params()...)
	return append(ps, m.Head, m.HBias)
}

// normHead computes the row-normalised head ŵ.
func (m *LiResNet) normHead() {
	for c := range m.Classes {
		row := m.Head.W[c*Features : (c+1)*Features]
		var s float64
		for _, v := range row {
			s += float64(v) * float64(v)
		}
		nrm := float32(math.Sqrt(s))
		m.headNorm[c] = nrm
		for i, v := range row {
			m.headHat[c*Features+i] = v / nrm
		}
	}
}

// HeadRows returns the normalised head rows ŵ (Classes x 512), as of the last
// Forward.
func (m *LiResNet) HeadRows() []float32 { return m.headHat }

// Forward computes the logits of n images (n x Channels x 32 x 32, values in
// [0,1]) and keeps the activations for Backward. The returned slice is the
// model's own, valid until the next Forward. It is training's forward pass:
// the blocks run their Fast (Winograd) convolutions, which compute the
// network's map up to float32 rounding; Logits runs the exact path that
// certificates are computed on.
func (m *LiResNet) Forward(x []float32, n int) []float32 {
	return m.forward(x, n, false)
}

// conv returns the block's convolution for the exact (certification) or the
// training path.
func (b *LinearRes) conv(exact bool) nn.Conv {
	if exact {
		return b.Op
	}
	return b.Fast
}

// forward is Forward through the blocks' exact convolutions (Op, the
// operators whose norms K multiplies) or their training ones (Fast).
func (m *LiResNet) forward(x []float32, n int, exact bool) []float32 {
	m.exact = exact
	for i, v := range x[:n*m.Channels*inputPlane] {
		m.x0[i] = v - 0.5
	}
	m.Stem.Forward(m.stemOut, m.x0, n)
	m.actStem.Forward(m.stemAct, m.stemOut[:n*m.Width*256], n)
	in := m.stemAct
	for i, b := range m.Blocks {
		b.kernel()
		b.conv(exact).Forward(m.blockOut[i], in, b.Kernel, b.Bias.W, n)
		m.actBlock.Forward(m.blockAct[i], m.blockOut[i], n)
		in = m.blockAct[i]
	}
	m.Neck.Forward(m.neckOut, in, n)
	m.actNeck.Forward(m.neckAct, m.neckOut, n)
	m.FC.Forward(m.fcOut, m.neckAct, n)
	m.actFC.Forward(m.fcAct, m.fcOut, n)
	m.normHead()
	nn.LinearForward(m.logits, m.fcAct, m.headHat, m.HBias.W, n, Features, m.Classes)
	return m.logits[:n*m.Classes]
}

// Backward propagates dLogits (n x Classes) and dHat (the gradient of the
// loss with respect to ŵ from other terms, e.g. the margin; may be nil) to
// every parameter's gradient (accumulated). It uses the activations of the
// last Forward, and the adjoints of the convolutions that computed them.
func (m *LiResNet) Backward(dLogits, dHat []float32, n int) {
	m.backward(dLogits, dHat, n, nil)
}

// backward is Backward that also writes ∂L/∂x into dx unless it is nil.
func (m *LiResNet) backward(dLogits, dHat []float32, n int, dx []float32) {
	dHead := make([]float32, m.Classes*Features) // ∂L/∂ŵ
	if dHat != nil {
		copy(dHead, dHat)
	}
	dFC := m.g1[:n*Features]
	nn.LinearBackward(dFC, dHead, m.HBias.G, dLogits, m.fcAct, m.headHat, n, Features, m.Classes)
	// Through the row normalisation: ∂L/∂w = (∂L/∂ŵ − ŵ (ŵ·∂L/∂ŵ)) / ‖w‖.
	for c := range m.Classes {
		hat, d := m.headHat[c*Features:(c+1)*Features], dHead[c*Features:(c+1)*Features]
		var dot float32
		for i := range hat {
			dot += hat[i] * d[i]
		}
		g := m.Head.G[c*Features : (c+1)*Features]
		for i := range hat {
			g[i] += (d[i] - hat[i]*dot) / m.headNorm[c]
		}
	}
	dAct := m.g2[:n*Features]
	m.actFC.Backward(dAct, dFC, m.fcOut, n)
	dNeckAct := m.g1[:n*32*m.Width]
	m.FC.Backward(dNeckAct, dAct, m.neckAct, n)
	dNeck := m.g2[:n*32*m.Width]
	m.actNeck.Backward(dNeck, dNeckAct, m.neckOut, n)
	last := m.stemAct
	if m.Depth > 0 {
		last = m.blockAct[m.Depth-1]
	}
	d := m.g1[:n*m.Width*256]
	m.Neck.Backward(d, dNeck, last, n)
	other := m.g2[:n*m.Width*256]
	for i := m.Depth - 1; i >= 0; i-- {
		b := m.Blocks[i]
		m.actBlock.Backward(other, d, m.blockOut[i], n)
		in := m.stemAct
		if i > 0 {
			in = m.blockAct[i-1]
		}
		b.conv(m.exact).Backward(d, b.dKernel, b.Bias.G, other, in, b.Kernel, n)
		b.backKernel()
	}
	m.actStem.Backward(other, d, m.stemOut, n)
	m.Stem.Backward(dx, other, m.x0, n) // x0 = x − 0.5: the same gradient
}

// InputSize returns the values of one image: Channels x 32 x 32.
func (m *LiResNet) InputSize() int { return m.Channels * inputPlane }

// Logits writes the logits of n images into dst, in chunks of the model's
// batch size. It is the network that certificates hold for: every layer runs
// the convolution whose operator the power iterations bound (SubLipschitz),
// so that K bounds this very computation up to its own float32 rounding.
func (m *LiResNet) Logits(dst, x []float32, n int) error {
	in := m.InputSize()
	Chunks(n, m.maxBatch, func(lo, k int) {
		copy(dst[lo*m.Classes:(lo+k)*m.Classes], m.forward(x[lo*in:(lo+k)*in], k, true))
	})
	return nil
}

// InputGradient writes the gradient with respect to x of
// sum dlogits·logits(x), through the same exact path as Logits, so that
// attacks follow the gradient of the function they try to break. It leaves
// the parameters' gradients changed: not for use during a training step.
func (m *LiResNet) InputGradient(dx, x, dlogits []float32, n int) error {
	in := m.InputSize()
	Chunks(n, m.maxBatch, func(lo, k int) {
		m.forward(x[lo*in:(lo+k)*in], k, true)
		m.backward(dlogits[lo*m.Classes:(lo+k)*m.Classes], nil, k, dx[lo*in:(lo+k)*in])
	})
	return nil
}

// PowerIterations lists the sub-network's power iterations in order: stem,
// blocks, neck conv, neck linear.
func (m *LiResNet) PowerIterations() []*nn.PowerIteration {
	return append(append([]*nn.PowerIteration{m.PIStem}, m.PIBlocks...), m.PINeck, m.PIFC)
}

// SubLipschitz runs iters power iterations on every layer of the
// sub-network (all but the head) and returns the product of their bounds:
// the Lipschitz constant K of the map from image to the head's input. With
// track, the iterates are kept so that BackwardLipschitz can differentiate
// through them (training: 10 iterations); without, only σ's gradient at the
// final vectors is available (evaluation: 500 iterations, no gradient).
func (m *LiResNet) SubLipschitz(iters int, track bool) float64 {
	for _, b := range m.Blocks {
		b.kernel()
	}
	m.wasTracked = track
	k := 1.0
	for i, pi := range m.PowerIterations() {
		if track {
			k *= float64(m.tracked[i].step(iters))
		} else {
			k *= float64(pi.Step(iters))
		}
	}
	return k
}

// BackwardLipschitz adds dK times the gradient of K (from the last
// SubLipschitz) to the weights' gradients: through the iterations if they
// were tracked, else at the final vectors.
func (m *LiResNet) BackwardLipschitz(dK, k float64) {
	grads := append([][]float32{m.Stem.Weight.G}, make([][]float32, len(m.Blocks))...)
	for i, b := range m.Blocks {
		grads[1+i] = b.dKernel
	}
	grads = append(grads, m.Neck.Weight.G, m.FC.Weight.G)
	for i, pi := range m.PowerIterations() {
		d := float32(dK * k / float64(pi.Sigma))
		if m.wasTracked {
			m.tracked[i].backward(grads[i], d)
		} else {
			pi.Backward(grads[i], d)
		}
	}
	for _, b := range m.Blocks {
		b.backKernel()
	}
}
