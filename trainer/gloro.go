package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"

	"certmix/certifier"
	"certmix/trainer/models"
	"certmix/trainer/nn"
)

// ArchGloro is GloroNet on a LiResNet backbone under l2 (spec 5).
const ArchGloro = "gloro"

// Gloro is GloroNet: a LiResNet trained with the EMMA loss and certified
// by GloRo's margin test with the sub-network's Lipschitz bound K.
type Gloro struct {
	Net  *models.LiResNet
	cfg  Config
	dLog []float32
	dHat []float32
}

func newGloro(cfg Config) (*Gloro, error) {
	m, err := models.NewLiResNet(cfg.Depth, cfg.Width, cfg.Classes, cfg.Channels, cfg.Batch, rand.New(rand.NewPCG(cfg.Seed, 0x676c6f72)))
	if err != nil {
		return nil, err
	}
	if cfg.PowerIters < 1 {
		return nil, fmt.Errorf("GloroNet: %d power iterations per step, want at least 1", cfg.PowerIters)
	}
	return &Gloro{Net: m, cfg: cfg, dLog: make([]float32, cfg.Batch*cfg.Classes), dHat: make([]float32, cfg.Classes*models.Features)}, nil
}

func (g *Gloro) Classes() int        { return g.Net.Classes }
func (g *Gloro) InputSize() int      { return g.Net.InputSize() }
func (g *Gloro) Params() []*nn.Param { return g.Net.Params() }
func (g *Gloro) Logits(dst, x []float32, n int) error {
	return g.Net.Logits(dst, x, n)
}
func (g *Gloro) InputGradient(dx, x, dlogits []float32, n int) error {
	return g.Net.InputGradient(dx, x, dlogits, n)
}

// Buffers are the power-iteration vectors: stem, blocks, neck conv, neck linear.
func (g *Gloro) Buffers() []Buffer {
	var bs []Buffer
	for i, pi := range g.Net.PowerIterations() {
		bs = append(bs, Buffer{Name: fmt.Sprintf("power/%d", i), Data: pi.V})
	}
	return bs
}

// Loss is one GloroNet step: power iterations (tracked), forward, the EMMA
// loss at the ramped training eps, backward through the network and
// through the iterations.
func (g *Gloro) Loss(x []float32, labels []int, n int, at Progress) (LossReport, error) {
	m, c := g.Net, g.cfg
	eps := EpsRamp(c.Eps, at.Epoch(), at.Epochs())
	k := m.SubLipschitz(c.PowerIters, true)
	logits := m.Forward(x, n)
	clear(g.dHat)
	loss, dK := EMMA(logits, labels, m.HeadRows(), c.Classes, models.Features, k, eps, g.dLog[:n*c.Classes], g.dHat)
	m.Backward(g.dLog[:n*c.Classes], g.dHat, n)
	m.BackwardLipschitz(dK, k)
	return LossReport{Loss: loss, Values: map[string]float64{"k": k, "eps_train": eps}}, nil
}

// ProofGloro names what stands behind a GloroNet certificate's radii.
const ProofGloro = "l2: Cholesky-proven layer norms (banded Gram or padded-grid DFT, float64 with error terms) + forward rounding bound (float32 convolutions, float64 tail)"

// Certify returns the proven GloRo certificate of each image: K is the
// product of the layers' proven norms (models.LiResNet.ProvenLipschitz,
// not power iteration), and each radius allows for the rounding of the
// logits at the image and anywhere within the radius
// (models.LiResNet.RoundingBounds, certifier.CertifyMarginsRounded), so
// that no input within it changes the prediction of the program Logits
// runs. It fails when a bound cannot be established.
func (g *Gloro) Certify(x []float32, labels []int, _ float64) (Certificate, error) {
	m := g.Net
	k, layers, err := m.ProvenLipschitz()
	if err != nil {
		return Certificate{}, fmt.Errorf("GloroNet certificate: %w", err)
	}
	n := len(labels)
	if len(x) != n*m.InputSize() {
		return Certificate{}, fmt.Errorf("certify: %d values for %d images: %w", len(x), n, certifier.ErrShape)
	}
	logits := make([]float32, n*m.Classes)
	rb, err := m.RoundingBounds(logits, x, n, layers)
	if err != nil {
		return Certificate{}, fmt.Errorf("GloroNet certificate: %w", err)
	}
	dist, C := rb.HeadDistances(), m.Classes
	lip := func(c, j int) float64 { return nn.Up(k*dist[c*C+j], 1) }
	res, err := certifier.CertifyMarginsRounded(logits, labels, C, lip, rb.MarginRounding)
	return Certificate{Results: res, Norm: "l2", K: k, Proof: ProofGloro}, err
}

// CertifyEstimate is the certificate as the authors' code computes it: K
// from power iteration (at least 500 iterations, continued up to 50 times
// as long until it changes by less than 1e-6 relative) and the float32
// logits taken as exact. Power iteration approaches each norm from below,
// so this is an estimate, not a proof (Proof says so); it is kept to
// compare with the authors' numbers. The training state of the power
// vectors is restored afterwards.
func (g *Gloro) CertifyEstimate(x []float32, labels []int, _ float64) (Certificate, error) {
	const iters = 500
	m := g.Net
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
		next := m.SubLipschitz(iters, false)
		converged := math.Abs(next-k) <= 1e-6*k
		k = max(k, next)
		if converged {
			break
		}
	}
	n := len(labels)
	logits := make([]float32, n*m.Classes)
	if err := m.Logits(logits, x, n); err != nil {
		return Certificate{}, err
	}
	res, err := certifier.Certify(logits, labels, k, m.HeadRows(), m.Classes)
	return Certificate{Results: res, Norm: "l2", K: k, Proof: ProofEstimate}, err
}

// ProofEstimate marks a certificate whose K is a power-iteration estimate
// and whose logits are taken as exact: not a proof.
const ProofEstimate = "l2: ESTIMATE (power-iteration K, rounding ignored): not a proof"

// Estimator is a model that also offers the authors' estimate-based
// certificate, for comparison with the proven one.
type Estimator interface {
	CertifyEstimate(x []float32, labels []int, eps float64) (Certificate, error)
}
