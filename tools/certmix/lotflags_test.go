package main

import (
	"flag"
	"io"
	"testing"

	"certmix/trainer"
)

// TestLOTFlags: --lot-* flags given on the command line override a LOT
// preset's settings, flags not given leave them, and any of them on another
// architecture is an error.
func TestLOTFlags(t *testing.T) {
	for _, c := range []struct {
		name, preset string
		args         []string
		want         trainer.LOTConfig
		fails        bool
	}{
		{"none", "lot-s", nil, trainer.DefaultLOTConfig(), false},
		{"gamma and lln", "lot-m", []string{"--lot-gamma", "0.5", "--lot-lln"}, trainer.LOTConfig{Residual: true, LLN: true, Gamma: 0.5, Iters: 10, Std: 0.2507}, false},
		{"plain", "lot-l", []string{"--lot-residual=false"}, trainer.LOTConfig{Iters: 10, Std: 0.2507}, false},
		{"not lot", "gloro-xs", []string{"--lot-gamma", "0.5"}, trainer.LOTConfig{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := flag.NewFlagSet("train", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f := newLOTFlags(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := trainer.Preset(c.preset)
			if err != nil {
				t.Fatal(err)
			}
			err = f.apply(&cfg)
			if c.fails {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := *cfg.LOT; got.Residual != c.want.Residual || got.LLN != c.want.LLN || got.Gamma != c.want.Gamma || got.Iters != c.want.Iters || got.Std != c.want.Std {
				t.Errorf("LOT settings %+v, want %+v", got, c.want)
			}
		})
	}
}
