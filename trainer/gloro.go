package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"

	"certmix/certifier"
	"certmix/trainer/models"
	"certmix/trainer/nn"
)

// ArchGloro is GloroNet on a LiResNet backbone under l2 (Hu et al. 2023, klasleino/gloro's hu23 snapshot).
const ArchGloro = "gloro"

// GloroModel is GloroNet: a LiResNet trained with the EMMA loss and certified
// by GloRo's margin test with the sub-network's Lipschitz bound K.
type GloroModel struct {
	Net  *models.LiResNet
	cfg  Config
	dLog []float32
	dHat []float32
	// gradSave holds the parameters' gradients across InputGradient.
	gradSave [][]float32
}

func newGloro(cfg Config) (*GloroModel, error) {
	m, err := models.NewLiResNet(cfg.Depth, cfg.Width, cfg.Classes, cfg.Channels, cfg.Batch, rand.New(rand.NewPCG(cfg.Seed, 0x676c6f72)))
	if err != nil {
		return nil, err
	}
	if cfg.PowerIters < 1 {
		return nil, fmt.Errorf("GloroNet: %d power iterations per step, want at least 1", cfg.PowerIters)
	}
	return &GloroModel{Net: m, cfg: cfg, dLog: make([]float32, cfg.Batch*cfg.Classes), dHat: make([]float32, cfg.Classes*models.Features)}, nil
}

func (g *GloroModel) Classes() int        { return g.Net.Classes }
func (g *GloroModel) InputSize() int      { return g.Net.InputSize() }
func (g *GloroModel) Params() []*nn.Param { return g.Net.Params() }
func (g *GloroModel) Logits(dst, x []float32, n int) error {
	if err := checkLogits(g, dst, x, n); err != nil {
		return err
	}
	return g.Net.Logits(dst, x, n)
}

// InputGradient runs LiResNet's backward pass, which accumulates into the
// parameters' gradients too; they are saved before and restored after, as
// the Model contract asks.
func (g *GloroModel) InputGradient(dx, x, dlogits []float32, n int) error {
	if err := checkInputGradient(g, dx, x, dlogits, n); err != nil {
		return err
	}
	params := g.Net.Params()
	if len(g.gradSave) == 0 {
		for _, p := range params {
			g.gradSave = append(g.gradSave, make([]float32, len(p.G)))
		}
	}
	for i, p := range params {
		copy(g.gradSave[i], p.G)
	}
	err := g.Net.InputGradient(dx, x, dlogits, n)
	for i, p := range params {
		copy(p.G, g.gradSave[i])
	}
	return err
}

// Buffers are the power-iteration vectors: stem, blocks, neck conv, neck linear.
func (g *GloroModel) Buffers() []nn.Buffer {
	var bs []nn.Buffer
	for i, pi := range g.Net.PowerIterations() {
		bs = append(bs, nn.Buffer{Name: fmt.Sprintf("power/%d", i), Data: pi.V})
	}
	return bs
}

// Loss is one GloroNet step: power iterations (tracked), forward, the EMMA
// loss at the ramped training eps, backward through the network and
// through the iterations.
func (g *GloroModel) Loss(x []float32, labels []int, n int, at Progress) (LossReport, error) {
	if err := checkLoss(g, x, labels, n, g.cfg.Batch); err != nil {
		return LossReport{}, err
	}
	m, c := g.Net, g.cfg
	eps := epsRamp(c.Eps, at.Epoch(), at.Epochs())
	k := m.SubLipschitz(c.PowerIters, true)
	logits := m.Forward(x, n)
	clear(g.dHat)
	loss, dK := emma(logits, labels, m.HeadRows(), c.Classes, models.Features, k, eps, g.dLog[:n*c.Classes], g.dHat)
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
func (g *GloroModel) Certify(x []float32, labels []int, _ float64) (Certificate, error) {
	if err := checkCertify(g, x, labels); err != nil {
		return Certificate{}, err
	}
	m := g.Net
	k, layers, err := m.ProvenLipschitz()
	if err != nil {
		return Certificate{}, fmt.Errorf("GloroNet certificate: %w", err)
	}
	n := len(labels)
	logits := make([]float32, n*m.Classes)
	rb, err := m.RoundingBounds(logits, x, n, layers)
	if err != nil {
		return Certificate{}, fmt.Errorf("GloroNet certificate: %w", err)
	}
	// K_cj = K·‖ŵ_c − ŵ_j‖, rounded up, over the head rows Logits used.
	gl, err := certifier.NewGloRo(k, m.HeadRows(), m.Classes)
	if err != nil {
		return Certificate{}, fmt.Errorf("GloroNet certificate: %w", err)
	}
	res, err := certifier.CertifyMarginsRounded(logits, labels, m.Classes, gl.MarginLipschitz, rb.MarginRounding)
	return Certificate{Results: res, Norm: "l2", K: k, Proof: ProofGloro}, err
}

// CertifyEstimate is the certificate as the authors' code computes it: K
// from power iteration (at least 500 iterations, continued up to 50 times
// as long until it changes by less than 1e-6 relative) and the float32
// logits taken as exact. Power iteration approaches each norm from below,
// so this is an estimate, not a proof (Proof says so); it is kept to
// compare with the authors' numbers. The training state of the power
// vectors is restored afterwards.
func (g *GloroModel) CertifyEstimate(x []float32, labels []int, _ float64) (Certificate, error) {
	if err := checkCertify(g, x, labels); err != nil {
		return Certificate{}, err
	}
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

// epsRamp is GloroNet's training epsilon at epoch e of E: linear from 0.1
// to 1.5 times eps over the first half, then 1.5 eps (the LiResNet code's
// eps schedule).
func epsRamp(eps float64, e, E int64) float64 {
	return eps * (0.1 + 1.4*min(2*float64(e)/float64(max(E, 1)), 1))
}
