package sampler

import (
	"context"
	"errors"
	"fmt"

	"certmix/shards"
)

// Mix is the training data of the paper's recipe: a real dataset and,
// optionally, a generated one, with a fixed share of generated images in
// every batch. It is what both shardtool (sample, serve) and certmix train
// draw from, assembled once here.
type Mix struct {
	Real      string  // URL of the real dataset: a directory, file://DIR or s3://BUCKET/PREFIX; its size sets the epoch
	Generated string  // URL of the generated dataset; may be empty when Fraction is 0
	Fraction  float64 // share of generated images in every batch, in [0, 1]

	ReplacementReal      bool // draw real images with replacement (the paper: without)
	ReplacementGenerated bool // draw generated images with replacement (the paper: with)
}

// Open opens the datasets of the mix and returns them as the Sources of a
// Config: the real set first, with share 1-Fraction, then the generated set
// with share Fraction. At Fraction 0 the generated set is left out (and not
// opened), so that a real-only run has one source and its sampler State does
// not depend on a generated set it never draws from. Errors name the
// dataset ("real dataset", "generated dataset") and, from shards, its URL.
func (m Mix) Open(ctx context.Context, s3 shards.S3Config) ([]Source, error) {
	switch {
	case !(m.Fraction >= 0 && m.Fraction <= 1):
		return nil, fmt.Errorf("sampler: generated share %v outside [0, 1]", m.Fraction)
	case m.Real == "":
		return nil, errors.New("sampler: a mix needs a real dataset")
	case m.Fraction > 0 && m.Generated == "":
		return nil, fmt.Errorf("sampler: a generated share of %v needs a generated dataset", m.Fraction)
	}
	real, err := shards.Open(ctx, m.Real, s3)
	if err != nil {
		return nil, fmt.Errorf("real dataset: %w", err)
	}
	if real.Manifest.Rows < 1 {
		return nil, fmt.Errorf("real dataset %s holds no image", real)
	}
	sources := []Source{{Dataset: real, Fraction: 1 - m.Fraction, Replacement: m.ReplacementReal}}
	if m.Fraction == 0 {
		sources[0].Fraction = 1
		return sources, nil
	}
	gen, err := shards.Open(ctx, m.Generated, s3)
	if err != nil {
		return nil, fmt.Errorf("generated dataset: %w", err)
	}
	return append(sources, Source{Dataset: gen, Fraction: m.Fraction, Replacement: m.ReplacementGenerated}), nil
}
