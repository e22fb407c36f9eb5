package trainer

import (
	"context"
	"fmt"

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
	// same number of images gives the generalization gap, and a
	// Recalibrator model recomputes its running means on its first
	// recalibrate images.
	Train       *shards.Dataset
	Recalibrate int
}

// Certification is the certification of a model on a test set.
type Certification struct {
	Certificate
	Eps     float64           // the headline radius
	Summary rundir.Summary    // accuracies at certifier.ReportRadii
	Report  *certifier.Report // the per-model analyses
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
	cert, err := certifyAll(t.Model, x, labels, eps)
	if err != nil {
		return nil, err
	}
	res := cert.Results
	radii := certifier.ReportRadii(cert.Norm, eps)
	sum := rundir.Summary{Arch: t.Cfg.Arch, Norm: cert.Norm, Images: len(res), K: cert.K,
		Clean: certifier.CleanAccuracy(res), Radii: radii, Certified: make([]float64, len(radii))}
	for i, r := range radii {
		sum.Certified[i] = certifier.CertifiedAccuracy(res, r)
	}
	if o.Train != nil {
		tx, tl, err := LoadInputs(ctx, o.Train, o.N, t.Cfg)
		if err != nil {
			return nil, err
		}
		tcert, err := t.Model.Certify(tx, tl, eps)
		if err != nil {
			return nil, err
		}
		sum.TrainClean = certifier.CleanAccuracy(tcert.Results)
		sum.GeneralizationGap = sum.TrainClean - sum.Clean
	}
	rep, err := certifier.Summarize(res, certifier.ReportOptions{Eps: eps, Norm: cert.Norm, Radii: radii})
	if err != nil {
		return nil, err
	}
	return &Certification{Certificate: cert, Eps: eps, Summary: sum, Report: rep}, nil
}
