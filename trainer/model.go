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
// Channels x InputSide x InputSide (Config.InputSide: the dataset's size,
// or 32 with smaller images padded); each model applies its own
// normalisation inside, so that attacks and certified radii are in pixel
// units.
//
// The contract every architecture keeps (TestModelContract checks it for
// each):
//   - Logits, InputGradient and Certify compute the network in evaluation
//     mode, one image at a time in effect: any number n of images (they are
//     chunked to the batch size the model was built for), and an image's
//     result does not depend on the others in the call.
//   - InputGradient leaves the parameters' gradients as they were, so that
//     an attack or a check may run between two halves of a training step.
//   - Loss takes at most Config.Batch images.
//   - Every method checks the lengths of its slices against n (and
//     len(labels)) first, and refuses a mismatch with an error wrapping
//     certifier.ErrShape, before it computes anything.
type Model interface {
	certifier.Classifier
	// Params lists the trainable tensors in a fixed order, named as in the
	// authors' PyTorch model; checkpoints store them as "model/<name>".
	Params() []*nn.Param
	// Buffers lists the persistent state that the optimiser does not train
	// (power-iteration vectors, running means); checkpoints store it as
	// "buffer/<name>" and a resumed run restores it exactly.
	Buffers() []nn.Buffer
	// Loss runs one training step's forward pass in training mode, the
	// architecture's loss and the backward pass for n <= Config.Batch
	// images, accumulating into the Params' gradients (zeroed by the
	// caller).
	Loss(x []float32, labels []int, n int, at Progress) (LossReport, error)
	// Certify computes, in evaluation mode, the certificate of each of the
	// len(labels) images of x. eps (pixel units) is the radius a test-time
	// certificate such as interval bounds is computed for; radii are
	// reported in any case.
	Certify(x []float32, labels []int, eps float64) (Certificate, error)
}

// checkLogits checks Logits' and Certify's arguments for n images.
func checkLogits(m certifier.Classifier, dst, x []float32, n int) error {
	d, c := m.InputSize(), m.Classes()
	if n < 0 || len(dst) < n*c || len(x) < n*d {
		return fmt.Errorf("logits of %d images: %d outputs (want %d) and %d inputs (want %d): %w", n, len(dst), n*c, len(x), n*d, certifier.ErrShape)
	}
	return nil
}

// checkInputGradient checks InputGradient's arguments for n images.
func checkInputGradient(m certifier.Classifier, dx, x, dlogits []float32, n int) error {
	d, c := m.InputSize(), m.Classes()
	if n < 0 || len(dx) < n*d || len(x) < n*d || len(dlogits) < n*c {
		return fmt.Errorf("input gradient of %d images: %d gradients, %d inputs (want %d each), %d logit cotangents (want %d): %w",
			n, len(dx), len(x), n*d, len(dlogits), n*c, certifier.ErrShape)
	}
	return nil
}

// checkCertify checks that x holds exactly the images of labels.
func checkCertify(m certifier.Classifier, x []float32, labels []int) error {
	if d := m.InputSize(); len(x) != len(labels)*d {
		return fmt.Errorf("certify %d labels: %d input values, want %d: %w", len(labels), len(x), len(labels)*d, certifier.ErrShape)
	}
	for i, l := range labels {
		if l < 0 || l >= m.Classes() {
			return fmt.Errorf("certify: label %d of image %d outside 0..%d: %w", l, i, m.Classes()-1, certifier.ErrShape)
		}
	}
	return nil
}

// checkLoss checks Loss's arguments for n images of a model built for
// batches of at most batch.
func checkLoss(m certifier.Classifier, x []float32, labels []int, n, batch int) error {
	if n <= 0 || n > batch || len(labels) != n || len(x) < n*m.InputSize() {
		return fmt.Errorf("loss of %d images (at most %d): %d labels, %d inputs (want %d): %w", n, batch, len(labels), len(x), n*m.InputSize(), certifier.ErrShape)
	}
	return nil
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
}

// newModel builds a freshly initialised model of the architecture
// cfg.Arch, weights drawn from cfg.Seed, sized for batches of cfg.Batch.
func newModel(cfg Config) (Model, error) {
	if err := cfg.checkImageSize(); err != nil {
		return nil, err
	}
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
