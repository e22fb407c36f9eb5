package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"certmix/rundir"
	"certmix/sampler"
	"certmix/shards"
	"certmix/trainer"
)

const trainExamples = `  # a CPU-sized LiResNet on Fashion-MNIST, 30% real / 70% auxiliary in every batch
  certmix train --real out/fashion-mnist-train --generated out/fmnist-aux --fraction 0.7 \
      --preset gloro-xs --depth 2 --width 16 --batch 64 --epochs 3 --test out/fashion-mnist-test --out runs/fm
  # resume after a stop
  certmix train ... --out runs/fm --resume
  # choose best.safetensors on 1,000 held-out real training images, not on test images
  certmix train ... --val 1000 --val-seed 0 --out runs/fm
`

func runTrain(ctx context.Context, args []string) error {
	fs := newFlags("train", "train --real URL [--generated URL --fraction F] --preset NAME --epochs N --out DIR [flags]", trainExamples)
	var (
		realURL, genURL, testURL, out, preset string
		schedule                              string
		fraction, lr                          float64
		epochs, every                         int64
		depth, width, batch, evalN, valN      int
		seed, valSeed                         uint64
		resume                                bool
	)
	fs.StringVar(&realURL, "real", "", "real training dataset (required)")
	fs.StringVar(&genURL, "generated", "", "generated (auxiliary) dataset")
	fs.Float64Var(&fraction, "fraction", 0.7, "share of generated images in every batch")
	fs.StringVar(&testURL, "test", "", "test dataset for the per-epoch metrics")
	fs.StringVar(&out, "out", "", "run directory: last.safetensors, best.safetensors (best certified accuracy on the --val images, else on the --eval test images), metrics.jsonl and, with --val, val.json (required)")
	fs.StringVar(&preset, "preset", "gloro-xs", "the paper's configuration: "+strings.Join(trainer.Presets(), ", ")+" (gloro-xs..l: LiResNet L6W128, L12W128, L18W128, L18W256; lot-s..l: LipConvnet-10, -20, -40)")
	fs.Int64Var(&epochs, "epochs", 0, "epochs (default: the preset's, e.g. 800)")
	fs.IntVar(&depth, "depth", 0, "depth of the network, e.g. LiResNet blocks, LipConvnet's 5·b LOT layers (default: the preset's)")
	fs.IntVar(&width, "width", 0, "width of the network, e.g. LipConvnet's init channels (default: the preset's)")
	fs.IntVar(&batch, "batch", 0, "batch size (default: the preset's)")
	fs.Float64Var(&lr, "lr", 0, "peak learning rate (default: the preset's)")
	fs.StringVar(&schedule, "schedule", "", "learning rate schedule: warmup-cosine, cosine or multistep (default: the preset's)")
	epsTrain := fs.Float64("eps-train", 0, "l_inf models: the training margins' radius in pixel units (default: the preset's, e.g. 40/255 for linfdist)")
	fs.Int64Var(&every, "checkpoint-every", 0, "steps between checkpoints besides the end of every epoch (default: only at the ends of epochs)")
	fs.IntVar(&evalN, "eval", 1000, "images of the real training set and of the test set evaluated after each epoch")
	fs.Uint64Var(&seed, "seed", 0, "seed of the model's initialisation and of the sampler")
	fs.IntVar(&valN, "val", 0, "hold this many real training images out of training as a validation split that chooses best.safetensors (0: none, best is chosen on test images); the ids go to --out/val.json")
	fs.Uint64Var(&valSeed, "val-seed", 0, "seed of the validation split's choice: with the dataset alone it fixes the images, the same for every --seed")
	fs.BoolVar(&resume, "resume", false, "continue from --out/last.safetensors")
	lotOpts := newLOTFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if realURL == "" || out == "" {
		fs.Usage()
		return errors.New("--real and --out are required")
	}
	if !(fraction >= 0 && fraction <= 1) {
		return fmt.Errorf("--fraction %v outside [0,1]: it is the share of generated images in every batch", fraction)
	}
	cfg, err := trainer.Configure(preset, trainer.Overrides{Depth: depth, Width: width, Batch: batch, Epochs: epochs,
		LR: lr, Schedule: schedule, EpsTrain: *epsTrain, Seed: seed, CheckpointEvery: every})
	if err != nil {
		return err
	}
	if err := lotOpts.apply(&cfg); err != nil {
		return err
	}

	s3 := shards.S3ConfigFromEnv()
	if genURL == "" {
		fraction = 0 // real images only
	}
	sources, err := sampler.Mix{Real: realURL, Generated: genURL, Fraction: fraction, ReplacementGenerated: true}.Open(ctx, s3)
	if err != nil {
		return err
	}
	real := sources[0].Dataset
	if err := cfg.FitData(real.Manifest); err != nil {
		return fmt.Errorf("--real %s: %w", real, err)
	}
	eval := trainer.DatasetEvaluator{Real: real, N: evalN}
	if valN < 0 {
		return fmt.Errorf("--val %d: want a number of images, 0 for none", valN)
	}
	if valN > 0 {
		if eval.Val, err = holdOut(ctx, real, realURL, valN, valSeed, cfg, out, resume); err != nil {
			return err
		}
		sources[0].Exclude = eval.Val.Record.Rows
		log.Printf("holding %d real training images out as the validation split (--val-seed %d): best.safetensors is chosen on them", valN, valSeed)
	}
	if testURL != "" {
		if eval.Test, err = shards.Open(ctx, testURL, s3); err != nil {
			return fmt.Errorf("--test: %w", err)
		}
	}
	logMix(sources)
	_, err = trainer.Run(ctx, cfg, trainer.OpenSampler(sources), runOptions(out, resume, eval))
	return err
}

// holdOut chooses the validation split and records it in out/val.json; a
// resumed run must find the split it started with there.
func holdOut(ctx context.Context, real *shards.Dataset, url string, n int, seed uint64, cfg trainer.Config, out string, resume bool) (*trainer.Validation, error) {
	v, err := trainer.HoldOut(ctx, real, url, n, seed, cfg)
	if err != nil {
		return nil, fmt.Errorf("--val: %w", err)
	}
	if resume {
		old, err := rundir.ReadVal(out)
		if err != nil {
			return nil, fmt.Errorf("--resume with --val: %w", err)
		}
		if !old.Same(v.Record) {
			return nil, fmt.Errorf("--resume: %s holds out other images (seed %d, %d rows of dataset %s) than --val %d --val-seed %d choose",
				filepath.Join(out, rundir.ValFile), old.Seed, len(old.Rows), old.Manifest, n, seed)
		}
		return v, nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	if err := rundir.WriteVal(out, v.Record); err != nil {
		return nil, err
	}
	return v, nil
}

// logMix says what the run trains on.
func logMix(sources []sampler.Source) {
	if len(sources) == 1 {
		log.Printf("training on %s (real images only)", sources[0].Dataset)
		return
	}
	log.Printf("training on %s (real, %.0f%% of every batch) and %s (generated, %.0f%%)",
		sources[0].Dataset, 100*sources[0].Fraction, sources[1].Dataset, 100*sources[1].Fraction)
}
