package trainer

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"certmix/certifier"
	"certmix/rundir"
	"certmix/shards"
)

// CertifyOptions says how a checkpoint is certified on a test set.
type CertifyOptions struct {
	// Eps is the radius (pixel units, in the model's norm) of the headline
	// certified accuracy; 0 means the model's own (cfg.Eps).
	Eps float64
	// N is the number of test images (shard order); 0 means all.
	N int
	// Train, when set, is the real training set: its clean accuracy on the
	// same number of images (from the model's float32 Logits: no
	// certificate is needed for it) gives the generalization gap, and a
	// Recalibrator model recomputes its running means on its first
	// recalibrate images.
	Train       *shards.Dataset
	Recalibrate int
	// CompareEstimate also computes the authors' estimate-based
	// certificate (models that are an [Estimator]), for comparison.
	CompareEstimate bool
}

// Certification is the certification of a model on a test set.
type Certification struct {
	Certificate
	Eps     float64           // the headline radius
	Summary rundir.Summary    // accuracies at certifier.ReportRadii
	Report  *certifier.Report // the per-model analyses
	CPU     time.Duration     // CPU time of the certificate (all threads)
	// Estimate is the authors' estimate-based certificate, when asked
	// for and the model has one, and EstimateCPU its CPU time.
	Estimate    *Certificate
	EstimateCPU time.Duration
}

// CertifyDataset certifies t's model on test (and measures its clean
// accuracy on o.Train, when given), at the radii every report uses.
func CertifyDataset(ctx context.Context, t *Trainer, test *shards.Dataset, o CertifyOptions) (*Certification, error) {
	eps := o.Eps
	if eps <= 0 {
		eps = t.Cfg.Eps
	}
	if err := recalibrate(ctx, t.Model, o.Train, o.Recalibrate, t.Cfg); err != nil {
		return nil, err
	}
	x, labels, err := LoadInputs(ctx, test, o.N, t.Cfg)
	if err != nil {
		return nil, err
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("%s: no images to certify", test)
	}
	cpu0 := cpuTime()
	cert, err := certifyAll(t.Model, x, labels, eps)
	if err != nil {
		return nil, err
	}
	cpu := cpuTime() - cpu0
	res := cert.Results
	radii := certifier.ReportRadii(cert.Norm, eps)
	sum := rundir.Summary{Arch: t.Cfg.Arch, Norm: cert.Norm, Proof: cert.Proof, Images: len(res), K: cert.K,
		Clean: certifier.CleanAccuracy(res), Radii: radii, Certified: make([]float64, len(radii))}
	for i, r := range radii {
		sum.Certified[i] = certifier.CertifiedAccuracy(res, r)
	}
	if o.Train != nil {
		tx, tl, err := LoadInputs(ctx, o.Train, o.N, t.Cfg)
		if err != nil {
			return nil, err
		}
		sum.TrainClean, err = cleanAccuracy(t.Model, tx, tl)
		if err != nil {
			return nil, fmt.Errorf("clean accuracy on %s: %w", o.Train, err)
		}
		sum.GeneralizationGap = sum.TrainClean - sum.Clean
	}
	rep, err := certifier.Summarize(res, certifier.ReportOptions{Eps: eps, Norm: cert.Norm, Radii: radii})
	if err != nil {
		return nil, err
	}
	c := &Certification{Certificate: cert, Eps: eps, Summary: sum, Report: rep, CPU: cpu}
	if est, ok := t.Model.(Estimator); ok && o.CompareEstimate {
		cpu0 := cpuTime()
		e, err := est.CertifyEstimate(x, labels, eps)
		if err != nil {
			return nil, fmt.Errorf("estimate-based certificate: %w", err)
		}
		c.Estimate, c.EstimateCPU = &e, cpuTime()-cpu0
	}
	return c, nil
}

// cpuTime is the CPU time (user and system, all threads) the process has
// used: certification times compared on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
