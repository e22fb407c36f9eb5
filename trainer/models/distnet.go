package models

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"certmix/trainer/nn"
)

// DistNetConfig sizes an l_inf-dist Net (the authors' MLPModel, the authors' MLPModel)
// or a SortNet (SortMLPModel, the authors' SortMLPModel).
type DistNetConfig struct {
	Depth, Width, Classes, Channels int
	MaxBatch                        int
	// Inputs is the number of values of one input, Channels planes of the
	// dataset's image size (e.g. 3 x 8 x 8 = 192); required.
	Inputs int
	// Identity is the identity init value (10 for l_inf-dist Net, 0 for
	// none: SortNet).
	Identity float32
	// KeepProb is SortNet's keep-probability q of layers 2..Depth (0.85); 0
	// or 1 makes every unit a plain l_inf-dist unit (l_inf-dist Net, and
	// SortNet "w/o dropout").
	KeepProb float64
	// TopK is the sort units' truncation (10) and Group the size of the
	// sample groups that share an input subset in training (32).
	TopK, Group int
	// Mean (per channel) and Std normalise the [0,1] inputs inside the model.
	Mean []float32
	Std  float32
	// Scalar adds the learnable logit scale s (init 1) that multiplies the
	// logits in the cross-entropy term only.
	Scalar bool
}

// DistNet is an l_inf-dist Net or a SortNet: Depth l_p-distance layers, the
// first Depth-1 followed by a mean shift, the last with Classes units and a
// bias; logits = -(d + b). At evaluation every unit is an l_inf-dist unit or
// (SortNet, layers 2..Depth) a sort unit, so the logits are 1-Lipschitz in
// l_inf in normalised units, i.e. with respect to x/Std in pixel units.
type DistNet struct {
	Cfg    DistNetConfig
	Layers []*nn.LpDist
	Shifts []*nn.MeanShift // after layers 0..Depth-2
	Bias   *nn.Param       // fc_dist.{Depth-1}.bias
	Scalar *nn.Param       // nil without Scalar
	Masks  []*nn.InputMask // per layer; nil where the layer keeps every input

	xn     []float32   // normalised input
	d, z   [][]float32 // per layer: distances, and (hidden layers) their shifted values
	logits []float32
	g1, g2 []float32 // backward ping-pong
	blo    [2][]float32
	bhi    [2][]float32
}

// ErrDistNet reports a configuration the network cannot be built from.
var ErrDistNet = errors.New("dist net configuration")

// NewDistNet builds the network with weights from rng (N(0,1), identity
// init on the hidden layers where In <= Out).
func NewDistNet(c DistNetConfig, rng *rand.Rand) (*DistNet, error) {
	if c.Inputs < 1 || c.Depth < 2 || c.Width < 1 || c.Inputs%c.Channels != 0 || c.Classes < 2 || c.Channels < 1 || c.MaxBatch < 1 || len(c.Mean) != c.Channels || !(c.Std > 0) {
		return nil, fmt.Errorf("depth %d, width %d, %d classes, %d channels, %d inputs, batch %d, mean %v, std %v: %w",
			c.Depth, c.Width, c.Classes, c.Channels, c.Inputs, c.MaxBatch, c.Mean, c.Std, ErrDistNet)
	}
	if c.KeepProb == 0 {
		c.KeepProb = 1
	}
	if c.KeepProb < 0 || c.KeepProb > 1 || (c.KeepProb < 1 && (c.TopK < 1 || c.Group < 1)) {
		return nil, fmt.Errorf("keep-probability %v, truncation %d, group %d: %w", c.KeepProb, c.TopK, c.Group, ErrDistNet)
	}
	m := &DistNet{Cfg: c}
	in := c.Inputs
	widest := max(in, c.Width, c.Classes)
	for l := range c.Depth {
		out := c.Width
		if l == c.Depth-1 {
			out = c.Classes
		}
		layer := nn.NewLpDist(fmt.Sprintf("fc_dist.%d", l), in, out, c.MaxBatch, rng)
		layer.Weight.NoDecay = true
		if l < c.Depth-1 && c.Identity != 0 {
			layer.IdentityInit(c.Identity)
		}
		m.Layers = append(m.Layers, layer)
		m.d = append(m.d, make([]float32, c.MaxBatch*out))
		var mask *nn.InputMask
		if l > 0 && c.KeepProb < 1 {
			mask = nn.NewInputMask(in, c.MaxBatch, c.Group)
		}
		m.Masks = append(m.Masks, mask)
		if l < c.Depth-1 {
			m.Shifts = append(m.Shifts, nn.NewMeanShift(out))
			m.z = append(m.z, make([]float32, c.MaxBatch*out))
		}
		in = out
	}
	m.Bias = nn.NewParam(fmt.Sprintf("fc_dist.%d.bias", c.Depth-1), c.Classes)
	m.Bias.NoDecay = true
	if c.Scalar {
		m.Scalar = nn.NewParam("scalar", 1)
		m.Scalar.W[0] = 1
	}
	m.xn = make([]float32, c.MaxBatch*c.Inputs)
	m.logits = make([]float32, c.MaxBatch*c.Classes)
	m.g1, m.g2 = make([]float32, c.MaxBatch*widest), make([]float32, c.MaxBatch*widest)
	for i := range 2 {
		m.blo[i], m.bhi[i] = make([]float32, c.MaxBatch*widest), make([]float32, c.MaxBatch*widest)
	}
	return m, nil
}

// InputSize is the number of values of one input image.
func (m *DistNet) InputSize() int { return m.Cfg.Inputs }

// Params lists the weights, the last layer's bias and the scalar, named as
// in the authors' models.
func (m *DistNet) Params() []*nn.Param {
	var ps []*nn.Param
	for _, l := range m.Layers {
		ps = append(ps, l.Weight)
	}
	ps = append(ps, m.Bias)
	if m.Scalar != nil {
		ps = append(ps, m.Scalar)
	}
	return ps
}

// RunningMeans are the mean shifts' running means with their names.
func (m *DistNet) RunningMeans() (names []string, data [][]float32) {
	for l, s := range m.Shifts {
		names = append(names, fmt.Sprintf("fc_dist.%d.mean_shift.running_mean", l))
		data = append(data, s.Running)
	}
	return names, data
}

// sortLayer reports whether layer l is made of sort units at evaluation.
func (m *DistNet) sortLayer(l int) bool { return l > 0 && m.Cfg.KeepProb < 1 }

// Normalize writes (x - mean_c)/std for n images, in float32.
func (m *DistNet) Normalize(dst, x []float32, n int) {
	plane := m.Cfg.Inputs / m.Cfg.Channels
	for b := range n {
		for c, mu := range m.Cfg.Mean {
			src, out := x[(b*m.Cfg.Channels+c)*plane:][:plane], dst[(b*m.Cfg.Channels+c)*plane:][:plane]
			for i, v := range src {
				out[i] = (v - mu) / m.Cfg.Std
			}
		}
	}
}

// Forward runs n <= MaxBatch images (float32 NCHW in [0,1]) in training mode
// at p: batch means in the mean shifts, every layer's Mask as the caller
// drew it (nil: all inputs). It returns the logits (n x Classes), valid
// until the next call.
func (m *DistNet) Forward(x []float32, n int, p float64) []float32 {
	return m.forward(x, n, p, true, false)
}

// Eval is the forward pass in evaluation mode: p = inf, sort units where
// the network has them, running means.
func (m *DistNet) Eval(x []float32, n int) []float32 {
	return m.forward(x, n, math.Inf(1), false, false)
}

// forward runs the layers; track keeps what InputGrad needs of sort units.
func (m *DistNet) forward(x []float32, n int, p float64, train, track bool) []float32 {
	m.Normalize(m.xn, x, n)
	in := m.xn
	last := len(m.Layers) - 1
	for l, layer := range m.Layers {
		layer.P = p
		if train {
			layer.Mask = m.Masks[l]
		} else {
			layer.Mask = nil
		}
		switch {
		case !train && m.sortLayer(l) && track:
			layer.SortForwardTracked(m.d[l], in, n, m.Cfg.KeepProb, m.Cfg.TopK)
		case !train && m.sortLayer(l):
			layer.SortForward(m.d[l], in, n, m.Cfg.KeepProb, m.Cfg.TopK)
		default:
			layer.Forward(m.d[l], in, n)
		}
		if l < last {
			m.Shifts[l].Forward(m.z[l], m.d[l], n, train)
			in = m.z[l]
		}
	}
	C := m.Cfg.Classes
	for b := range n {
		for j, bj := range m.Bias.W {
			m.logits[b*C+j] = -(m.d[last][b*C+j] + bj)
		}
	}
	return m.logits[:n*C]
}

// Backward ACCUMULATES the parameter gradients of the last training Forward
// from dlogits = dL/dlogits (n x Classes); the scalar's gradient is the
// caller's (it enters only the loss).
func (m *DistNet) Backward(dlogits []float32, n int) {
	C := m.Cfg.Classes
	gd := m.g1[:n*C]
	for b := range n {
		for j := range C {
			gd[b*C+j] = -dlogits[b*C+j]
			m.Bias.G[j] += gd[b*C+j]
		}
	}
	other := m.g2
	for l := len(m.Layers) - 1; l >= 0; l-- {
		layer := m.Layers[l]
		if l == 0 {
			layer.Backward(nil, gd, m.xn, m.d[0], n)
			break
		}
		gz := other[:n*layer.In]
		layer.Backward(gz, gd, m.z[l-1], m.d[l], n)
		m.Shifts[l-1].Backward(gz, gz, n)
		other, gd = gd[:cap(gd)], gz
	}
}

// InputGradient writes dx = the gradient with respect to the [0,1] input of
// sum_{b,j} dlogits[b,j]·logit_j in evaluation mode (running means are
// constants, so the mean shifts pass gradients through), for n <= MaxBatch.
func (m *DistNet) InputGradient(dx, x, dlogits []float32, n int) {
	m.forward(x, n, math.Inf(1), false, true)
	C := m.Cfg.Classes
	gd := m.g1[:n*C]
	for k, v := range dlogits[:n*C] {
		gd[k] = -v
	}
	other := m.g2
	for l := len(m.Layers) - 1; l >= 0; l-- {
		layer := m.Layers[l]
		in := m.xn
		if l > 0 {
			in = m.z[l-1]
		}
		g := other[:n*layer.In]
		layer.InputGrad(g, gd, in, n)
		other, gd = gd[:cap(gd)], g
	}
	for k, v := range gd {
		dx[k] = v / m.Cfg.Std // d(x - mu)/std / dx
	}
}

// Bounds propagates the pixel box [lo, hi] (n x InputSize, in [0,1]) in
// evaluation mode and returns bounds on the logits, gLo <= logits <= gHi
// (n x Classes each, valid until the next call), which hold for the
// float32 Eval of every image in the box.
func (m *DistNet) Bounds(lo, hi []float32, n int) (gLo, gHi []float32) {
	cur := 0
	m.Normalize(m.blo[cur], lo, n)
	m.Normalize(m.bhi[cur], hi, n)
	last := len(m.Layers) - 1
	for l, layer := range m.Layers {
		nxt := 1 - cur
		dLo, dHi := m.blo[nxt][:n*layer.Out], m.bhi[nxt][:n*layer.Out]
		if m.sortLayer(l) {
			layer.SortBounds(dLo, dHi, m.blo[cur], m.bhi[cur], n, m.Cfg.KeepProb, m.Cfg.TopK)
		} else {
			layer.Bounds(dLo, dHi, m.blo[cur], m.bhi[cur], n)
		}
		if l < last {
			mu := m.Shifts[l].Running
			for b := range n {
				for j, v := range mu {
					dLo[b*layer.Out+j] -= v
					dHi[b*layer.Out+j] -= v
				}
			}
		}
		cur = nxt
	}
	C := m.Cfg.Classes
	gLo, gHi = m.g1[:n*C], m.g2[:n*C]
	for b := range n {
		for j, bj := range m.Bias.W {
			gLo[b*C+j] = -(m.bhi[cur][b*C+j] + bj)
			gHi[b*C+j] = -(m.blo[cur][b*C+j] + bj)
		}
	}
	return gLo, gHi
}

// recalibrate recomputes the running means as SortNet does before testing
// (the authors' update_bn): n images in batches of MaxBatch through the evaluation units,
// each mean shift using its batch's own mean, the running mean being the
// average of the batch means (momentum 1/(k+1) for batch k).
func (m *DistNet) Recalibrate(x []float32, n int) {
	for _, s := range m.Shifts {
		defer func(mom float64) { s.Momentum = mom }(s.Momentum)
	}
	d := m.InputSize()
	for k, lo := 0, 0; lo < n; k, lo = k+1, lo+m.Cfg.MaxBatch {
		rows := min(m.Cfg.MaxBatch, n-lo)
		m.Normalize(m.xn, x[lo*d:], rows)
		in := m.xn
		for l, layer := range m.Layers[:len(m.Layers)-1] {
			layer.P, layer.Mask = math.Inf(1), nil
			if m.sortLayer(l) {
				layer.SortForward(m.d[l], in, rows, m.Cfg.KeepProb, m.Cfg.TopK)
			} else {
				layer.Forward(m.d[l], in, rows)
			}
			m.Shifts[l].Momentum = 1 / float64(k+1)
			m.Shifts[l].Forward(m.z[l], m.d[l], rows, true)
			in = m.z[l]
		}
	}
}

// MaxActivation is, per image of the last Eval, the largest magnitude of
// any value it computed (input, distances, shifted values, logits): the
// scale of its float32 rounding errors.
func (m *DistNet) MaxActivation(b int) float32 {
	var a float32
	scan := func(v []float32) {
		for _, x := range v {
			a = max(a, float32(math.Abs(float64(x))))
		}
	}
	d := m.InputSize()
	scan(m.xn[b*d : (b+1)*d])
	for l, layer := range m.Layers {
		scan(m.d[l][b*layer.Out : (b+1)*layer.Out])
		if l < len(m.z) {
			scan(m.z[l][b*layer.Out : (b+1)*layer.Out])
		}
	}
	scan(m.logits[b*m.Cfg.Classes : (b+1)*m.Cfg.Classes])
	return a
}
