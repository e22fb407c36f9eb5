package models

import (
	"fmt"
	"math"
	"math/rand/v2"

	"certmix/trainer/nn"
)

// LipConvnet is LOT's LipConvnet-(5·b) for 32×32 images (the authors' lip_convnets.py): the
// input normalised by (x − mean_c)/std, five stages of b blocks (a LOT
// convolution and MaxMin), and a last layer. In stage s (planes P = Width·2^s)
// the first b − 1 blocks are 3×3 LOT convolutions at stride 1 (in → P, then
// P → P) and the last is a stride-2 LOT convolution (space-to-depth, 4P → 2P;
// 1×1 in stage 5), so the stages end at 2·Width@16², …, 32·Width@1². With
// Residual (LOT's LipResNet, the authors' README command) the b − 2 middle
// blocks of a stage are applied as x ← λx + (1 − λ)·block(x), λ =
// sigmoid(res_lamda_logit) of the stage (½ unless SetResidualLogits says
// otherwise); for b ≤ 2 there are none. These blocks keep size and
// channels, so the skip path is the identity. The last layer maps the 32·Width features to the classes: a 1×1 LOT
// layer (row-orthonormal), or with LLN a linear layer whose rows are
// normalised on every use.
//
// Every LOT layer is at most 1-Lipschitz (proved per layer by
// nn.LOT.LipschitzBound), MaxMin is 1-Lipschitz and a residual mix
// λ + (1 − λ)σ, so the network is LipschitzBound()-Lipschitz in pixel space, about
// 1/std. Forward runs in float32 (training, evaluation); the certificate is
// about ProvenLogits, the same network evaluated in float64 with a proven
// rounding bound (lipconvnet_proof.go).
type LipConvnet struct {
	Blocks, Width, Classes, Channels int // b, init channels
	Residual, LLN                    bool
	Mean                             []float32 // per channel
	Std                              float32
	Features                         int // 32·Width
	maxBatch                         int

	Layers []*LipBlock
	// ResLogits is each stage's res_lamda_logit (LipResNet; 0: λ = ½).
	ResLogits [5]float32
	Last      *nn.LOT   // without LLN
	Head      *nn.Param // with LLN: Classes × Features, normalised row-wise on every use
	HBias     *nn.Param

	headHat, headNorm []float32
	dHead             []float32 // ∂L/∂ŵ
	x0                []float32
	logits            []float32
	g                 [3][]float32 // gradient scratch
	lastTrain         bool
}

// LipBlock is one LOT convolution followed by MaxMin, optionally mixed
// with its input (LOT's residual hidden blocks): out = λ·in + (1 − λ)·act.
type LipBlock struct {
	Conv     *nn.LOT
	Act      *nn.MinMax
	Residual bool
	Stage    int       // 0..4
	Lambda   float32   // λ, the weight of the input (Residual only)
	Keep     float32   // 1 − λ as the forward pass uses it, the weight of the block
	pre, act []float32 // the convolution's output and the activation's
	out      []float32 // the block's output (act itself unless Residual)
}

// NewLipConvnet builds LipConvnet-(5·blocks) with init channels width for
// classes classes and inputs of channels × 32 × 32, Newton–Schulz with iters
// iterations, normalisation (x − mean)/std, weights drawn from rng, for batches
// of up to maxBatch.
func NewLipConvnet(blocks, width, classes, channels int, residual, lln bool, mean []float64, std float64, iters, maxBatch int, rng *rand.Rand) (*LipConvnet, error) {
	if blocks < 1 || width < 1 || classes < 2 || channels < 1 || len(mean) != channels || !(std > 0) || iters < 1 || maxBatch < 1 {
		return nil, fmt.Errorf("LipConvnet-%d, width %d, %d classes, %d channels (%d means), std %g, %d iterations, batch %d: want blocks >= 1, width >= 1, classes >= 2, one mean per channel, std > 0",
			5*blocks, width, classes, channels, len(mean), std, iters, maxBatch)
	}
	m := &LipConvnet{Blocks: blocks, Width: width, Classes: classes, Channels: channels, Residual: residual, LLN: lln,
		Std: float32(std), maxBatch: maxBatch}
	for _, v := range mean {
		m.Mean = append(m.Mean, float32(v))
	}
	in, planes, size := channels, width, InputSide
	stage := 0
	add := func(name string, inC, cout, k, stride int, res bool) {
		l := &LipBlock{Conv: nn.NewLOT(name, inC, cout, k, stride, size, maxBatch, iters, rng), Residual: res,
			Lambda: 0.5, Keep: 0.5}
		p := l.Conv.N * l.Conv.N
		l.Act = nn.NewMinMax(cout, p)
		l.pre, l.act = make([]float32, maxBatch*cout*p), make([]float32, maxBatch*cout*p)
		l.out = l.act
		if res {
			l.out = make([]float32, maxBatch*cout*p)
		}
		l.Stage = stage
		m.Layers = append(m.Layers, l)
	}
	for s := range 5 {
		stage = s
		k := 3
		if s == 4 {
			k = 1
		}
		// The authors' module names: LipResNet's layer{s}.in_block, .hidden_block.{j},
		// .out_block (.block when b = 1); LipConvNet's layer{s}.{index}.
		name := func(part string, hidden, index int) string {
			switch {
			case !residual:
				return fmt.Sprintf("layer%d.%d.conv", s+1, index)
			case part == "hidden_block":
				return fmt.Sprintf("layer%d.hidden_block.%d.conv", s+1, hidden)
			}
			return fmt.Sprintf("layer%d.%s.conv", s+1, part)
		}
		if blocks == 1 {
			add(name("block", 0, 0), in, 2*planes, k, 2, false)
		} else {
			add(name("in_block", 0, 0), in, planes, 3, 1, false)
			for j := range blocks - 2 {
				add(name("hidden_block", j, j+1), planes, planes, 3, 1, residual)
			}
			add(name("out_block", 0, blocks-1), planes, 2*planes, k, 2, false)
		}
		in, planes, size = 2*planes, 2*planes, size/2
	}
	m.Features = in
	if lln {
		m.Head, m.HBias = nn.NewParam("last_layer.weight", classes, in), nn.NewParam("last_layer.bias", classes)
		bound := 1 / math.Sqrt(float64(in))
		nn.Uniform(m.Head.W, bound, rng)
		nn.Uniform(m.HBias.W, bound, rng)
		m.headHat, m.headNorm, m.dHead = make([]float32, classes*in), make([]float32, classes), make([]float32, classes*in)
	} else {
		m.Last = nn.NewLOT("last_layer", in, classes, 1, 1, 1, maxBatch, iters, rng)
	}
	m.x0 = make([]float32, maxBatch*channels*inputPlane)
	m.logits = make([]float32, maxBatch*classes)
	biggest := channels * inputPlane
	for _, l := range m.Layers {
		biggest = max(biggest, l.Conv.OutLen(), l.Conv.InLen())
	}
	for i := range m.g {
		m.g[i] = make([]float32, maxBatch*biggest)
	}
	return m, nil
}

// SetResidualLogits sets each stage's res_lamda_logit, the mix of its
// residual blocks: λ = sigmoid(logit), computed in float64 and rounded to
// float32 as the forward pass uses it, and 1 − λ likewise.
func (m *LipConvnet) SetResidualLogits(logits [5]float32) error {
	for s, v := range logits {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("layer%d.res_lamda_logit is %v, want a finite value", s+1, v)
		}
	}
	m.ResLogits = logits
	for _, l := range m.Layers {
		z := float64(logits[l.Stage])
		l.Lambda, l.Keep = float32(1/(1+math.Exp(-z))), float32(1/(1+math.Exp(z)))
	}
	return nil
}

// Params lists every trainable tensor in order, named as the authors'
// PyTorch LipConvNet/LipResNet names them.
func (m *LipConvnet) Params() []*nn.Param {
	var ps []*nn.Param
	for _, l := range m.Layers {
		ps = append(ps, l.Conv.Params()...)
	}
	if m.LLN {
		return append(ps, m.Head, m.HBias)
	}
	return append(ps, m.Last.Params()...)
}

// InputSize returns the values of one image: Channels × 32 × 32.
func (m *LipConvnet) InputSize() int { return m.Channels * inputPlane }

// HeadRows returns the normalised rows ŵ of the LLN last layer as of the last
// Forward (nil without LLN).
func (m *LipConvnet) HeadRows() []float32 { return m.headHat }

// Forward computes the logits of n images (n × Channels × 32 × 32 in [0,1])
// and keeps what Backward needs. With train the LOT layers orthogonalise
// afresh and keep their Newton–Schulz iterates; without, they use their
// cached orthogonal kernels (evaluation). The returned slice is the model's
// own, valid until the next Forward.
func (m *LipConvnet) Forward(x []float32, n int, train bool) []float32 {
	if n > m.maxBatch || len(x) < n*m.InputSize() {
		panic("models: LipConvnet.Forward: batch larger than the model's or short input")
	}
	m.lastTrain = train
	inv := 1 / m.Std
	for c := range m.Channels {
		mu := m.Mean[c]
		for i := range n {
			src, dst := x[(i*m.Channels+c)*inputPlane:][:inputPlane], m.x0[(i*m.Channels+c)*inputPlane:][:inputPlane]
			for j, v := range src {
				dst[j] = (v - mu) * inv
			}
		}
	}
	in := m.x0
	for _, l := range m.Layers {
		l.Conv.Forward(l.pre, in, n, train)
		size := n * l.Conv.OutLen()
		l.Act.Forward(l.act, l.pre[:size], n)
		if l.Residual {
			lam, keep := l.Lambda, l.Keep
			for i, v := range l.act[:size] {
				l.out[i] = lam*in[i] + keep*v
			}
		}
		in = l.out
	}
	c := m.Classes
	if m.LLN {
		m.normHead()
		nn.LinearForward(m.logits, in, m.headHat, m.HBias.W, n, m.Features, c)
	} else {
		m.Last.Forward(m.logits, in, n, train)
	}
	return m.logits[:n*c]
}

// normHead computes the row-normalised LLN weights ŵ.
func (m *LipConvnet) normHead() {
	f := m.Features
	for c := range m.Classes {
		row := m.Head.W[c*f : (c+1)*f]
		var s float64
		for _, v := range row {
			s += float64(v) * float64(v)
		}
		nrm := float32(math.Sqrt(s))
		m.headNorm[c] = nrm
		for i, v := range row {
			m.headHat[c*f+i] = v / nrm
		}
	}
}

// Backward propagates dLogits (n × Classes) through the last Forward. After
// a training Forward it ACCUMULATES every parameter's gradient; dHat, the
// gradient of other loss terms with respect to the LLN rows ŵ (may be nil),
// is added to the head's. After an evaluation Forward the parameters are left
// alone. It WRITES ∂L/∂x (pixel units) into dx unless dx is nil.
func (m *LipConvnet) Backward(dLogits, dHat []float32, n int, dx []float32) {
	c, f := m.Classes, m.Features
	d := m.g[0][:n*f]
	if m.LLN {
		var dHead, dBias []float32
		if m.lastTrain {
			dHead, dBias = m.dHead, m.HBias.G
			clear(dHead)
			if dHat != nil {
				copy(dHead, dHat)
			}
		}
		nn.LinearBackward(d, dHead, dBias, dLogits, m.Layers[len(m.Layers)-1].out, m.headHat, n, f, c)
		if m.lastTrain {
			for k := range c { // ∂L/∂w = (∂L/∂ŵ − ŵ (ŵ·∂L/∂ŵ)) / ‖w‖
				hat, dh := m.headHat[k*f:(k+1)*f], dHead[k*f:(k+1)*f]
				var dot float32
				for i := range hat {
					dot += hat[i] * dh[i]
				}
				g := m.Head.G[k*f : (k+1)*f]
				for i := range hat {
					g[i] += (dh[i] - hat[i]*dot) / m.headNorm[k]
				}
			}
		}
	} else {
		m.Last.Backward(d, dLogits, n)
	}
	cur, spare := 0, [2]int{1, 2}
	for i := len(m.Layers) - 1; i >= 0; i-- {
		l := m.Layers[i]
		out := n * l.Conv.OutLen()
		dOut := m.g[cur][:out]
		dPre, dIn := m.g[spare[0]][:out], m.g[spare[1]][:n*l.Conv.InLen()]
		l.Act.Backward(dPre, dOut, l.pre, n)
		if l.Residual { // MaxMin's backward is linear: scale after it, keeping dOut for the skip path
			for j := range dPre {
				dPre[j] *= l.Keep
			}
		}
		if i == 0 {
			if dx == nil {
				l.Conv.Backward(nil, dPre, n)
				return
			}
			dIn = dx[:n*m.InputSize()]
		}
		l.Conv.Backward(dIn, dPre, n)
		if l.Residual {
			for j, v := range dOut {
				dIn[j] += l.Lambda * v // the λx path
			}
		}
		if i > 0 {
			cur, spare = spare[1], [2]int{cur, spare[0]}
		}
	}
	inv := 1 / m.Std
	for i := range dx[:n*m.InputSize()] {
		dx[i] *= inv
	}
}

// Logits writes the evaluation-mode logits of n images into dst, in chunks
// of the model's batch size.
func (m *LipConvnet) Logits(dst, x []float32, n int) error {
	in := m.InputSize()
	Chunks(n, m.maxBatch, func(lo, k int) {
		copy(dst[lo*m.Classes:(lo+k)*m.Classes], m.Forward(x[lo*in:(lo+k)*in], k, false))
	})
	return nil
}

// InputGradient writes the gradient with respect to x of
// sum dlogits·logits(x) in evaluation mode; the parameters' gradients are
// left alone.
func (m *LipConvnet) InputGradient(dx, x, dlogits []float32, n int) error {
	in := m.InputSize()
	Chunks(n, m.maxBatch, func(lo, k int) {
		m.Forward(x[lo*in:(lo+k)*in], k, false)
		m.Backward(dlogits[lo*m.Classes:(lo+k)*m.Classes], nil, k, dx[lo*in:(lo+k)*in])
	})
	return nil
}

// LipschitzBound returns proven ℓ2 Lipschitz bounds of the network in pixel
// units, for the weights as they are: of the backbone (normalisation and
// every block, up to the last layer's input) and, without LLN, of the last
// layer. The normalisation contributes the float32 1/std that Forward
// multiplies with; each LOT layer's bound comes from nn.LOT.LipschitzBound; a
// residual block λx + (1 − λ)f(x) contributes ‖λx + (1 − λ)f(x) − λy − (1 −
// λ)f(y)‖ ≤ (λ + (1 − λ)σ)‖x − y‖ with the float32 λ and 1 − λ the forward
// pass multiplies by (both in (0, 1]; f = MaxMin after the convolution is
// σ-Lipschitz). Every float64 product and sum is rounded up (nn.Up), so the
// bound holds for the exact network that ProvenLogits' certificate is about.
func (m *LipConvnet) LipschitzBound() (backbone, last float64) {
	backbone = float64(1 / m.Std)
	for _, l := range m.Layers {
		s := l.Conv.LipschitzBound()
		if l.Residual {
			s = nn.Up(float64(l.Lambda)+float64(l.Keep)*s, 2)
		}
		backbone = nn.Up(backbone*s, 1)
	}
	if m.LLN {
		return backbone, math.NaN()
	}
	return backbone, m.Last.LipschitzBound()
}
