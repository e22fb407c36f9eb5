package main

import (
	"context"
	"fmt"
	"log"
	"math"
	"slices"

	"certmix/shards"
	"certmix/trainer"
)

// linfRadii are the radii (pixel units) at which l_inf models are
// certified and reported: 2/255, 8/255 (the paper's), 16/255, 0.1 and eps.
func linfRadii(eps float64) []float64 {
	r := []float64{2.0 / 255, 8.0 / 255, 16.0 / 255, 0.1}
	if !slices.ContainsFunc(r, func(v float64) bool { return math.Abs(v-eps) < 1e-12 }) {
		r = append(r, eps)
	}
	slices.Sort(r)
	return r
}

// reportRadii are the radii a certification reports for a model of norm
// ("l2": eps/2 to 3 eps).
func reportRadii(norm string, eps float64) []float64 {
	if norm == "linf" {
		return linfRadii(eps)
	}
	return []float64{eps / 2, eps, 2 * eps, 3 * eps}
}

// certifyAll certifies x at eps and, for an l_inf model, runs its interval
// bounds at every reported radius too, keeping per image the largest radius
// that certified it (Result.IBP): boxes are nested, so it holds below.
func certifyAll(m trainer.Model, x []float32, labels []int, eps float64) (trainer.Certificate, error) {
	cert, err := m.Certify(x, labels, eps)
	if err != nil || cert.Norm != "linf" {
		return cert, err
	}
	for _, r := range linfRadii(eps) {
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

// recalibrate runs a Recalibrator model's pass over the first n images of
// the real training set before an evaluation (SortNet's running means,
// spec 3.5); other models are left alone.
func recalibrate(ctx context.Context, tr *trainer.Trainer, real *shards.Dataset, n int) error {
	r, ok := tr.Model.(trainer.Recalibrator)
	if !ok {
		return nil
	}
	if real == nil {
		log.Printf("%s: no training set to recalibrate the running means with; using the checkpoint's", tr.Cfg.Arch)
		return nil
	}
	x, labels, err := load(ctx, real, n, tr.Cfg)
	if err != nil {
		return fmt.Errorf("recalibrate on %s: %w", real, err)
	}
	if err := r.Recalibrate(x, len(labels)); err != nil {
		return fmt.Errorf("recalibrate on %s: %w", real, err)
	}
	return nil
}
