package trainer

import (
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
// float32 NCHW in [0,1]), with K from iters power iterations (500 for
// evaluation), and K.
func Certify(m *models.LiResNet, x []float32, labels []int, iters int) ([]certifier.Result, float64, error) {
	k := m.SubLipschitz(iters, false)
	n := len(labels)
	logits := make([]float32, n*m.Classes)
	if err := m.Logits(logits, x, n); err != nil {
		return nil, 0, err
	}
	res, err := certifier.Certify(logits, labels, k, m.HeadRows(), m.Classes)
	return res, k, err
}
