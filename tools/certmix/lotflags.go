package main

import (
	"flag"
	"fmt"

	"certmix/trainer"
)

// lotFlags are LOT's own training settings on the command line (the authors' lip_convnets.py,
// 4.6), applied over a lot-* preset's.
type lotFlags struct {
	gamma         float64
	lln, residual bool
	fs            *flag.FlagSet
}

func newLOTFlags(fs *flag.FlagSet) *lotFlags {
	f := &lotFlags{fs: fs}
	fs.Float64Var(&f.gamma, "lot-gamma", 0, "LOT: weight of the certificate term of the loss (the LOT paper's CReg uses 0.5)")
	fs.BoolVar(&f.lln, "lot-lln", false, "LOT: a row-normalised linear last layer instead of the 1x1 LOT layer")
	fs.BoolVar(&f.residual, "lot-residual", true, "LOT: average a stage's middle blocks with their input (LipResNet); false for the plain LipConvNet")
	return f
}

// apply sets the flags given on the command line into cfg, which must then
// be a LOT configuration.
func (f *lotFlags) apply(cfg *trainer.Config) error {
	var err error
	f.fs.Visit(func(fl *flag.Flag) {
		if len(fl.Name) < 4 || fl.Name[:4] != "lot-" || err != nil {
			return
		}
		if cfg.Arch != trainer.ArchLOT {
			err = fmt.Errorf("--%s is for LOT presets, not %s", fl.Name, cfg.Arch)
			return
		}
		if cfg.LOT == nil {
			lc := trainer.DefaultLOTConfig()
			cfg.LOT = &lc
		}
		switch fl.Name {
		case "lot-gamma":
			cfg.LOT.Gamma = f.gamma
		case "lot-lln":
			cfg.LOT.LLN = f.lln
		case "lot-residual":
			cfg.LOT.Residual = f.residual
		}
	})
	return err
}
