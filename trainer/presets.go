package trainer

import (
	"certmix/trainer/optim"
	"fmt"
	"slices"
	"strings"
)

// presets are the paper's configurations by name (the paper's Table 5 and each
// architecture's section); every field can be overridden afterwards.
var presets = map[string]func() Config{
	"gloro-xs": func() Config { return gloroPreset(6, 128) },
	"gloro-s":  func() Config { return gloroPreset(12, 128) },
	"gloro-m":  func() Config { return gloroPreset(18, 128) },
	"gloro-l":  func() Config { return gloroPreset(18, 256) },

	"linfdist":            func() Config { return linfDistPreset(800) },
	"linfdist-1600":       func() Config { return linfDistPreset(1600) },
	"sortnet":             func() Config { return sortNetPreset(3000, 0.85) },
	"sortnet-6000":        func() Config { return sortNetPreset(6000, 0.85) },
	"sortnet-nodrop":      func() Config { return sortNetPreset(3000, 1) },
	"sortnet-nodrop-6000": func() Config { return sortNetPreset(6000, 1) },
	"sortnet-mnist":       sortNetMNISTPreset,
	"sortnet-hinge":       sortNetHingePreset,

	"lot-s": func() Config { return lotPreset(10) },
	"lot-m": func() Config { return lotPreset(20) },
	"lot-l": func() Config { return lotPreset(40) },
}

// gloroPreset is GloroNet L{depth}W{width} as trained in the paper (spec
// 5.5): 800 epochs of batch 256, AdamW 1e-3 with weight decay 1e-4, 20
// warm-up epochs then cosine, gradient clipping at 3, 10 power iterations a
// step, eps 36/255.
func gloroPreset(depth, width int) Config {
	return Config{Arch: ArchGloro, Depth: depth, Width: width, Classes: 10, Channels: 3, Batch: 256, Epochs: 800,
		LR: 1e-3, WeightDecay: 1e-4, Clip: 3, WarmupEpochs: 20, Eps: 36.0 / 255, PowerIters: 10,
		Optimizer: optim.Config{Name: "adamw", Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		Schedule:  "warmup-cosine", Augment: AugmentConfig{Pad: 4}}
}

// Preset returns the paper's configuration by name (see Presets).
func Preset(name string) (Config, error) {
	p, ok := presets[name]
	if !ok {
		return Config{}, fmt.Errorf("preset %q: want one of %s", name, strings.Join(Presets(), ", "))
	}
	return p(), nil
}

// Presets lists the presets' names in order.
func Presets() []string {
	var names []string
	for n := range presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// linfDistPreset is l_inf-dist Net as the paper reran it (the authors' configs, Config
// A): depth 6, width 5120, identity init 10, no scalar, the hinge loss (mix
// 0.25) at eps_train 40/255, p from 8 to 1000 between 1/8 and 15/16 of the
// run (epochs 100 and 750 of 800; the 1600-epoch breakpoints scaled), batch
// 512, Adam (0.9, 0.99, eps 1e-10) at 0.02 with a per-iteration cosine, no
// weight decay, crops of edge-padded images (3), eps 8/255.
func linfDistPreset(epochs int64) Config {
	return Config{Arch: ArchLinfDist, Depth: 6, Width: 5120, Classes: 10, Channels: 3, Batch: 512, Epochs: epochs,
		LR: 0.02, Eps: 8.0 / 255, Optimizer: optim.Config{Name: "adamw", Beta1: 0.9, Beta2: 0.99, Eps: 1e-10},
		Schedule: "cosine", Augment: AugmentConfig{Pad: 3, Edge: true},
		Dist: &DistConfig{Loss: "hinge", HingeMix: 0.25, EpsTrain: 0.1569, PStart: 8, PEnd: 1000,
			PRampStart: 100.0 / 800, PRampEnd: 750.0 / 800, Identity: 10}}
}

// sortNetPreset is SortNet (the authors' SortMLPModel and commands) with keep-probability q (1: "w/o
// dropout"): depth 6, width 5120, no identity init, the scalar, the mixture
// loss (lambda 0.2 to 0.002) at eps_train 0.09411, p from 8 to 1000 between
// 1/15 and 59/60 of the run (epochs 200 and 2950 of 3000; 6000 scaled),
// batch 512, AdamW (0.9, 0.99, eps 1e-10) at 0.02 with a per-iteration
// cosine and weight decay 0.02 on the scalar only, eps 8/255.
func sortNetPreset(epochs int64, q float64) Config {
	return Config{Arch: ArchSortNet, Depth: 6, Width: 5120, Classes: 10, Channels: 3, Batch: 512, Epochs: epochs,
		LR: 0.02, WeightDecay: 0.02, Eps: 8.0 / 255, Optimizer: optim.Config{Name: "adamw", Beta1: 0.9, Beta2: 0.99, Eps: 1e-10},
		Schedule: "cosine", Augment: AugmentConfig{Pad: 3, Edge: true},
		Dist: &DistConfig{Loss: "mixture", Lambda0: 0.2, LambdaEnd: 0.002, EpsTrain: 0.09411, PStart: 8, PEnd: 1000,
			PRampStart: 200.0 / 3000, PRampEnd: 2950.0 / 3000, Scalar: true, KeepProb: q, TopK: 10, Group: 32}}
}

// sortNetMNISTPreset is the authors' SortNet command for MNIST at 0.1
// (commands/mnist0.1.sh): depth 5, identity init 10, keep-probability 0.7,
// the mixture loss with lambda 0.1 to 0.001 at eps_train 0.3, p from 8 to
// 1000 between 1/15 and 29/30 of 1500 epochs, otherwise as sortnet. It
// trains much faster than the CIFAR recipe (67% after two MNIST epochs in
// the authors' log), which suits CPU-sized runs on Fashion-MNIST.
func sortNetMNISTPreset() Config {
	c := sortNetPreset(1500, 0.7)
	c.Depth, c.Eps = 5, 0.1
	d := c.Dist
	d.Identity, d.Lambda0, d.LambdaEnd, d.EpsTrain = 10, 0.1, 0.001, 0.3
	d.PRampStart, d.PRampEnd = 100.0/1500, 1450.0/1500
	return c
}

// sortNetHingePreset is SortNet (keep-probability 0.85, sort units, input
// subsets, recalibration) trained with l_inf-dist Net's hinge loss (mix
// 0.25) at eps_train 40/255 instead of the mixture loss. For CPU-sized runs:
// when the width is below the input size, the identity init cannot pass the
// pixels through the first layer, the logits start nearly independent of
// the input, every margin lies outside the clipped hinge's active range and
// the mixture loss does not leave its initial plateau within a few dozen
// epochs (the unclipped hinge always has a gradient).
func sortNetHingePreset() Config {
	c := sortNetPreset(3000, 0.85)
	d := c.Dist
	d.Loss, d.HingeMix, d.EpsTrain, d.Lambda0, d.LambdaEnd = "hinge", 0.25, 0.1569, 0, 0
	return c
}

// ScaleWarmup shortens the learning-rate warm-up of a run shorter than the
// paper's: 20 of 800 epochs there, so at most a 40th of the epochs (and at
// least one) here.
func (c *Config) ScaleWarmup() {
	c.WarmupEpochs = min(c.WarmupEpochs, max(c.Epochs/40, 1))
}

// Overrides are the changes a user makes to a preset; zero fields keep
// the preset's value.
type Overrides struct {
	Depth, Width, Batch int
	Epochs              int64
	LR                  float64
	Schedule            string
	EpsTrain            float64 // l_inf models' training radius
	Seed                uint64
	CheckpointEvery     int64
}

// Configure returns the preset name with o applied, and its warm-up
// scaled to the run's length ([Config.ScaleWarmup]).
func Configure(name string, o Overrides) (Config, error) {
	cfg, err := Preset(name)
	if err != nil {
		return Config{}, err
	}
	for _, f := range []struct {
		dst *int
		v   int
	}{{&cfg.Depth, o.Depth}, {&cfg.Width, o.Width}, {&cfg.Batch, o.Batch}} {
		if f.v > 0 {
			*f.dst = f.v
		}
	}
	if o.Epochs > 0 {
		cfg.Epochs = o.Epochs
	}
	if o.LR > 0 {
		cfg.LR = o.LR
	}
	if o.EpsTrain > 0 && cfg.Dist != nil {
		cfg.Dist.EpsTrain = o.EpsTrain
	}
	if o.Schedule != "" {
		cfg.Schedule = o.Schedule
	}
	cfg.Seed, cfg.CheckpointEvery = o.Seed, o.CheckpointEvery
	cfg.ScaleWarmup()
	return cfg, nil
}
