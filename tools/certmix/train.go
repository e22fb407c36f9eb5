package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"certmix/sampler"
	"certmix/shards"
	"certmix/trainer"
)

const trainExamples = `  # a CPU-sized LiResNet on Fashion-MNIST, 30% real / 70% auxiliary in every batch
  certmix train --real out/fashion-mnist-train --generated out/fmnist-aux --fraction 0.7 \
      --preset gloro-xs --depth 2 --width 16 --batch 64 --epochs 3 --test out/fashion-mnist-test --out runs/fm
  # resume after a stop
  certmix train ... --out runs/fm --resume
`

func runTrain(ctx context.Context, args []string) error {
	fs := newFlags("train", "train --real URL [--generated URL --fraction F] --preset NAME --epochs N --out DIR [flags]", trainExamples)
	var (
		realURL, genURL, testURL, out, preset string
		schedule                              string
		fraction, lr                          float64
		epochs, every                         int64
		depth, width, batch, evalN            int
		seed                                  uint64
		resume                                bool
	)
	fs.StringVar(&realURL, "real", "", "real training dataset (required)")
	fs.StringVar(&genURL, "generated", "", "generated (auxiliary) dataset")
	fs.Float64Var(&fraction, "fraction", 0.7, "share of generated images in every batch")
	fs.StringVar(&testURL, "test", "", "test dataset for the per-epoch metrics")
	fs.StringVar(&out, "out", "", "run directory: last.safetensors, best.safetensors (best certified test accuracy) and metrics.jsonl (required)")
	fs.StringVar(&preset, "preset", "gloro-xs", "the paper's configuration: "+strings.Join(trainer.Presets(), ", ")+" (gloro-xs..l: LiResNet L6W128, L12W128, L18W128, L18W256; lot-s..l: LipConvnet-10, -20, -40)")
	fs.Int64Var(&epochs, "epochs", 0, "epochs (default: the preset's, e.g. 800)")
	fs.IntVar(&depth, "depth", 0, "depth of the network, e.g. LiResNet blocks, LipConvnet's 5·b LOT layers (default: the preset's)")
	fs.IntVar(&width, "width", 0, "width of the network, e.g. LipConvnet's init channels (default: the preset's)")
	fs.IntVar(&batch, "batch", 0, "batch size (default: the preset's)")
	fs.Float64Var(&lr, "lr", 0, "peak learning rate (default: the preset's)")
	fs.StringVar(&schedule, "schedule", "", "learning rate schedule: warmup-cosine, cosine or multistep (default: the preset's)")
	epsTrain := fs.Float64("eps-train", 0, "l_inf models: the training margins' radius in pixel units (default: the preset's, e.g. 40/255 for linfdist)")
	fs.Int64Var(&every, "checkpoint-every", 0, "steps between checkpoints (default: every epoch)")
	fs.IntVar(&evalN, "eval", 1000, "images of the real training set and of the test set evaluated after each epoch")
	fs.Uint64Var(&seed, "seed", 0, "seed of the model's initialisation and of the sampler")
	fs.BoolVar(&resume, "resume", false, "continue from --out/last.safetensors")
	lotOpts := newLOTFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if realURL == "" || out == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("--real and --out are required")
	}
	cfg, err := trainer.Preset(preset)
	if err != nil {
		return err
	}
	for _, o := range []struct {
		dst *int
		v   int
	}{{&cfg.Depth, depth}, {&cfg.Width, width}, {&cfg.Batch, batch}} {
		if o.v > 0 {
			*o.dst = o.v
		}
	}
	if epochs > 0 {
		cfg.Epochs = epochs
	}
	if lr > 0 {
		cfg.LR = lr
	}
	if *epsTrain > 0 && cfg.Dist != nil {
		cfg.Dist.EpsTrain = *epsTrain
	}
	if schedule != "" {
		cfg.Schedule = schedule
	}
	if err := lotOpts.apply(&cfg); err != nil {
		return err
	}
	cfg.Seed = seed
	cfg.WarmupEpochs = min(cfg.WarmupEpochs, max(cfg.Epochs/40, 1)) // 20 of 800 in the paper

	s3 := shards.S3ConfigFromEnv()
	real, err := shards.Open(ctx, realURL, s3)
	if err != nil {
		return fmt.Errorf("--real: %w", err)
	}
	sources := []sampler.Source{{Dataset: real, Fraction: 1}}
	if genURL != "" && fraction > 0 {
		gen, err := shards.Open(ctx, genURL, s3)
		if err != nil {
			return fmt.Errorf("--generated: %w", err)
		}
		sources[0].Fraction = 1 - fraction
		sources = append(sources, sampler.Source{Dataset: gen, Fraction: fraction, Replacement: true})
	}
	m := real.Manifest
	if m.Height != m.Width {
		return fmt.Errorf("--real: images of %dx%d: the models take square images", m.Height, m.Width)
	}
	cfg.Classes, cfg.Channels, cfg.ImageSize = m.Classes, m.Channels, m.Height
	scfg := sampler.Config{Sources: sources, Batch: cfg.Batch, Seed: seed,
		Augment: sampler.Augment{Size: m.Height, Pad: cfg.Augment.Pad, Edge: cfg.Augment.Edge, Flip: true}}
	if m.Height < cfg.InputSide() {
		scfg.Augment.Pad = min(cfg.Augment.Pad, 2) // images smaller than the model's input are padded at the centre by the trainer
	}

	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	store, err := shards.NewLocal(out)
	if err != nil {
		return err
	}
	var tr *trainer.Trainer
	var state *sampler.State
	if resume {
		ck, err := trainer.ReadCheckpoint(ctx, store, "last.safetensors")
		if errors.Is(err, trainer.ErrCheckpoint) {
			// Damaged (a checkpoint is written atomically, so not by a
			// crash of ours): go back to the one before it.
			log.Printf("last.safetensors is damaged (%v); resuming from prev.safetensors", err)
			ck, err = trainer.ReadCheckpoint(ctx, store, "prev.safetensors")
		}
		if err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		var raw json.RawMessage
		if tr, raw, err = trainer.Load(ck); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		state = &sampler.State{}
		if err := json.Unmarshal(raw, state); err != nil {
			return fmt.Errorf("--resume: sampler state: %w", err)
		}
		cfg = tr.Cfg
	}
	it, err := sampler.New(ctx, scfg, state)
	if err != nil {
		return err
	}
	defer it.Close()
	cfg.StepsPerEpoch = it.StepsPerEpoch()
	if tr == nil {
		if tr, err = trainer.New(cfg); err != nil {
			return err
		}
	}
	if every <= 0 {
		every = cfg.StepsPerEpoch
	}
	var test *shards.Dataset
	if testURL != "" {
		if test, err = shards.Open(ctx, testURL, s3); err != nil {
			return fmt.Errorf("--test: %w", err)
		}
	}
	metrics, err := os.OpenFile(filepath.Join(out, "metrics.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer metrics.Close()
	log.Printf("%s depth %d width %d, %d classes, batch %d, %d epochs of %d steps, %s", cfg.Arch, cfg.Depth, cfg.Width, cfg.Classes, cfg.Batch, cfg.Epochs, cfg.StepsPerEpoch, describe(it))

	total := cfg.Epochs * cfg.StepsPerEpoch
	bar := newBar(total, tr.Step)
	defer bar.finish()
	var lossSum float64
	var images int
	start := time.Now()
	for tr.Step < total {
		b, err := it.Next(ctx)
		if err != nil {
			return err
		}
		r, err := tr.TrainStep(trainer.Batch{Step: b.Step, Epoch: b.Epoch, Images: b.Images, Labels: b.Labels, Height: b.Height, Width: b.Width, Chan: b.Channels})
		if err != nil {
			return err
		}
		lossSum += r.Loss
		images += b.Len()
		bar.step(tr.Step, r.Loss)
		st, _ := json.Marshal(it.State())
		epochEnd := tr.Step%cfg.StepsPerEpoch == 0
		if !epochEnd && tr.Step%every == 0 {
			if err := saveLast(ctx, store, tr, st); err != nil {
				return err
			}
		}
		if epochEnd {
			epoch := tr.Step/cfg.StepsPerEpoch - 1
			rec := map[string]any{"epoch": epoch, "step": tr.Step, "train_loss": lossSum / float64(cfg.StepsPerEpoch),
				"images_per_s": float64(images) / time.Since(start).Seconds(), "lr": r.LR}
			for k, v := range r.Values {
				rec[k] = v
			}
			if err := evaluate(ctx, tr, real, test, evalN, rec); err != nil {
				return err
			}
			// Saved after the evaluation, which leaves the training state as it was.
			if c, ok := rec["test_certified"].(float64); ok && c > tr.Best {
				tr.Best = c
				if err := tr.Save(ctx, store, "best.safetensors", st); err != nil {
					return err
				}
			}
			if err := saveLast(ctx, store, tr, st); err != nil {
				return err
			}
			line, _ := json.Marshal(rec)
			fmt.Fprintln(metrics, string(line))
			bar.clear()
			log.Printf("epoch %d: %s", epoch, line)
			lossSum, images, start = 0, 0, time.Now()
		}
	}
	return nil
}

func describe(it *sampler.Iterator) string {
	q := it.Quotas()
	if len(q) == 1 {
		return "real images only"
	}
	return fmt.Sprintf("%d real + %d generated per batch", q[0], q[1])
}

// saveLast writes last.safetensors, keeping the previous one as
// prev.safetensors, so that a damaged last checkpoint still leaves one to
// resume from.
func saveLast(ctx context.Context, store shards.Store, tr *trainer.Trainer, state []byte) error {
	if obj, err := store.Open(ctx, "last.safetensors"); err == nil {
		err = store.Put(ctx, "prev.safetensors", io.NewSectionReader(obj, 0, obj.Size()), obj.Size())
		obj.Close()
		if err != nil {
			return err
		}
	}
	return tr.Save(ctx, store, "last.safetensors", state)
}
