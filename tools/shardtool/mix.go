package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"certmix/sampler"
	"certmix/shards"
)

// mixFlags are the flags that describe a mix of datasets and how batches
// are drawn from it, shared by sample and serve.
type mixFlags struct {
	realURL, genURL                 string
	fraction                        float64
	batch, rank, world, cropPad     int
	seed                            uint64
	replReal, replGen, edge, noFlip bool
	prefetch, workers               int
	cacheMiB                        int64
	s3                              func() shards.S3Config
}

// addMixFlags binds the mix flags; withRank adds --rank (serve takes the
// rank from each client instead).
func addMixFlags(fs *flag.FlagSet, withRank bool) *mixFlags {
	m := &mixFlags{}
	fs.StringVar(&m.realURL, "real", "", "the real dataset: a directory, file://DIR or s3://BUCKET/PREFIX (required); its size sets the epoch")
	fs.StringVar(&m.genURL, "generated", "", "the generated dataset (required when --fraction > 0; not opened at --fraction 0)")
	fs.Float64Var(&m.fraction, "fraction", 0.7, "share of generated images in every batch, 0..1: floor(batch*fraction) of them, exactly")
	fs.IntVar(&m.batch, "batch", 512, "images per batch on each rank")
	fs.Uint64Var(&m.seed, "seed", 0, "seed of every random choice: the same seed gives the same batches")
	if withRank {
		fs.IntVar(&m.rank, "rank", 0, "this rank, 0..world-size-1")
	}
	fs.IntVar(&m.world, "world-size", 1, "number of ranks; each draws its own disjoint share of every step")
	fs.BoolVar(&m.replReal, "replacement-real", false, "draw real images with replacement")
	fs.BoolVar(&m.replGen, "replacement-generated", true, "draw generated images with replacement (the paper's loader)")
	fs.IntVar(&m.cropPad, "crop-pad", 4, "random crop of the image's size from the image padded by this much on each side (0: no crop)")
	fs.BoolVar(&m.edge, "edge", false, "pad the crop by replicating the border instead of with zeros")
	fs.BoolVar(&m.noFlip, "no-flip", false, "no random horizontal flip")
	fs.IntVar(&m.prefetch, "prefetch", 0, "batches made ahead of the consumer (0: the sampler's default)")
	fs.IntVar(&m.workers, "workers", 0, "goroutines that make batches (default: one per CPU)")
	fs.Int64Var(&m.cacheMiB, "cache-mib", 0, "MiB of decoded record batches kept in memory (0: the sampler's default, 256); raised to two groups of record batches per source if less")
	m.s3 = s3Flags(fs)
	return m
}

// check refuses flag values that cannot make a mix, naming the flag.
func (m *mixFlags) check() error {
	switch {
	case !(m.fraction >= 0 && m.fraction <= 1):
		return fmt.Errorf("--fraction %v outside [0,1]: it is the share of generated images in every batch", m.fraction)
	case m.fraction > 0 && m.genURL == "":
		return fmt.Errorf("--fraction %v needs --generated (or --fraction 0 for real images only)", m.fraction)
	case m.batch < 1:
		return fmt.Errorf("--batch %d, want at least 1", m.batch)
	case m.world < 1:
		return fmt.Errorf("--world-size %d, want at least 1", m.world)
	case m.rank < 0 || m.rank >= m.world:
		return fmt.Errorf("--rank %d outside 0..%d (--world-size %d)", m.rank, m.world-1, m.world)
	case m.cropPad < 0:
		return fmt.Errorf("--crop-pad %d, want 0 (no crop) or more", m.cropPad)
	case m.prefetch < 0 || m.workers < 0 || m.cacheMiB < 0:
		return fmt.Errorf("--prefetch %d, --workers %d, --cache-mib %d: want 0 (the default) or more", m.prefetch, m.workers, m.cacheMiB)
	}
	return nil
}

// open opens the datasets (sampler.Mix) and returns the sampler
// configuration and the datasets; cmd prefixes warnings.
func (m *mixFlags) open(ctx context.Context, cmd string) (sampler.Config, []*shards.Dataset, error) {
	s3 := m.s3()
	cfg := sampler.Config{
		Batch: m.batch, Seed: m.seed, Rank: m.rank, WorldSize: m.world,
		Augment:  sampler.Augment{Pad: m.cropPad, Edge: m.edge, Flip: !m.noFlip},
		Prefetch: m.prefetch, Workers: m.workers, CacheBytes: m.cacheMiB << 20,
		S3: s3,
	}
	mix := sampler.Mix{Real: m.realURL, Generated: m.genURL, Fraction: m.fraction,
		ReplacementReal: m.replReal, ReplacementGenerated: m.replGen}
	srcs, err := mix.Open(ctx, s3)
	if err != nil {
		return cfg, nil, err
	}
	var sets []*shards.Dataset
	for i, src := range srcs {
		if k := src.Dataset.Manifest.Kind; k != sourceNames[i] {
			fmt.Fprintf(os.Stderr, "shardtool %s: warning: --%s %s is a dataset of kind %q\n", cmd, sourceNames[i], src.Dataset, k)
		}
		sets = append(sets, src.Dataset)
	}
	cfg.Sources = srcs
	return cfg, sets, nil
}
