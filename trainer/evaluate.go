package trainer

import (
	"context"
	"fmt"
	"log"

	"certmix/certifier"
	"certmix/rundir"
	"certmix/shards"
)

// DatasetEvaluator is the per-epoch evaluation of a training run: the clean
// accuracy on the first N images of the real training set, and the clean
// and certified accuracy (at the model's eps) on the first N images of the
// test set, with the generalization gap (train minus test clean accuracy,
// the paper's predictor of the benefit of generated data); with Val, also
// the clean and certified accuracy on the validation split, which then
// chooses best.safetensors (see [Selection]).
type DatasetEvaluator struct {
	Real, Test *shards.Dataset // Test may be nil
	N          int
	Val        *Validation // may be nil
}

// Evaluate implements [Evaluator].
func (d DatasetEvaluator) Evaluate(ctx context.Context, t *Trainer, e *rundir.Epoch) error {
	if err := recalibrate(ctx, t.Model, d.Real, d.N, t.Cfg); err != nil {
		return err
	}
	trainRes, err := certifyFirst(ctx, t, d.Real, d.N)
	if err != nil {
		return fmt.Errorf("evaluate on %s: %w", d.Real, err)
	}
	trainClean := certifier.CleanAccuracy(trainRes)
	e.TrainClean = &trainClean
	if d.Val != nil {
		clean, cert, err := d.Val.Evaluate(t.Model, t.Cfg.Eps)
		if err != nil {
			return err
		}
		e.ValClean, e.ValCertified = &clean, &cert
	}
	if d.Test == nil {
		return nil
	}
	testRes, err := certifyFirst(ctx, t, d.Test, d.N)
	if err != nil {
		return fmt.Errorf("evaluate on %s: %w", d.Test, err)
	}
	clean, cert := certifier.CleanAccuracy(testRes), certifier.CertifiedAccuracy(testRes, t.Cfg.Eps)
	gap := trainClean - clean
	e.TestClean, e.TestCertified, e.GeneralizationGap = &clean, &cert, &gap
	return nil
}

// certifyFirst certifies the first n rows of d (shard order) at the
// model's eps.
func certifyFirst(ctx context.Context, t *Trainer, d *shards.Dataset, n int) ([]certifier.Result, error) {
	x, labels, err := LoadInputs(ctx, d, n, t.Cfg)
	if err != nil {
		return nil, err
	}
	cert, err := t.Model.Certify(x, labels, t.Cfg.Eps)
	return cert.Results, err
}

// Recalibrator is a model whose evaluation needs a pass over training
// images first (SortNet's running means, which the authors recompute on
// training data before testing). Evaluation and certification call it when
// the model has it.
type Recalibrator interface {
	Recalibrate(x []float32, n int) error
}

// recalibrate runs m's recalibration pass over the first n images of the
// real training set when m is a [Recalibrator]; other models are left
// alone. Without a training set, the checkpoint's running means are kept
// (and said so in the log).
func recalibrate(ctx context.Context, m Model, real *shards.Dataset, n int, cfg Config) error {
	r, ok := m.(Recalibrator)
	if !ok {
		return nil
	}
	if real == nil {
		log.Printf("no training set to recalibrate the running means with; using the checkpoint's")
		return nil
	}
	x, labels, err := LoadInputs(ctx, real, n, cfg)
	if err != nil {
		return fmt.Errorf("recalibrate on %s: %w", real, err)
	}
	if err := r.Recalibrate(x, len(labels)); err != nil {
		return fmt.Errorf("recalibrate on %s: %w", real, err)
	}
	return nil
}

// certifyAll certifies x at eps and, for an l_inf model, runs its interval
// bounds at every reported radius too (certifier.ReportRadii), keeping per
// image the largest radius that certified it (Result.IBP): boxes are
// nested, so the certificate holds below it.
func certifyAll(m Model, x []float32, labels []int, eps float64) (Certificate, error) {
	cert, err := m.Certify(x, labels, eps)
	if err != nil || cert.Norm != "linf" {
		return cert, err
	}
	for _, r := range certifier.ReportRadii("linf", eps) {
		if r == eps {
			continue
		}
		c, err := m.Certify(x, labels, r)
		if err != nil {
			return cert, fmt.Errorf("interval bounds at %v: %w", r, err)
		}
		for i, res := range c.Results {
			cert.Results[i].IBP = max(cert.Results[i].IBP, res.IBP)
		}
	}
	return cert, nil
}

// cleanAccuracy is the share of the len(labels) images of x whose
// prediction (certifier.Argmax, as the certificates take it) is their
// label: clean accuracy from the model's float32 Logits alone,
// without the cost of a certificate. It gives the training images' side of
// the generalization gap. A NaN logit is an error.
func cleanAccuracy(m Model, x []float32, labels []int) (float64, error) {
	if err := checkCertify(m, x, labels); err != nil {
		return 0, err
	}
	if len(labels) == 0 {
		return 0, fmt.Errorf("clean accuracy of no images: %w", certifier.ErrShape)
	}
	const chunk = 1024
	d, C := m.InputSize(), m.Classes()
	y := make([]float32, chunk*C)
	correct := 0
	for lo := 0; lo < len(labels); lo += chunk {
		hi := min(len(labels), lo+chunk)
		if err := m.Logits(y[:(hi-lo)*C], x[lo*d:hi*d], hi-lo); err != nil {
			return 0, fmt.Errorf("logits of images %d..%d: %w", lo, hi-1, err)
		}
		for i := range hi - lo {
			c, err := certifier.Argmax(y[i*C : (i+1)*C])
			if err != nil {
				return 0, fmt.Errorf("image %d: %w", lo+i, err)
			}
			if c == labels[lo+i] {
				correct++
			}
		}
	}
	return float64(correct) / float64(len(labels)), nil
}
