package trainer

import (
	"context"
	"fmt"

	"certmix/certifier"
	"certmix/rundir"
	"certmix/sampler"
	"certmix/shards"
)

// Validation is a validation split: real training images held out of
// training (sampler.Source.Exclude of its Rows), loaded as model inputs,
// on which a run chooses best.safetensors instead of on test images.
type Validation struct {
	// Record is what val.json keeps of it.
	Record rundir.Val
	X      []float32
	Labels []int
}

// HoldOut chooses n rows of the real training set d (given as url) by
// sampler.HoldoutSplit with seed, which depends on the dataset and seed
// alone, and reads them as inputs of a model of cfg. Only the record
// batches that hold a chosen row are read.
func HoldOut(ctx context.Context, d *shards.Dataset, url string, n int, seed uint64, cfg Config) (*Validation, error) {
	rec, rows, err := sampler.HoldoutSplit(ctx, d, url, n, seed)
	if err != nil {
		return nil, err
	}
	v := &Validation{Record: rec, Labels: make([]int, len(rows.Labels))}
	for i, l := range rows.Labels {
		v.Labels[i] = int(l)
	}
	m := d.Manifest
	side := cfg.InputSide()
	v.X = make([]float32, n*cfg.Channels*side*side)
	if err := cfg.ToInput(v.X, rows.Images, n, m.Height, m.Width, m.Channels); err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	return v, nil
}

// Evaluate certifies the split with m at eps and returns its clean and
// certified accuracy.
func (v *Validation) Evaluate(m Model, eps float64) (clean, cert float64, err error) {
	c, err := m.Certify(v.X, v.Labels, eps)
	if err != nil {
		return 0, 0, fmt.Errorf("evaluate on the validation split: %w", err)
	}
	return certifier.CleanAccuracy(c.Results), certifier.CertifiedAccuracy(c.Results, eps), nil
}
