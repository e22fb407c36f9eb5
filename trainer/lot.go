package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"

	"certmix/certifier"
	"certmix/trainer/models"
	"certmix/trainer/nn"
)

// ArchLOT is LOT's LipConvnet under l2 (spec 4).
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
}

// DefaultLOTConfig is the configuration spec 4 recommends: residual, MaxMin,
// no LLN, γ = 0, 10 Newton–Schulz iterations, std 0.2507.
func DefaultLOTConfig() LOTConfig { return LOTConfig{Residual: true, Iters: 10, Std: 0.2507} }

// lotPreset is LipConvnet-{depth} as the paper trains it (spec 4.3-4.6): 32
// init channels, batch 256, SGD with momentum 0.9 at lr 0.1 without weight
// decay, cosine annealing per iteration (the paper's main results; the
// original multistep schedule with --schedule multistep), 200 epochs (the
// paper also runs 400 and 600: --epochs), crop with zero padding 4 and flip,
// certified at 36/255.
func lotPreset(depth int) Config {
	lc := DefaultLOTConfig()
	return Config{Arch: ArchLOT, Depth: depth, Width: 32, Classes: 10, Channels: 3, Batch: 256, Epochs: 200,
		LR: 0.1, Eps: 36.0 / 255, Optimizer: OptimizerConfig{Name: "sgd", Momentum: 0.9},
		Schedule: "cosine", Augment: AugmentConfig{Pad: 4}, LOT: &lc}
}

// LOT is LOT's training composition: a LipConvnet trained with
// cross-entropy and the optional certificate term, certified with the
// network's proven Lipschitz bound.
type LOT struct {
	Net  *models.LipConvnet
	cfg  Config
	lc   LOTConfig
	dLog []float32
	dHat []float32
}

func newLOT(cfg Config) (*LOT, error) {
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
	l := &LOT{Net: net, cfg: cfg, lc: lc, dLog: make([]float32, cfg.Batch*cfg.Classes)}
	if lc.LLN {
		l.dHat = make([]float32, cfg.Classes*net.Features)
	}
	return l, nil
}

// Classes is the number of classes.
func (l *LOT) Classes() int { return l.Net.Classes }

// InputSize is the values of one image, Channels × 32 × 32.
func (l *LOT) InputSize() int { return l.Net.InputSize() }

// Params are the LipConvnet's weights and biases, the authors' names.
func (l *LOT) Params() []*nn.Param { return l.Net.Params() }

// Logits computes the network in evaluation mode (orthogonal kernels cached).
func (l *LOT) Logits(dst, x []float32, n int) error { return l.Net.Logits(dst, x, n) }

// InputGradient is the evaluation-mode input gradient, for attacks.
func (l *LOT) InputGradient(dx, x, dlogits []float32, n int) error {
	return l.Net.InputGradient(dx, x, dlogits, n)
}

// Buffers is empty: a LOT network's state is its weights (the orthogonal
// kernels are recomputed from them).
func (l *LOT) Buffers() []Buffer { return nil }

// Loss is one LOT step (spec 4.6): the forward pass in training mode (every
// layer orthogonalised afresh), cross-entropy minus γ times the mean
// certificate at the label with L = 1/std, and the backward pass through the
// Newton–Schulz iterations.
func (l *LOT) Loss(x []float32, labels []int, n int, _ Progress) (LossReport, error) {
	c := l.cfg.Classes
	logits := l.Net.Forward(x, n, true)
	var hat []float32
	if l.lc.LLN {
		hat = l.Net.HeadRows()
		clear(l.dHat)
	}
	r := LOTLoss(logits, labels, c, l.lc.Gamma, 1/l.lc.Std, hat, l.dLog[:n*c], l.dHat)
	l.Net.Backward(l.dLog[:n*c], l.dHat, n, nil)
	return LossReport{Loss: r.Loss, Values: map[string]float64{"cross_entropy": r.CrossEntropy, "train_certificate": r.Certificate}}, nil
}

// Certify returns each image's l2 certificate (spec 4.5) with the
// network's proven Lipschitz bound K (about 1/std; see
// models.LipConvnet.LipschitzBound): radius (f_c − max_{j≠c} f_j)/(√2·K) with
// the orthogonal last layer (K includes it), min_{j≠c} (f_c − f_j)/(K·‖ŵ_c −
// ŵ_j‖) with LLN (K is the backbone's). Evaluation mode; the training state is
// untouched.
func (l *LOT) Certify(x []float32, labels []int, _ float64) (Certificate, error) {
	n, c := len(labels), l.Net.Classes
	logits := make([]float32, n*c)
	if err := l.Net.Logits(logits, x, n); err != nil {
		return Certificate{}, err
	}
	backbone, last := l.Net.LipschitzBound()
	if math.IsInf(backbone, 0) || math.IsNaN(backbone) || (!l.lc.LLN && (math.IsInf(last, 0) || math.IsNaN(last))) {
		return Certificate{}, fmt.Errorf("LOT certificate: a layer's norm bound could not be established (backbone %v, last %v)", backbone, last)
	}
	if l.lc.LLN {
		res, err := certifier.Certify(logits, labels, backbone, l.Net.HeadRows(), c)
		return Certificate{Results: res, Norm: "l2", K: backbone, Proof: ProofLOT}, err
	}
	k := backbone * last
	res, err := certifier.CertifyMargins(logits, labels, c, func(int, int) float64 { return math.Sqrt2 * k })
	return Certificate{Results: res, Norm: "l2", K: k, Proof: ProofLOT}, err
}

// ProofLOT names what stands behind a LOT certificate's radii: a proof about
// the network in exact arithmetic, not yet about the float32 program (the
// DFT's rounded constants and complex products are not bounded).
const ProofLOT = "l2: Cholesky-proven layer norms of the exact-arithmetic map; float32 rounding of the DFT-based forward pass NOT bounded"
