// Package optim holds the optimisers of the paper's architectures (AdamW,
// SGD with momentum), gradient clipping and the learning-rate schedules,
// all as PyTorch computes them, so that a run here follows the authors'.
package optim

import (
	"fmt"
	"math"

	"certmix/trainer/nn"
)

// Optimizer updates parameters from their gradients.
type Optimizer interface {
	// Update applies step (counted from 1) with learning rate lr.
	Update(params []*nn.Param, lr float64, step int64)
	// Buffers lists the optimiser's state (moments), for checkpoints.
	Buffers() []nn.Buffer
}

// Config names an optimiser and its hyperparameters; zero fields take
// PyTorch's defaults.
type Config struct {
	Name         string  // "adamw" (the default when empty) or "sgd"
	Beta1, Beta2 float64 // Adam's betas
	Eps          float64 // Adam's epsilon
	Momentum     float64 // SGD
}

// New returns the optimiser cfg names for params, with weight decay
// weightDecay (not applied to parameters marked NoDecay).
func New(cfg Config, params []*nn.Param, weightDecay float64) (Optimizer, error) {
	switch cfg.Name {
	case "", "adamw":
		o := NewAdamW(params, weightDecay)
		if cfg.Beta1 > 0 {
			o.Beta1 = cfg.Beta1
		}
		if cfg.Beta2 > 0 {
			o.Beta2 = cfg.Beta2
		}
		if cfg.Eps > 0 {
			o.Eps = cfg.Eps
		}
		return o, nil
	case "sgd":
		return NewSGD(params, cfg.Momentum, weightDecay), nil
	}
	return nil, fmt.Errorf("optimizer %q: want adamw or sgd", cfg.Name)
}

// AdamW is PyTorch's AdamW: Adam moments with bias correction and weight
// decay decoupled from the gradient (w -= lr*wd*w before the Adam step).
// With weight decay 0 it is Adam.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	M, V                           [][]float32 // first and second moments, one per parameter
	names                          []string
}

// NewAdamW returns an optimizer for params with PyTorch's defaults
// (betas 0.9, 0.999, eps 1e-8) and the given weight decay.
func NewAdamW(params []*nn.Param, weightDecay float64) *AdamW {
	o := &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay}
	for _, p := range params {
		o.M = append(o.M, make([]float32, len(p.W)))
		o.V = append(o.V, make([]float32, len(p.W)))
		o.names = append(o.names, p.Name)
	}
	return o
}

// Buffers are the moments, named adam_m/<param> and adam_v/<param>.
func (o *AdamW) Buffers() []nn.Buffer {
	var bs []nn.Buffer
	for i, n := range o.names {
		bs = append(bs, nn.Buffer{Name: "adam_m/" + n, Data: o.M[i]}, nn.Buffer{Name: "adam_v/" + n, Data: o.V[i]})
	}
	return bs
}

// Update applies one step with learning rate lr to params, from their
// gradients.
func (o *AdamW) Update(params []*nn.Param, lr float64, step int64) {
	bc1 := 1 - math.Pow(o.Beta1, float64(step))
	bc2 := 1 - math.Pow(o.Beta2, float64(step))
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	stepSize := float32(lr / bc1)
	sqrtBC2 := float32(math.Sqrt(bc2))
	eps := float32(o.Eps)
	for k, p := range params {
		decay := float32(1 - lr*o.WeightDecay)
		if p.NoDecay {
			decay = 1
		}
		m, v := o.M[k], o.V[k]
		for i, g := range p.G {
			m[i] = b1*m[i] + (1-b1)*g
			v[i] = b2*v[i] + (1-b2)*g*g
			p.W[i] = p.W[i]*decay - stepSize*m[i]/(float32(math.Sqrt(float64(v[i])))/sqrtBC2+eps)
		}
	}
}

// GradNorm returns the global l2 norm of the gradients.
func GradNorm(params []*nn.Param) float64 {
	var sum float64
	for _, p := range params {
		for _, g := range p.G {
			sum += float64(g) * float64(g)
		}
	}
	return math.Sqrt(sum)
}

// ClipGradNorm scales all gradients down so that their global l2 norm is at
// most maxNorm, as torch.nn.utils.clip_grad_norm_; it returns the norm before.
func ClipGradNorm(params []*nn.Param, maxNorm float64) float64 {
	norm := GradNorm(params)
	if scale := maxNorm / (norm + 1e-6); scale < 1 {
		for _, p := range params {
			for i := range p.G {
				p.G[i] *= float32(scale)
			}
		}
	}
	return norm
}
