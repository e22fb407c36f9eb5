package trainer

import "math"

// WarmupCosine is GloroNet's learning rate per iteration i (counted from 1):
// linear warm-up over warmup iterations, then a cosine decay to 1e-5 of lr0
// at total iterations (spec 5.5).
func WarmupCosine(lr0 float64, i, warmup, total int64) float64 {
	if i < warmup {
		return lr0 * float64(i) / float64(warmup)
	}
	t := float64(i-warmup) / float64(max(total-warmup, 1))
	return lr0 * max(1e-5, 0.5*(1+math.Cos(math.Pi*t)))
}

// EpsRamp is GloroNet's training epsilon at epoch e of E: linear from 0.1 to
// 1.5 times eps over the first half, then 1.5 eps (spec 5.4).
func EpsRamp(eps float64, e, E int64) float64 {
	return eps * (0.1 + 1.4*min(2*float64(e)/float64(max(E, 1)), 1))
}
