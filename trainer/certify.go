package trainer

import (
	"math"

	"certmix/certifier"
	"certmix/trainer/models"
)

// Classifier adapts a LiResNet to certifier.Classifier, for attacks.
func Classifier(m *models.LiResNet) certifier.Classifier { return classifier{m} }

type classifier struct{ m *models.LiResNet }

func (c classifier) Classes() int   { return c.m.Classes }
func (c classifier) InputSize() int { return c.m.InputSize() }
func (c classifier) Logits(dst, x []float32, n int) error {
	return c.m.Logits(dst, x, n)
}
func (c classifier) InputGradient(dx, x, dlogits []float32, n int) error {
	return c.m.InputGradient(dx, x, dlogits, n)
}

// Certify returns the GloRo certificate of each of n images (model inputs,
// float32 NCHW in [0,1]), and K. K comes from at least iters power
// iterations, continued (up to 50 times as many) until it changes by less
// than 1e-6 relative: power iteration approaches each layer's norm from
// below, so a K that has not converged would certify radii a little too
// large. The training state of the power vectors is restored afterwards, so
// that evaluating between epochs does not change the run.
func Certify(m *models.LiResNet, x []float32, labels []int, iters int) ([]certifier.Result, float64, error) {
	var saved [][]float32
	for _, pi := range m.PowerIterations() {
		saved = append(saved, append([]float32(nil), pi.V...))
	}
	defer func() {
		for i, pi := range m.PowerIterations() {
			copy(pi.V, saved[i])
		}
	}()
	k := m.SubLipschitz(iters, false)
	for range 49 {
		next := m.SubLipschitz(max(iters, 100), false)
		converged := math.Abs(next-k) <= 1e-6*k
		k = max(k, next)
		if converged {
			break
		}
	}
	n := len(labels)
	logits := make([]float32, n*m.Classes)
	if err := m.Logits(logits, x, n); err != nil {
		return nil, 0, err
	}
	res, err := certifier.Certify(logits, labels, k, m.HeadRows(), m.Classes)
	return res, k, err
}
