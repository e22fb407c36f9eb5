package trainer

import (
	"math"
)

// LearningRate is the learning rate of step i (counted from 1) under
// cfg.Schedule, evaluated per iteration as in the authors' code:
//   - "warmup-cosine" (GloroNet, spec 5.5; the default): WarmupCosine;
//   - "cosine" (l_inf-dist Net, SortNet, LOT's cosine variant):
//     0.5·lr0·(1 + cos(π·(i−1)/total));
//   - "multistep" (LOT's original): lr0, divided by 10 at step ⌊total/2⌋ and again at
//     ⌊3·total/4⌋ (0-based), as PyTorch's MultiStepLR stepped per iteration.
func LearningRate(cfg Config, i int64) float64 {
	total := cfg.Epochs * cfg.StepsPerEpoch
	switch cfg.Schedule {
	case "cosine":
		return 0.5 * cfg.LR * (1 + math.Cos(math.Pi*float64(i-1)/float64(max(total, 1))))
	case "multistep":
		lr := cfg.LR
		if i-1 >= total/2 {
			lr /= 10
		}
		if i-1 >= 3*total/4 {
			lr /= 10
		}
		return lr
	}
	return WarmupCosine(cfg.LR, i, cfg.WarmupEpochs*cfg.StepsPerEpoch, total)
}

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
