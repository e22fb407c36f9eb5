package trainer

import (
	"context"
	"encoding/json"
	"fmt"

	"certmix/sampler"
	"certmix/shards"
)

// samplerBatches adapts a sampler.Iterator to [Batches].
type samplerBatches struct{ it *sampler.Iterator }

// SamplerBatches is the sampler's iterator as the [Batches] that [Run]
// consumes; closing it closes the iterator.
func SamplerBatches(it *sampler.Iterator) Batches { return samplerBatches{it} }

func (s samplerBatches) Next(ctx context.Context) (Batch, error) {
	b, err := s.it.Next(ctx)
	if err != nil {
		return Batch{}, err
	}
	return Batch{Step: b.Step, Epoch: b.Epoch, Images: b.Images, Labels: b.Labels, Height: b.Height, Width: b.Width, Channels: b.Channels}, nil
}

func (s samplerBatches) State() json.RawMessage {
	st, _ := json.Marshal(s.it.State())
	return st
}

func (s samplerBatches) StepsPerEpoch() int64 { return s.it.StepsPerEpoch() }
func (s samplerBatches) Close() error         { return s.it.Close() }

// samplerConfig is the sampler configuration that feeds a model of cfg
// from sources whose images are h pixels high: cfg's batch, seed and
// augmentation (a random crop of the padded image and a flip). Images
// smaller than the model's input are padded at the centre by
// [Config.ToInput], so their crop padding is at most 2.
func samplerConfig(cfg Config, sources []sampler.Source, h int) sampler.Config {
	sc := sampler.Config{Sources: sources, Batch: cfg.Batch, Seed: cfg.Seed,
		Augment: sampler.Augment{Size: h, Pad: cfg.Augment.Pad, Edge: cfg.Augment.Edge, Flip: true}}
	if h < cfg.InputSide() {
		sc.Augment.Pad = min(cfg.Augment.Pad, 2)
	}
	return sc
}

// OpenSampler returns the [OpenBatches] that streams sources through the
// sampler, resuming at the sampler state a checkpoint stored.
func OpenSampler(sources []sampler.Source) OpenBatches {
	return func(ctx context.Context, cfg Config, state json.RawMessage) (Batches, error) {
		var st *sampler.State
		if state != nil {
			st = &sampler.State{}
			if err := json.Unmarshal(state, st); err != nil {
				return nil, fmt.Errorf("sampler state: %w", err)
			}
		}
		if len(sources) == 0 {
			return nil, fmt.Errorf("no training data")
		}
		it, err := sampler.New(ctx, samplerConfig(cfg, sources, sources[0].Dataset.Manifest.Height), st)
		if err != nil {
			return nil, err
		}
		return SamplerBatches(it), nil
	}
}

// LoadInputs reads the first n rows of d (shard order; n <= 0: all) as
// inputs of a model of cfg (Config.ToInput), with their labels.
func LoadInputs(ctx context.Context, d *shards.Dataset, n int, cfg Config) ([]float32, []int, error) {
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
			return nil, nil, fmt.Errorf("%s: %w", d, err)
		}
		x = append(x, buf...)
		for _, l := range rows.Labels[:k] {
			labels = append(labels, int(l))
		}
	}
	return x, labels, nil
}

// FitData sets the data's classes, channels and image size from the real
// training set's manifest; the models take square images.
func (c *Config) FitData(m *shards.Manifest) error {
	if m.Height != m.Width {
		return fmt.Errorf("images of %dx%d: the models take square images", m.Height, m.Width)
	}
	c.Classes, c.Channels, c.ImageSize = m.Classes, m.Channels, m.Height
	return nil
}
