package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"certmix/rundir"
	"certmix/shards"
	"certmix/trainer/checkpoint"
)

// OpenBatches opens the stream of training batches for a run of cfg, at
// state (a Batches.State of an earlier run) or, when state is nil, at its
// start. Run calls it once, after it knows whether it resumes.
type OpenBatches func(ctx context.Context, cfg Config, state json.RawMessage) (Batches, error)

// Evaluator measures a model at the end of an epoch and fills in the
// accuracies of e. It must leave the training state as it found it (the
// checkpoint of the epoch is written after it).
type Evaluator interface {
	Evaluate(ctx context.Context, t *Trainer, e *rundir.Epoch) error
}

// RunOptions are a training run's files and reporting.
type RunOptions struct {
	// Dir is the run directory (rundir's layout); it is created.
	Dir string
	// Resume continues from Dir's last checkpoint (prev when last is
	// damaged) instead of starting afresh; the checkpoint's Config is used.
	Resume bool
	// Eval, when set, runs at the end of every epoch; its selection
	// accuracy (Selection) chooses best.safetensors.
	Eval Evaluator
	// Progress, when set, is called after every step.
	Progress func(step, total int64, loss float64)
	// Logf, when set, receives one line per event (start, epoch, fallback).
	Logf func(format string, args ...any)
}

func (o RunOptions) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// selection is the accuracy that chooses best.safetensors: certified
// accuracy on the validation images when the run has them, else on the
// test images; ok is false when the epoch measured neither.
func selection(e rundir.Epoch) (acc float64, ok bool) {
	switch {
	case e.ValCertified != nil:
		return *e.ValCertified, true
	case e.TestCertified != nil:
		return *e.TestCertified, true
	}
	return 0, false
}

// Run trains a model of cfg on the batches open returns, until
// cfg.Epochs epochs are done, and leaves its files in opts.Dir:
//   - last.safetensors after every epoch and every cfg.CheckpointEvery
//     steps, the one before it kept as prev.safetensors, so that a damaged
//     last checkpoint (not one of ours: checkpoints are written atomically)
//     still leaves one to resume from;
//   - best.safetensors whenever the epoch's Selection accuracy improves;
//   - one metrics.jsonl line per epoch, written after its checkpoints.
//
// A resumed run continues from the checkpoint's step and batch-stream
// state, and ends with the weights an uninterrupted run would have.
// Cancelling ctx stops it between steps with ctx's error; what it saved
// stays valid.
func Run(ctx context.Context, cfg Config, open OpenBatches, opts RunOptions) (*Trainer, error) {
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	store, err := shards.NewLocal(opts.Dir)
	if err != nil {
		return nil, err
	}
	var tr *Trainer
	var state json.RawMessage
	if opts.Resume {
		if tr, state, err = resume(ctx, store, opts); err != nil {
			return nil, fmt.Errorf("resume from %s: %w", opts.Dir, err)
		}
		cfg = tr.Cfg
	}
	batches, err := open(ctx, cfg, state)
	if err != nil {
		return nil, err
	}
	if c, ok := batches.(io.Closer); ok {
		defer c.Close()
	}
	cfg.StepsPerEpoch = batches.StepsPerEpoch()
	if tr == nil {
		if tr, err = New(cfg); err != nil {
			return nil, err
		}
	} else if tr.Cfg.StepsPerEpoch != cfg.StepsPerEpoch {
		return nil, fmt.Errorf("resume from %s: the checkpoint has %d steps per epoch, the data %d: not the same data", opts.Dir, tr.Cfg.StepsPerEpoch, cfg.StepsPerEpoch)
	}
	every := cfg.CheckpointEvery
	if every <= 0 {
		every = cfg.StepsPerEpoch
	}
	metrics, err := rundir.OpenMetrics(opts.Dir)
	if err != nil {
		return nil, err
	}
	defer metrics.Close()
	opts.logf("%s depth %d width %d, %d classes, batch %d, %d epochs of %d steps", cfg.Arch, cfg.Depth, cfg.Width, cfg.Classes, cfg.Batch, cfg.Epochs, cfg.StepsPerEpoch)

	total := cfg.Epochs * cfg.StepsPerEpoch
	var lossSum float64
	var images int
	start := time.Now()
	for tr.Step < total {
		if err := ctx.Err(); err != nil {
			return tr, err
		}
		b, err := batches.Next(ctx)
		if err != nil {
			return tr, err
		}
		r, err := tr.TrainStep(b)
		if err != nil {
			return tr, err
		}
		lossSum += r.Loss
		images += len(b.Labels)
		if opts.Progress != nil {
			opts.Progress(tr.Step, total, r.Loss)
		}
		st := batches.State()
		epochEnd := tr.Step%cfg.StepsPerEpoch == 0
		if !epochEnd && tr.Step%every == 0 {
			if err := saveLast(ctx, store, tr, st); err != nil {
				return tr, err
			}
		}
		if !epochEnd {
			continue
		}
		e := rundir.Epoch{Version: rundir.MetricsVersion, Epoch: tr.Step/cfg.StepsPerEpoch - 1, Step: tr.Step, TrainLoss: lossSum / float64(cfg.StepsPerEpoch),
			ImagesPerS: float64(images) / time.Since(start).Seconds(), LR: r.LR, Model: r.Values}
		if opts.Eval != nil {
			if err := opts.Eval.Evaluate(ctx, tr, &e); err != nil {
				return tr, fmt.Errorf("epoch %d: %w", e.Epoch, err)
			}
		}
		if acc, ok := selection(e); ok && acc > tr.Best {
			tr.Best = acc
			if err := tr.Save(ctx, store, rundir.BestCheckpoint, st); err != nil {
				return tr, err
			}
		}
		if err := saveLast(ctx, store, tr, st); err != nil {
			return tr, err
		}
		if err := metrics.Append(e); err != nil {
			return tr, err
		}
		line, _ := json.Marshal(e)
		opts.logf("epoch %d: %s", e.Epoch, line)
		lossSum, images, start = 0, 0, time.Now()
	}
	return tr, nil
}

// resume reads the run's last checkpoint, or prev when last is damaged.
func resume(ctx context.Context, store shards.Store, opts RunOptions) (*Trainer, json.RawMessage, error) {
	ck, err := checkpoint.Read(ctx, store, rundir.LastCheckpoint)
	if errors.Is(err, checkpoint.ErrDamaged) {
		opts.logf("%s is damaged (%v); resuming from %s", rundir.LastCheckpoint, err, rundir.PrevCheckpoint)
		ck, err = checkpoint.Read(ctx, store, rundir.PrevCheckpoint)
	}
	if err != nil {
		return nil, nil, err
	}
	return Load(ck)
}

// saveLast writes last.safetensors, keeping the previous one as
// prev.safetensors.
func saveLast(ctx context.Context, store shards.Store, tr *Trainer, state []byte) error {
	if obj, err := store.Open(ctx, rundir.LastCheckpoint); err == nil {
		err = store.Put(ctx, rundir.PrevCheckpoint, io.NewSectionReader(obj, 0, obj.Size()), obj.Size())
		obj.Close()
		if err != nil {
			return err
		}
	}
	return tr.Save(ctx, store, rundir.LastCheckpoint, state)
}
