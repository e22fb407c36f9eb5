// Package trainer trains the paper's certifiably robust architectures on
// mixed batches: the model (trainer/models on the trainer/nn core), the
// loss, the optimiser and its schedules, checkpoints and the loop.
package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"certmix/shards"
	"certmix/trainer/models"
)

// Batch is a batch of training images as the trainer consumes it.
type Batch struct {
	Step, Epoch         int64
	Images              []byte // uint8 NHWC
	Labels              []int16
	Height, Width, Chan int
}

// Batches is the stream of training batches (the sampler satisfies it
// through a small adapter); State is what a checkpoint stores to resume it.
type Batches interface {
	Next(ctx context.Context) (Batch, error)
	State() json.RawMessage
}

// Config is a GloroNet training run (spec 5.4-5.5).
type Config struct {
	Depth, Width, Classes, Channels int
	Batch                           int
	Epochs                          int64
	StepsPerEpoch                   int64
	LR, WeightDecay, Clip           float64
	WarmupEpochs                    int64
	Eps                             float64 // the certification radius; training ramps to 1.5 of it
	PowerIters                      int     // per step (10)
	Seed                            uint64
	CheckpointEvery                 int64 // steps between checkpoints (0: only at the end)
}

// Preset returns the paper's GloroNet configuration by name: gloro-xs
// (L6W128), gloro-s (L12W128), gloro-m (L18W128), gloro-l (L18W256).
func Preset(name string) (Config, error) {
	c := Config{Classes: 10, Channels: 3, Batch: 256, Epochs: 800, LR: 1e-3, WeightDecay: 1e-4, Clip: 3,
		WarmupEpochs: 20, Eps: 36.0 / 255, PowerIters: 10}
	switch name {
	case "gloro-xs":
		c.Depth, c.Width = 6, 128
	case "gloro-s":
		c.Depth, c.Width = 12, 128
	case "gloro-m":
		c.Depth, c.Width = 18, 128
	case "gloro-l":
		c.Depth, c.Width = 18, 256
	default:
		return c, fmt.Errorf("preset %q: want gloro-xs, gloro-s, gloro-m or gloro-l", name)
	}
	return c, nil
}

// Trainer holds a model, its optimiser and where training stands.
type Trainer struct {
	Cfg   Config
	Model *models.LiResNet
	Opt   *AdamW
	Step  int64   // steps taken
	Best  float64 // best certified test accuracy so far (-1: none yet), kept across resumes
	x     []float32
	dLog  []float32
	dHat  []float32
	label []int
}

// New builds a freshly initialised model from cfg.Seed.
func New(cfg Config) (*Trainer, error) {
	m, err := models.NewLiResNet(cfg.Depth, cfg.Width, cfg.Classes, cfg.Channels, cfg.Batch, rand.New(rand.NewPCG(cfg.Seed, 0x676c6f72)))
	if err != nil {
		return nil, err
	}
	return &Trainer{Cfg: cfg, Model: m, Opt: NewAdamW(m.Params(), cfg.WeightDecay), Best: -1,
		x: make([]float32, cfg.Batch*cfg.Channels*1024), dLog: make([]float32, cfg.Batch*cfg.Classes),
		dHat: make([]float32, cfg.Classes*models.Features), label: make([]int, cfg.Batch)}, nil
}

// StepResult is what one training step reports.
type StepResult struct {
	Loss, K, LR, Eps, GradNorm float64
}

// TrainStep takes one step on b: power iterations (tracked), forward, EMMA
// loss, backward through the network and the iterations, clipping, AdamW.
func (t *Trainer) TrainStep(b Batch) (StepResult, error) {
	c := t.Cfg
	n := len(b.Labels)
	if n > c.Batch || n == 0 {
		return StepResult{}, fmt.Errorf("batch of %d images, the model was sized for at most %d", n, c.Batch)
	}
	if err := ToInput(t.x, b.Images, n, b.Height, b.Width, b.Chan, c.Channels); err != nil {
		return StepResult{}, err
	}
	for i, l := range b.Labels {
		t.label[i] = int(l)
	}
	t.Step++
	total := c.Epochs * c.StepsPerEpoch
	r := StepResult{LR: WarmupCosine(c.LR, t.Step, c.WarmupEpochs*c.StepsPerEpoch, total),
		Eps: EpsRamp(c.Eps, (t.Step-1)/max(c.StepsPerEpoch, 1), c.Epochs)}
	m := t.Model
	params := m.Params()
	ZeroGrad(params)
	r.K = m.SubLipschitz(c.PowerIters, true)
	logits := m.Forward(t.x, n)
	clear(t.dHat)
	var dK float64
	r.Loss, dK = EMMA(logits, t.label[:n], m.HeadRows(), c.Classes, models.Features, r.K, r.Eps, t.dLog[:n*c.Classes], t.dHat)
	m.Backward(t.dLog[:n*c.Classes], t.dHat, n)
	m.BackwardLipschitz(dK, r.K)
	r.GradNorm = ClipGradNorm(params, c.Clip)
	if bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }; bad(r.Loss) || bad(r.GradNorm) {
		t.Step--
		return r, fmt.Errorf("step %d: loss %v, gradient norm %v: not applied", t.Step+1, r.Loss, r.GradNorm)
	}
	t.Opt.Update(params, r.LR)
	return r, nil
}

// ToInput converts uint8 NHWC images to the model's float32 NCHW input in
// [0,1], zero-padding images smaller than 32x32 (Fashion-MNIST's 28x28)
// at the centre.
func ToInput(dst []float32, images []byte, n, h, w, c, channels int) error {
	if c != channels || h > 32 || w > 32 {
		return fmt.Errorf("images of %dx%dx%d for a model of %d channels at 32x32", h, w, c, channels)
	}
	clear(dst[:n*c*1024])
	oy, ox := (32-h)/2, (32-w)/2
	for i := range n {
		img := images[i*h*w*c : (i+1)*h*w*c]
		out := dst[i*c*1024 : (i+1)*c*1024]
		for y := range h {
			for x := range w {
				for ch := range c {
					out[ch*1024+(y+oy)*32+x+ox] = float32(img[(y*w+x)*c+ch]) / 255
				}
			}
		}
	}
	return nil
}

// Save writes a checkpoint: the weights, AdamW's moments, the power
// vectors, the step, the configuration and the batches' state.
func (t *Trainer) Save(ctx context.Context, store shards.Store, name string, data json.RawMessage) error {
	ck := &Checkpoint{Tensors: map[string]Tensor{}, Meta: map[string]string{}}
	m := t.Model
	for i, p := range m.Params() {
		ck.Tensors["model/"+p.Name] = Tensor{Shape: p.Shape, Data: p.W}
		ck.Tensors["adam_m/"+p.Name] = Tensor{Shape: p.Shape, Data: t.Opt.M[i]}
		ck.Tensors["adam_v/"+p.Name] = Tensor{Shape: p.Shape, Data: t.Opt.V[i]}
	}
	for i, pi := range m.PowerIterations() {
		ck.Tensors[fmt.Sprintf("power/%d", i)] = Tensor{Shape: []int{len(pi.V)}, Data: pi.V}
	}
	cfg, _ := json.Marshal(t.Cfg)
	ck.Meta["config"] = string(cfg)
	ck.Meta["step"] = strconv.FormatInt(t.Step, 10)
	ck.Meta["adam_step"] = strconv.FormatInt(t.Opt.Step, 10)
	ck.Meta["best_certified"] = strconv.FormatFloat(t.Best, 'g', -1, 64)
	ck.Meta["sampler"] = string(data)
	ck.Meta["saved"] = time.Now().UTC().Format(time.RFC3339)
	return WriteCheckpoint(ctx, store, name, ck)
}

// Load restores a trainer from a checkpoint and returns the batches' state.
func Load(ck *Checkpoint) (*Trainer, json.RawMessage, error) {
	var cfg Config
	if err := json.Unmarshal([]byte(ck.Meta["config"]), &cfg); err != nil {
		return nil, nil, fmt.Errorf("checkpoint config: %v: %w", err, ErrCheckpoint)
	}
	t, err := New(cfg)
	if err != nil {
		return nil, nil, err
	}
	set := func(name string, dst []float32) error {
		tn, ok := ck.Tensors[name]
		if !ok || len(tn.Data) != len(dst) {
			return fmt.Errorf("tensor %s missing or of another size: %w", name, ErrCheckpoint)
		}
		copy(dst, tn.Data)
		return nil
	}
	for i, p := range t.Model.Params() {
		for _, e := range []error{set("model/"+p.Name, p.W), set("adam_m/"+p.Name, t.Opt.M[i]), set("adam_v/"+p.Name, t.Opt.V[i])} {
			if e != nil {
				return nil, nil, e
			}
		}
	}
	for i, pi := range t.Model.PowerIterations() {
		if err := set(fmt.Sprintf("power/%d", i), pi.V); err != nil {
			return nil, nil, err
		}
	}
	if t.Step, err = strconv.ParseInt(ck.Meta["step"], 10, 64); err != nil {
		return nil, nil, fmt.Errorf("checkpoint step: %w", ErrCheckpoint)
	}
	if t.Opt.Step, err = strconv.ParseInt(ck.Meta["adam_step"], 10, 64); err != nil {
		return nil, nil, fmt.Errorf("checkpoint adam step: %w", ErrCheckpoint)
	}
	if b, ok := ck.Meta["best_certified"]; ok {
		if t.Best, err = strconv.ParseFloat(b, 64); err != nil {
			return nil, nil, fmt.Errorf("checkpoint best_certified %q: %w", b, ErrCheckpoint)
		}
	}
	return t, json.RawMessage(ck.Meta["sampler"]), nil
}
