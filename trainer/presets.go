package trainer

import (
	"fmt"
	"slices"
	"strings"
)

// presets are the paper's configurations by name (spec 1.3 and each
// architecture's section); every field can be overridden afterwards.
var presets = map[string]func() Config{
	"gloro-xs": func() Config { return gloroPreset(6, 128) },
	"gloro-s":  func() Config { return gloroPreset(12, 128) },
	"gloro-m":  func() Config { return gloroPreset(18, 128) },
	"gloro-l":  func() Config { return gloroPreset(18, 256) },
	"lot-s":    func() Config { return lotPreset(10) },
	"lot-m":    func() Config { return lotPreset(20) },
	"lot-l":    func() Config { return lotPreset(40) },
}

// gloroPreset is GloroNet L{depth}W{width} as trained in the paper (spec
// 5.5): 800 epochs of batch 256, AdamW 1e-3 with weight decay 1e-4, 20
// warm-up epochs then cosine, gradient clipping at 3, 10 power iterations a
// step, eps 36/255.
func gloroPreset(depth, width int) Config {
	return Config{Arch: ArchGloro, Depth: depth, Width: width, Classes: 10, Channels: 3, Batch: 256, Epochs: 800,
		LR: 1e-3, WeightDecay: 1e-4, Clip: 3, WarmupEpochs: 20, Eps: 36.0 / 255, PowerIters: 10,
		Optimizer: OptimizerConfig{Name: "adamw", Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
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
