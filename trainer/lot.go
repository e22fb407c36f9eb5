package trainer

import (
	"fmt"
	"math/rand/v2"

	"certmix/certifier"
	"certmix/trainer/models"
	"certmix/trainer/nn"
	"certmix/trainer/optim"
)

// ArchLOT is LOT's LipConvnet under l2 (LOT, AI-secure/Layerwise-Orthogonal-Training).
const ArchLOT = "lot"

// LOTConfig holds LOT's own settings; a nil one in Config takes the defaults
// of DefaultLOTConfig.
type LOTConfig struct {
	Residual bool      // LOT's LipResNet: the middle blocks of a stage average with their input (the authors' README command)
	LLN      bool      // last layer: a row-normalised linear layer instead of a 1×1 LOT layer
	Gamma    float64   // weight of the certificate term of the loss (0: plain cross-entropy)
	Iters    int       // Newton–Schulz iterations, in training and evaluation (10)
	Std      float64   // input normalisation (x − mean)/std, the same for every channel (0.2507)
	Mean     []float64 // per channel; empty: CIFAR-10's for 3 channels, their average otherwise
	// ResLamdaLogit is each of the five stages' res_lamda_logit (LipResNet's
	// fixed residual mix λ = sigmoid(logit)); empty: 0, λ = ½.
	ResLamdaLogit []float32 `json:"res_lamda_logit,omitempty"`
}

// DefaultLOTConfig is the configuration LOT, AI-secure/Layerwise-Orthogonal-Training recommends: residual, MaxMin,
// no LLN, γ = 0, 10 Newton–Schulz iterations, std 0.2507.
func DefaultLOTConfig() LOTConfig { return LOTConfig{Residual: true, Iters: 10, Std: 0.2507} }

// lotPreset is LipConvnet-{depth} as the paper trains it (the authors' lip_convnets.py and train_robust.py): 32
// init channels, batch 256, SGD with momentum 0.9 at lr 0.1 without weight
// decay, cosine annealing per iteration (the paper's main results; the
// original multistep schedule with --schedule multistep), 200 epochs (the
// paper also runs 400 and 600: --epochs), crop with zero padding 4 and flip,
// certified at 36/255.
func lotPreset(depth int) Config {
	lc := DefaultLOTConfig()
	return Config{Arch: ArchLOT, Depth: depth, Width: 32, Classes: 10, Channels: 3, Batch: 256, Epochs: 200,
		LR: 0.1, Eps: 36.0 / 255, Optimizer: optim.Config{Name: "sgd", Momentum: 0.9},
		Schedule: "cosine", Augment: AugmentConfig{Pad: 4}, LOT: &lc}
}

// LOTModel is LOTModel's training composition: a LipConvnet trained with
// cross-entropy and the optional certificate term, certified with the
// network's proven Lipschitz bound.
type LOTModel struct {
	Net  *models.LipConvnet
	cfg  Config
	lc   LOTConfig
	dLog []float32
	dHat []float32
}

func newLOT(cfg Config) (*LOTModel, error) {
	lc := DefaultLOTConfig()
	if cfg.LOT != nil {
		lc = *cfg.LOT
	}
	if cfg.Depth < 5 || cfg.Depth%5 != 0 {
		return nil, fmt.Errorf("LOT: depth %d: LipConvnet-5b has 5 stages of b blocks, want a multiple of 5 (10, 20, 40 for LOT-S, M, L)", cfg.Depth)
	}
	mean := lc.Mean
	if len(mean) == 0 {
		cifar := []float64{0.4914, 0.4822, 0.4465}
		if cfg.Channels == 3 {
			mean = cifar
		} else {
			for range cfg.Channels {
				mean = append(mean, (cifar[0]+cifar[1]+cifar[2])/3)
			}
		}
	}
	net, err := models.NewLipConvnet(cfg.Depth/5, cfg.Width, cfg.Classes, cfg.Channels, lc.Residual, lc.LLN, mean, lc.Std, lc.Iters, cfg.Batch,
		rand.New(rand.NewPCG(cfg.Seed, 0x6c6f74)))
	if err != nil {
		return nil, fmt.Errorf("LOT: %w", err)
	}
	if len(lc.ResLamdaLogit) > 0 {
		var logits [5]float32
		if len(lc.ResLamdaLogit) != len(logits) {
			return nil, fmt.Errorf("LOT: %d res_lamda_logit values, want one per stage (5)", len(lc.ResLamdaLogit))
		}
		copy(logits[:], lc.ResLamdaLogit)
		if err := net.SetResidualLogits(logits); err != nil {
			return nil, fmt.Errorf("LOT: %w", err)
		}
	}
	l := &LOTModel{Net: net, cfg: cfg, lc: lc, dLog: make([]float32, cfg.Batch*cfg.Classes)}
	if lc.LLN {
		l.dHat = make([]float32, cfg.Classes*net.Features)
	}
	return l, nil
}

// Classes is the number of classes.
func (l *LOTModel) Classes() int { return l.Net.Classes }

// InputSize is the values of one image, Channels × 32 × 32.
func (l *LOTModel) InputSize() int { return l.Net.InputSize() }

// Params are the LipConvnet's weights and biases, the authors' names.
func (l *LOTModel) Params() []*nn.Param { return l.Net.Params() }

// Logits computes the network in evaluation mode (orthogonal kernels cached).
func (l *LOTModel) Logits(dst, x []float32, n int) error {
	if err := checkLogits(l, dst, x, n); err != nil {
		return err
	}
	return l.Net.Logits(dst, x, n)
}

// InputGradient is the evaluation-mode input gradient, for attacks.
func (l *LOTModel) InputGradient(dx, x, dlogits []float32, n int) error {
	if err := checkInputGradient(l, dx, x, dlogits, n); err != nil {
		return err
	}
	return l.Net.InputGradient(dx, x, dlogits, n)
}

// Buffers is empty: a LOT network's state is its weights (the orthogonal
// kernels are recomputed from them).
func (l *LOTModel) Buffers() []nn.Buffer { return nil }

// Loss is one LOT step (the authors' train_robust.py): the forward pass in training mode (every
// layer orthogonalised afresh), cross-entropy minus γ times the mean
// certificate at the label with L = 1/std, and the backward pass through the
// Newton–Schulz iterations.
func (l *LOTModel) Loss(x []float32, labels []int, n int, _ Progress) (LossReport, error) {
	if err := checkLoss(l, x, labels, n, l.cfg.Batch); err != nil {
		return LossReport{}, err
	}
	c := l.cfg.Classes
	logits := l.Net.Forward(x, n, true)
	var hat []float32
	if l.lc.LLN {
		hat = l.Net.HeadRows()
		clear(l.dHat)
	}
	r := lotLoss(logits, labels, c, l.lc.Gamma, 1/l.lc.Std, hat, l.dLog[:n*c], l.dHat)
	l.Net.Backward(l.dLog[:n*c], l.dHat, n, nil)
	return LossReport{Loss: r.Loss, Values: map[string]float64{"cross_entropy": r.CrossEntropy, "train_certificate": r.Certificate}}, nil
}

// Certify returns each image's proven l2 certificate (LOT,
// AI-secure/Layerwise-Orthogonal-Training): the network is evaluated in
// float64 (models.LipConvnet.ProvenLogits, the certified program: its
// predictions give the clean accuracy), the margins' Lipschitz constants
// come from the proven layer norms (√2·K with the orthogonal last layer, K
// including it; K·‖ŵ_c − ŵ_j‖ with LLN, K the backbone's), and each radius
// allows for the float64 rounding of the logits at the image and anywhere
// within the radius (certifier.CertifyMarginsRounded), so that no input
// within it changes the prediction of ProvenLogits. It fails when a bound
// cannot be established (non-finite weights). Evaluation mode; the training
// state is untouched. The float32 Logits, used in training and evaluation,
// agree with the certified logits to float32 accuracy.
func (l *LOTModel) Certify(x []float32, labels []int, _ float64) (Certificate, error) {
	if err := checkCertify(l, x, labels); err != nil {
		return Certificate{}, err
	}
	logits, rb, err := l.Net.ProvenLogits(x, len(labels))
	if err != nil {
		return Certificate{}, fmt.Errorf("LOT certificate: %w", err)
	}
	res, err := certifier.CertifyMarginsRounded(logits, labels, l.Net.Classes, rb.MarginLipschitz, rb.MarginRounding)
	if err != nil {
		return Certificate{}, fmt.Errorf("LOT certificate: %w", err)
	}
	return Certificate{Results: res, Norm: "l2", K: rb.K(), Proof: ProofLOT}, nil
}

// ProofLOT names what stands behind a LOT certificate's radii.
const ProofLOT = "l2: Cholesky-proven layer norms (per DFT frequency) + float64 forward pass (DFT, per-frequency products) with a proven rounding bound; clean accuracy of the float64 pass"
