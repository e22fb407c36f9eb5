package trainer

import (
	"context"
	"fmt"

	"github.com/cespare/xxhash/v2"

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
// sampler.Holdout with seed, which depends on the dataset and seed alone,
// and reads them as inputs of a model of cfg. Only the
// record batches that hold a chosen row are read.
func HoldOut(ctx context.Context, d *shards.Dataset, url string, n int, seed uint64, cfg Config) (*Validation, error) {
	m := d.Manifest
	rows, err := sampler.Holdout(m, n, seed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	data, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	v := &Validation{Record: rundir.Val{Dataset: url, Manifest: fmt.Sprintf("%016x", xxhash.Sum64(data)), Seed: seed, Rows: rows}}
	ib := m.ImageBytes()
	images := make([]byte, 0, n*ib)
	var rec shards.Rows
	var start int64
	next := rows
	for i, s := range m.Shards {
		for j, b := range s.Batches {
			end := start + b.Rows
			if len(next) > 0 && next[0] < end {
				rec.Reset() // ReadBatch appends
				if err := d.ReadBatch(ctx, i, j, &rec); err != nil {
					return nil, fmt.Errorf("read the validation split: %w", err)
				}
				for len(next) > 0 && next[0] < end {
					r := int(next[0] - start)
					images = append(images, rec.Images[r*ib:(r+1)*ib]...)
					v.Labels = append(v.Labels, int(rec.Labels[r]))
					v.Record.IDs = append(v.Record.IDs, rec.IDs[r])
					next = next[1:]
				}
			}
			start = end
		}
	}
	side := cfg.InputSide()
	v.X = make([]float32, n*cfg.Channels*side*side)
	if err := cfg.ToInput(v.X, images, n, m.Height, m.Width, m.Channels); err != nil {
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
