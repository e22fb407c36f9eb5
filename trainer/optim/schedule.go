package optim

import (
	"math"
)

// LearningRate is the learning rate of step i (counted from 1) of total
// steps under schedule, for peak rate lr0, evaluated per iteration as in
// the authors' code:
//   - "warmup-cosine" (GloroNet; the default): [WarmupCosine] with warmup
//     steps of linear warm-up;
//   - "cosine" (l_inf-dist Net, SortNet, LOT's cosine variant):
//     0.5·lr0·(1 + cos(π·(i−1)/total));
//   - "multistep" (LOT's original): lr0, divided by 10 at step ⌊total/2⌋ and again at
//     ⌊3·total/4⌋ (0-based), as PyTorch's MultiStepLR stepped per iteration.
func LearningRate(schedule string, lr0 float64, i, warmup, total int64) float64 {
	switch schedule {
	case "cosine":
		return 0.5 * lr0 * (1 + math.Cos(math.Pi*float64(i-1)/float64(max(total, 1))))
	case "multistep":
		lr := lr0
		if i-1 >= total/2 {
			lr /= 10
		}
		if i-1 >= 3*total/4 {
			lr /= 10
		}
		return lr
	}
	return WarmupCosine(lr0, i, warmup, total)
}

// WarmupCosine is GloroNet's learning rate per iteration i (counted from 1):
// linear warm-up over warmup iterations, then a cosine decay to 1e-5 of lr0
// at total iterations (the
// LiResNet code's schedule).
func WarmupCosine(lr0 float64, i, warmup, total int64) float64 {
	if i < warmup {
		return lr0 * float64(i) / float64(warmup)
	}
	t := float64(i-warmup) / float64(max(total-warmup, 1))
	return lr0 * max(1e-5, 0.5*(1+math.Cos(math.Pi*t)))
}
