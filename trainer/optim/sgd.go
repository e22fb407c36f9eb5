package optim

import "certmix/trainer/nn"

// SGD is PyTorch's SGD with momentum (no dampening, no Nesterov), LOT's
// optimiser: g ← g + wd·w (coupled L2 decay, skipped for
// parameters marked NoDecay), b ← μ·b + g, w ← w − lr·b. The momentum buffer
// starts at zero, so the first step is PyTorch's b = g.
type SGD struct {
	Momentum, WeightDecay float64
	B                     [][]float32 // momentum buffers, one per parameter
	names                 []string
}

// NewSGD returns an SGD optimiser for params.
func NewSGD(params []*nn.Param, momentum, weightDecay float64) *SGD {
	o := &SGD{Momentum: momentum, WeightDecay: weightDecay}
	for _, p := range params {
		o.B = append(o.B, make([]float32, len(p.W)))
		o.names = append(o.names, p.Name)
	}
	return o
}

// Buffers are the momentum buffers, named sgd_momentum/<param>.
func (o *SGD) Buffers() []nn.Buffer {
	var bs []nn.Buffer
	for i, n := range o.names {
		bs = append(bs, nn.Buffer{Name: "sgd_momentum/" + n, Data: o.B[i]})
	}
	return bs
}

// Update applies one step with learning rate lr; step is unused (SGD has no
// bias correction).
func (o *SGD) Update(params []*nn.Param, lr float64, _ int64) {
	mu, rate := float32(o.Momentum), float32(lr)
	for k, p := range params {
		wd := float32(o.WeightDecay)
		if p.NoDecay {
			wd = 0
		}
		b := o.B[k]
		for i, g := range p.G {
			g += wd * p.W[i]
			b[i] = mu*b[i] + g
			p.W[i] -= rate * b[i]
		}
	}
}
