package trainer

import (
	"fmt"
	"math/rand/v2"

	"certmix/certifier"
	"certmix/trainer/nn"
)

// Model is one of the paper's architectures as the training loop, the
// checkpoints and the certifier see it: a network with its training loss
// and its certificate. Inputs are always float32 NCHW images in [0,1] of
// Channels x 32 x 32; each model applies its own normalisation inside, so
// that attacks and certified radii are in pixel units.
//
// The certifier.Classifier methods (Logits, InputGradient) compute the
// network in evaluation mode.
type Model interface {
	certifier.Classifier
	// Params lists the trainable tensors in a fixed order, named as in the
	// authors' PyTorch model; checkpoints store them as "model/<name>".
	Params() []*nn.Param
	// Buffers lists the persistent state that the optimiser does not train
	// (power-iteration vectors, running means); checkpoints store it as
	// "buffer/<name>" and a resumed run restores it exactly.
	Buffers() []Buffer
	// Loss runs one training step's forward pass in training mode, the
	// architecture's loss and the backward pass for n images, accumulating
	// into the Params' gradients (zeroed by the caller).
	Loss(x []float32, labels []int, n int, at Progress) (LossReport, error)
	// Certify computes, in evaluation mode, each image's certificate. eps
	// (pixel units) is the radius a test-time certificate such as interval
	// bounds is computed for; radii are reported in any case.
	Certify(x []float32, labels []int, eps float64) (Certificate, error)
}

// Buffer is a named piece of a model's or an optimiser's persistent state.
type Buffer struct {
	Name string
	Data []float32
}

// Progress says where training stands when a step is taken: schedules of
// the loss (eps ramps, p, lambda) read it, and Seed with Step seeds the
// step's random choices so that a resumed run draws the same ones.
type Progress struct {
	Step          int64 // this step, counted from 1
	Total         int64 // steps of the whole run
	StepsPerEpoch int64
	Seed          uint64
}

// Epoch is the epoch the step belongs to, counted from 0.
func (p Progress) Epoch() int64 { return (p.Step - 1) / max(p.StepsPerEpoch, 1) }

// Epochs is the length of the run in epochs.
func (p Progress) Epochs() int64 { return p.Total / max(p.StepsPerEpoch, 1) }

// Rand returns the step's own random source.
func (p Progress) Rand() *rand.Rand { return rand.New(rand.NewPCG(p.Seed, uint64(p.Step))) }

// LossReport is what a training step's loss reports: the loss and values
// worth logging (the Lipschitz bound, the training eps, p).
type LossReport struct {
	Loss   float64
	Values map[string]float64
}

// Certificate is the certification of a set of images.
type Certificate struct {
	Results []certifier.Result // per image: label, prediction, certified radius in pixel units
	Norm    string             // the threat model's norm: "l2" or "linf"
	K       float64            // the Lipschitz bound behind the radii, where one applies
	// Proof says what stands behind the radii, e.g. "l2: Cholesky-proven
	// layer norms + forward rounding bound"; an estimate says so.
	Proof string
}

// NewModel builds a freshly initialised model of the architecture
// cfg.Arch, weights drawn from cfg.Seed, sized for batches of cfg.Batch.
func NewModel(cfg Config) (Model, error) {
	switch cfg.Arch {
	case "", ArchGloro:
		return newGloro(cfg)
	case ArchLinfDist:
		return newLinf(cfg)
	case ArchSortNet:
		m, err := newLinf(cfg)
		if err != nil {
			return nil, err
		}
		return &SortNetModel{m}, nil
	case ArchLOT:
		return newLOT(cfg)
	}
	return nil, fmt.Errorf("architecture %q: want %s, %s, %s or %s", cfg.Arch, ArchGloro, ArchLinfDist, ArchSortNet, ArchLOT)
}
