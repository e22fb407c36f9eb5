package trainer

import (
	"math"

	"certmix/trainer/nn"
)

// AdamW is PyTorch's AdamW: Adam moments with bias correction and weight
// decay decoupled from the gradient (w -= lr*wd*w before the Adam step).
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	Step                           int64       // steps taken
	M, V                           [][]float32 // first and second moments, one per parameter
}

// NewAdamW returns an optimizer for params with PyTorch's defaults
// (betas 0.9, 0.999, eps 1e-8) and the given weight decay.
func NewAdamW(params []*nn.Param, weightDecay float64) *AdamW {
	o := &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay}
	for _, p := range params {
		o.M = append(o.M, make([]float32, len(p.W)))
		o.V = append(o.V, make([]float32, len(p.W)))
	}
	return o
}

// Update applies one step with learning rate lr to params, from their
// gradients.
func (o *AdamW) Update(params []*nn.Param, lr float64) {
	o.Step++
	bc1 := 1 - math.Pow(o.Beta1, float64(o.Step))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.Step))
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	decay := float32(1 - lr*o.WeightDecay)
	stepSize := float32(lr / bc1)
	sqrtBC2 := float32(math.Sqrt(bc2))
	eps := float32(o.Eps)
	for k, p := range params {
		m, v := o.M[k], o.V[k]
		for i, g := range p.G {
			m[i] = b1*m[i] + (1-b1)*g
			v[i] = b2*v[i] + (1-b2)*g*g
			p.W[i] = p.W[i]*decay - stepSize*m[i]/(float32(math.Sqrt(float64(v[i])))/sqrtBC2+eps)
		}
	}
}

// ClipGradNorm scales all gradients down so that their global l2 norm is at
// most maxNorm, as torch.nn.utils.clip_grad_norm_; it returns the norm before.
func ClipGradNorm(params []*nn.Param, maxNorm float64) float64 {
	var sum float64
	for _, p := range params {
		for _, g := range p.G {
			sum += float64(g) * float64(g)
		}
	}
	norm := math.Sqrt(sum)
	if scale := maxNorm / (norm + 1e-6); scale < 1 {
		for _, p := range params {
			for i := range p.G {
				p.G[i] *= float32(scale)
			}
		}
	}
	return norm
}

// ZeroGrad clears the gradients.
func ZeroGrad(params []*nn.Param) {
	for _, p := range params {
		clear(p.G)
	}
}
