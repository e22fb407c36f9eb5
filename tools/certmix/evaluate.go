package main

import (
	"context"
	"fmt"

	"certmix/certifier"
	"certmix/shards"
	"certmix/trainer"
)

// evaluate adds to rec the clean accuracy on the first n images of the real
// training set and of the test set, the certified accuracy on the test set
// at the model's eps, and the generalization gap (train minus test clean
// accuracy, the paper's predictor of the benefit of generated data).
func evaluate(ctx context.Context, tr *trainer.Trainer, real, test *shards.Dataset, n int, rec map[string]any) error {
	if err := recalibrate(ctx, tr, real, n); err != nil {
		return err
	}
	trainRes, err := certifyFirst(ctx, tr, real, n)
	if err != nil {
		return fmt.Errorf("evaluate on %s: %w", real, err)
	}
	rec["train_clean"] = certifier.CleanAccuracy(trainRes)
	if test == nil {
		return nil
	}
	testRes, err := certifyFirst(ctx, tr, test, n)
	if err != nil {
		return fmt.Errorf("evaluate on %s: %w", test, err)
	}
	rec["test_clean"] = certifier.CleanAccuracy(testRes)
	rec["test_certified"] = certifier.CertifiedAccuracy(testRes, tr.Cfg.Eps)
	rec["generalization_gap"] = rec["train_clean"].(float64) - rec["test_clean"].(float64)
	return nil
}

// certifyFirst certifies the first n rows of d (shard order) at the
// model's eps.
func certifyFirst(ctx context.Context, tr *trainer.Trainer, d *shards.Dataset, n int) ([]certifier.Result, error) {
	x, labels, err := load(ctx, d, n, tr.Cfg)
	if err != nil {
		return nil, err
	}
	cert, err := tr.Model.Certify(x, labels, tr.Cfg.Eps)
	return cert.Results, err
}

// load reads the first n rows of d as inputs of a model configured by cfg.
func load(ctx context.Context, d *shards.Dataset, n int, cfg trainer.Config) ([]float32, []int, error) {
	m := d.Manifest
	var x []float32
	var labels []int
	var rows shards.Rows
	for i := range m.Shards {
		if len(labels) >= n && n > 0 {
			break
		}
		if err := d.ReadShard(ctx, i, &rows); err != nil {
			return nil, nil, err
		}
		k := rows.Len()
		if n > 0 {
			k = min(k, n-len(labels))
		}
		side := cfg.InputSide()
		buf := make([]float32, k*cfg.Channels*side*side)
		if err := cfg.ToInput(buf, rows.Images, k, m.Height, m.Width, m.Channels); err != nil {
			return nil, nil, err
		}
		x = append(x, buf...)
		for _, l := range rows.Labels[:k] {
			labels = append(labels, int(l))
		}
	}
	return x, labels, nil
}
