// Package trainer trains the paper's certifiably robust architectures on
// mixed batches: each architecture as a Model (network from trainer/models
// on the trainer/nn core, with its loss and certificate), the optimisers
// and their schedules, checkpoints and the step.
package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"certmix/shards"
	"certmix/trainer/checkpoint"
	"certmix/trainer/models"
	"certmix/trainer/nn"
	"certmix/trainer/optim"
)

// Batch is a batch of training images as the trainer consumes it.
type Batch struct {
	Step, Epoch             int64
	Images                  []byte // uint8 NHWC
	Labels                  []int16
	Height, Width, Channels int
}

// Batches is the stream of training batches that [Run] consumes
// ([SamplerBatches] adapts the sampler to it). State is what a checkpoint
// stores to resume the stream where it stood; StepsPerEpoch is the
// number of steps of one epoch of the real data.
type Batches interface {
	Next(ctx context.Context) (Batch, error)
	State() json.RawMessage
	StepsPerEpoch() int64
}

// Config is a training run: the architecture and its size, the data's
// shape, the optimiser and its schedule, and the certification radius.
// Presets fill it with the paper's values (Preset).
type Config struct {
	Arch                            string // "gloro" (the default when empty)
	Depth, Width, Classes, Channels int
	Batch                           int
	Epochs                          int64
	StepsPerEpoch                   int64
	LR, WeightDecay                 float64
	Clip                            float64 // gradient norm clipping (0: none)
	WarmupEpochs                    int64
	Eps                             float64 // the certification radius in pixel units
	PowerIters                      int     // GloroNet: power iterations per step (10)
	Seed                            uint64
	CheckpointEvery                 int64 // steps between checkpoints besides every epoch's end (0: only at epochs' ends)
	Optimizer                       optim.Config
	Schedule                        string // the learning rate per step: "warmup-cosine", "cosine" or "multistep"
	Augment                         AugmentConfig
	Dist                            *DistConfig `json:"dist,omitempty"` // l_inf-dist Net and SortNet
	LOT                             *LOTConfig  `json:"lot,omitempty"`  // LOT's own settings (lot.go)
	// ImageSize is the side of the dataset's square images, taken from the
	// dataset (0: 32, CIFAR's). The l_inf models take images of this size;
	// LiResNet and LipConvnet need 32x32 and get smaller images zero-padded
	// at the centre (see InputSide).
	ImageSize int `json:"image_size,omitempty"`
}

// InputSide is the side of the square images the model computes on: the
// dataset's ImageSize for the l_inf models (whose first layer sees every
// pixel), 32 for LiResNet and LipConvnet (whose stride-2 stages and 4x4 neck
// end at a fixed size), to which smaller images are padded.
func (c Config) InputSide() int {
	if (c.Arch == ArchLinfDist || c.Arch == ArchSortNet) && c.ImageSize > 0 {
		return c.ImageSize
	}
	return models.InputSide
}

// checkImageSize refuses an image size that the architecture cannot take.
func (c Config) checkImageSize() error {
	if c.ImageSize < 0 || c.ImageSize > c.InputSide() {
		return fmt.Errorf("%s: images of %dx%d, the model takes at most %dx%d", c.Arch, c.ImageSize, c.ImageSize, c.InputSide(), c.InputSide())
	}
	return nil
}

// AugmentConfig is the architecture's training augmentation: a random crop
// of the padded image and a horizontal flip (the authors' data loaders).
type AugmentConfig struct {
	Pad  int  // padding before the crop
	Edge bool // pad by repeating the edge (l_inf-dist Net, SortNet), else with zeros
}

// Trainer holds a model, its optimiser and where training stands.
type Trainer struct {
	Cfg   Config
	Model Model
	Opt   optim.Optimizer
	Step  int64   // steps taken
	Best  float64 // best certified test accuracy so far (-1: none yet), kept across resumes
	x     []float32
	label []int
}

// New builds a freshly initialised model from cfg.Seed.
func New(cfg Config) (*Trainer, error) {
	m, err := newModel(cfg)
	if err != nil {
		return nil, err
	}
	opt, err := optim.New(cfg.Optimizer, m.Params(), cfg.WeightDecay)
	if err != nil {
		return nil, err
	}
	return &Trainer{Cfg: cfg, Model: m, Opt: opt, Best: -1,
		x: make([]float32, cfg.Batch*m.InputSize()), label: make([]int, cfg.Batch)}, nil
}

// StepResult is what one training step reports.
type StepResult struct {
	Loss, LR, GradNorm float64
	Values             map[string]float64 // the model's own, e.g. the Lipschitz bound
}

// TrainStep takes one step on b: the model's loss and gradients, clipping
// when configured, and the optimiser's update. A step whose loss or
// gradient is not finite is refused before it changes anything.
func (t *Trainer) TrainStep(b Batch) (StepResult, error) {
	c := t.Cfg
	n := len(b.Labels)
	if n > c.Batch || n == 0 {
		return StepResult{}, fmt.Errorf("batch of %d images, the model was sized for at most %d", n, c.Batch)
	}
	if err := c.ToInput(t.x, b.Images, n, b.Height, b.Width, b.Channels); err != nil {
		return StepResult{}, err
	}
	for i, l := range b.Labels {
		t.label[i] = int(l)
	}
	step := t.Step + 1
	total := c.Epochs * c.StepsPerEpoch
	r := StepResult{LR: learningRate(c, step)}
	params := t.Model.Params()
	nn.ZeroGrads(params)
	rep, err := t.Model.Loss(t.x, t.label[:n], n, Progress{Step: step, Total: total, StepsPerEpoch: c.StepsPerEpoch, Seed: c.Seed})
	if err != nil {
		return r, fmt.Errorf("step %d: %w", step, err)
	}
	r.Loss, r.Values = rep.Loss, rep.Values
	if c.Clip > 0 {
		r.GradNorm = optim.ClipGradNorm(params, c.Clip)
	} else {
		r.GradNorm = optim.GradNorm(params)
	}
	if bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }; bad(r.Loss) || bad(r.GradNorm) {
		return r, fmt.Errorf("step %d: loss %v, gradient norm %v: not applied", step, r.Loss, r.GradNorm)
	}
	t.Opt.Update(params, r.LR, step)
	t.Step = step
	return r, nil
}

// toInput converts uint8 NHWC images to the model's float32 NCHW input in
// [0,1] for a model of channels channels on 32x32 inputs (LiResNet's and
// LipConvnet's), zero-padding smaller images at the centre. It is
// Config.toInput for the default configuration.
func toInput(dst []float32, images []byte, n, h, w, c, channels int) error {
	return Config{Channels: channels}.ToInput(dst, images, n, h, w, c)
}

// toInput converts n uint8 NHWC images of h x w x c to the model's float32
// NCHW input in [0,1], Channels x InputSide x InputSide each, zero-padding
// smaller images at the centre (Fashion-MNIST's 28x28 for a 32x32 model).
func (cfg Config) ToInput(dst []float32, images []byte, n, h, w, c int) error {
	side := cfg.InputSide()
	if c != cfg.Channels || h > side || w > side {
		return fmt.Errorf("images of %dx%dx%d for a model of %d channels at %dx%d", h, w, c, cfg.Channels, side, side)
	}
	plane := side * side
	if len(dst) < n*c*plane || len(images) < n*h*w*c {
		return fmt.Errorf("%d images of %dx%dx%d: %d bytes in, room for %d values out", n, h, w, c, len(images), len(dst))
	}
	clear(dst[:n*c*plane])
	oy, ox := (side-h)/2, (side-w)/2
	for i := range n {
		img := images[i*h*w*c : (i+1)*h*w*c]
		out := dst[i*c*plane : (i+1)*c*plane]
		for y := range h {
			for x := range w {
				for ch := range c {
					out[ch*plane+(y+oy)*side+x+ox] = float32(img[(y*w+x)*c+ch]) / 255
				}
			}
		}
	}
	return nil
}

// Save writes a checkpoint: the weights, the optimiser's state, the
// model's buffers, the step, the configuration and the batches' state.
func (t *Trainer) Save(ctx context.Context, store shards.Store, name string, data json.RawMessage) error {
	ck := &checkpoint.File{Tensors: map[string]checkpoint.Tensor{}, Meta: map[string]string{}}
	for _, p := range t.Model.Params() {
		ck.Tensors["model/"+p.Name] = checkpoint.Tensor{Shape: p.Shape, Data: p.W}
	}
	for _, b := range t.Opt.Buffers() {
		ck.Tensors["optim/"+b.Name] = checkpoint.Tensor{Shape: []int{len(b.Data)}, Data: b.Data}
	}
	for _, b := range t.Model.Buffers() {
		ck.Tensors["buffer/"+b.Name] = checkpoint.Tensor{Shape: []int{len(b.Data)}, Data: b.Data}
	}
	cfg, _ := json.Marshal(t.Cfg)
	ck.Meta["config"] = string(cfg)
	ck.Meta["step"] = strconv.FormatInt(t.Step, 10)
	ck.Meta["best_certified"] = strconv.FormatFloat(t.Best, 'g', -1, 64)
	ck.Meta["sampler"] = string(data)
	ck.Meta["saved"] = time.Now().UTC().Format(time.RFC3339)
	return checkpoint.Write(ctx, store, name, ck)
}

// Load restores a trainer from a checkpoint and returns the batches' state.
func Load(ck *checkpoint.File) (*Trainer, json.RawMessage, error) {
	var cfg Config
	if err := json.Unmarshal([]byte(ck.Meta["config"]), &cfg); err != nil {
		return nil, nil, fmt.Errorf("checkpoint config: %v: %w", err, checkpoint.ErrDamaged)
	}
	t, err := New(cfg)
	if err != nil {
		return nil, nil, err
	}
	set := func(name string, dst []float32) error {
		tn, ok := ck.Tensors[name]
		if !ok || len(tn.Data) != len(dst) {
			return fmt.Errorf("tensor %s missing or of another size: %w", name, checkpoint.ErrDamaged)
		}
		copy(dst, tn.Data)
		return nil
	}
	for _, p := range t.Model.Params() {
		if err := set("model/"+p.Name, p.W); err != nil {
			return nil, nil, err
		}
	}
	for _, b := range t.Opt.Buffers() {
		if err := set("optim/"+b.Name, b.Data); err != nil {
			return nil, nil, err
		}
	}
	for _, b := range t.Model.Buffers() {
		if err := set("buffer/"+b.Name, b.Data); err != nil {
			return nil, nil, err
		}
	}
	if t.Step, err = strconv.ParseInt(ck.Meta["step"], 10, 64); err != nil || t.Step < 0 {
		return nil, nil, fmt.Errorf("checkpoint step %q: %w", ck.Meta["step"], checkpoint.ErrDamaged)
	}
	if b, ok := ck.Meta["best_certified"]; ok {
		if t.Best, err = strconv.ParseFloat(b, 64); err != nil {
			return nil, nil, fmt.Errorf("checkpoint best_certified %q: %w", b, checkpoint.ErrDamaged)
		}
	}
	return t, json.RawMessage(ck.Meta["sampler"]), nil
}

// learningRate is the learning rate of step i (counted from 1) of a run of
// c under c.Schedule.
func learningRate(c Config, i int64) float64 {
	return optim.LearningRate(c.Schedule, c.LR, i, c.WarmupEpochs*c.StepsPerEpoch, c.Epochs*c.StepsPerEpoch)
}
