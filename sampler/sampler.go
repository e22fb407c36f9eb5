package sampler

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"

	"golang.org/x/sync/errgroup"

	"certmix/shards"
)

// Source is one dataset of the mix.
type Source struct {
	URL         string          // dataset URL (local path, file:// or s3://)
	Dataset     *shards.Dataset // an open dataset; overrides URL
	Fraction    float64         // share of every batch
	Replacement bool            // draw with replacement (the paper's rule for generated data)
	// Exclude lists rows (indices in shard order, as [Holdout] returns
	// them) that are never drawn: a validation split held out of training.
	// The source's cycle (and, for the first source, the epoch) runs over
	// the rows left; quotas are unchanged.
	Exclude []int64
}

// Config describes a stream of mixed batches. The first source is the real
// set: its size sets the epoch length.
type Config struct {
	Sources   []Source
	Batch     int    // images per batch on each rank
	Seed      uint64 // every random choice derives from it
	Rank      int    // this rank, 0..WorldSize-1
	WorldSize int    // ranks (default 1)

	StepsPerEpoch int64 // default ceil(N_real / (Batch*WorldSize))
	Augment       Augment
	Normalize     *Normalize // nil: uint8 NHWC output; else float32 NCHW

	Prefetch    int   // batches made ahead of the consumer (default 8)
	Workers     int   // goroutines that make batches (default GOMAXPROCS)
	CacheBytes  int64 // decoded record batches kept in memory (default 256 MiB; raised to two groups per source)
	GroupBlocks int   // record batches a source draws from at a time (default 4)
	Lookahead   int   // steps ahead whose record batches are fetched early (default 64)

	S3 shards.S3Config // for s3:// URLs
}

// Batch is one batch of images with, per image, its label, id and source.
type Batch struct {
	Step, Epoch int64
	Height      int // output height and width (after the crop) and channels
	Width       int
	Channels    int
	Images      []byte    // uint8 NHWC, when Config.Normalize is nil
	Floats      []float32 // float32 NCHW, when Config.Normalize is set
	Labels      []int16
	IDs         []int64
	Sources     []uint8 // index into Config.Sources
}

// Len returns the number of images.
func (b *Batch) Len() int { return len(b.Labels) }

// Clone returns a copy of b that owns its memory: Next's batches are
// recycled by the following call.
func (b *Batch) Clone() Batch {
	c := *b
	c.Images, c.Floats = slices.Clone(b.Images), slices.Clone(b.Floats)
	c.Labels, c.IDs, c.Sources = slices.Clone(b.Labels), slices.Clone(b.IDs), slices.Clone(b.Sources)
	return c
}

// Iterator streams the batches of a Config, in step order.
type Iterator struct {
	cfg      Config
	sets     []*shards.Dataset
	orders   []*order
	quotas   []int
	shape    shards.Shape
	oh, ow   int
	cache    *cache
	sums     []string // manifest checksums, for the state
	excluded []string // checksums of the sources' excluded rows, for the state
	stepsPer int64

	step      int64 // next step Next returns
	stats     *Stats
	lastEpoch *Stats

	cancel  context.CancelFunc
	g       *errgroup.Group
	pending chan chan result
	cur     chan result // the step Next waits for, kept if its ctx ends first
	err     error       // the first error of a batch: final
	free    chan *Batch
	last    *Batch

	prefetches errgroup.Group // background fetches of record batches, at most 4 at a time
	gctx       context.Context
}

type result struct {
	b   *Batch
	err error
}

// New opens the sources and starts making batches from state's step (nil:
// step 0). The Iterator must be closed.
func New(ctx context.Context, cfg Config, state *State) (*Iterator, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	it := &Iterator{cfg: cfg}
	fractions := make([]float64, len(cfg.Sources))
	for i, s := range cfg.Sources {
		d := s.Dataset
		if d == nil {
			var err error
			if d, err = shards.Open(ctx, s.URL, cfg.S3); err != nil {
				return nil, fmt.Errorf("source %d: %w", i, err)
			}
		}
		m := d.Manifest
		if m.Rows < 1 {
			return nil, fmt.Errorf("source %d (%s): the dataset holds no image", i, d)
		}
		if i == 0 {
			it.shape = m.Shape
		} else if m.Height != it.shape.Height || m.Width != it.shape.Width || m.Channels != it.shape.Channels || m.Classes != it.shape.Classes {
			return nil, fmt.Errorf("source %d (%s): %dx%dx%d images in %d classes, source 0 has %dx%dx%d in %d: datasets must agree",
				i, d, m.Height, m.Width, m.Channels, m.Classes, it.shape.Height, it.shape.Width, it.shape.Channels, it.shape.Classes)
		}
		exclude, err := checkExclude(s.Exclude, m.Rows)
		if err != nil {
			return nil, fmt.Errorf("source %d (%s): %w", i, d, err)
		}
		it.sets = append(it.sets, d)
		it.orders = append(it.orders, newOrder(cfg.Seed, i, m, cfg.GroupBlocks, s.Replacement, exclude))
		it.sums = append(it.sums, manifestSum(m))
		it.excluded = append(it.excluded, excludeSum(exclude))
		fractions[i] = s.Fraction
	}
	var err error
	if it.quotas, err = Quotas(cfg.Batch, fractions); err != nil {
		return nil, err
	}
	if it.oh, it.ow, err = cfg.Augment.OutSize(it.shape.Height, it.shape.Width); err != nil {
		return nil, err
	}
	it.stepsPer = cfg.StepsPerEpoch
	if it.stepsPer <= 0 {
		global := int64(cfg.Batch * cfg.WorldSize)
		it.stepsPer = (it.orders[0].rows + global - 1) / global
	}
	// The cache must hold, per source, the group being drawn from and the
	// next one being fetched ahead; less would refetch a block for nearly
	// every draw.
	var floor int64
	for i, o := range it.orders {
		if it.quotas[i] > 0 {
			floor += 2 * int64(cfg.GroupBlocks) * o.maxBlockRows * int64(it.shape.ImageBytes()+10)
		}
	}
	it.cfg.CacheBytes = max(cfg.CacheBytes, floor)
	if state != nil {
		if err := it.resume(state); err != nil {
			return nil, err
		}
	}
	it.stats = it.newStats(it.step / it.stepsPer)
	it.replayStats(it.step)
	it.cache = newCache(it.cfg.CacheBytes)
	it.start(ctx)
	return it, nil
}

func (c *Config) defaults() error {
	if len(c.Sources) == 0 {
		return errors.New("sampler: no sources")
	}
	for i, s := range c.Sources {
		if !(s.Fraction >= 0 && s.Fraction <= 1) {
			return fmt.Errorf("sampler: source %d (%s): fraction %v outside [0,1]", i, s.URL, s.Fraction)
		}
	}
	if c.Batch < 1 {
		return fmt.Errorf("sampler: batch size %d, want at least 1", c.Batch)
	}
	if c.WorldSize == 0 {
		c.WorldSize = 1
	}
	if c.WorldSize < 0 {
		return fmt.Errorf("sampler: world size %d, want at least 1", c.WorldSize)
	}
	if c.Rank < 0 || c.Rank >= c.WorldSize {
		return fmt.Errorf("sampler: rank %d outside 0..%d", c.Rank, c.WorldSize-1)
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 8
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.CacheBytes <= 0 {
		c.CacheBytes = 256 << 20
	}
	if c.GroupBlocks <= 0 {
		c.GroupBlocks = 4
	}
	if c.Lookahead <= 0 {
		c.Lookahead = 64
	}
	return nil
}

// start launches the producer and the workers: each batch is made by one
// worker from (config, step) alone, and handed out in step order.
func (it *Iterator) start(ctx context.Context) {
	ctx, it.cancel = context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(ctx)
	it.g, it.gctx = g, gctx
	it.pending = make(chan chan result, it.cfg.Prefetch)
	it.free = make(chan *Batch, it.cfg.Prefetch+2)
	it.prefetches.SetLimit(4)
	type job struct {
		step int64
		out  chan result
	}
	jobs := make(chan job)
	g.Go(func() error {
		defer close(jobs)
		defer close(it.pending)
		for step := it.step; ; step++ {
			out := make(chan result, 1)
			select {
			case it.pending <- out:
			case <-gctx.Done():
				return nil
			}
			select {
			case jobs <- job{step, out}:
			case <-gctx.Done():
				return nil
			}
		}
	})
	for range it.cfg.Workers {
		g.Go(func() error {
			for j := range jobs {
				b := it.batch()
				err := it.make(gctx, j.step, b)
				j.out <- result{b, err}
				if err == nil {
					it.prefetch(j.step + int64(it.cfg.Lookahead))
				}
			}
			return nil
		})
	}
}

// Config returns the configuration in use, defaults filled in.
func (it *Iterator) Config() Config { return it.cfg }

// Quotas returns the images of each source in every batch.
func (it *Iterator) Quotas() []int { return slices.Clone(it.quotas) }

// Shape returns the shape of the datasets' images (before augmentation).
func (it *Iterator) Shape() shards.Shape { return it.shape }

// StepsPerEpoch returns the steps of one epoch.
func (it *Iterator) StepsPerEpoch() int64 { return it.stepsPer }

// batch returns a recycled batch, or a new one.
func (it *Iterator) batch() *Batch {
	select {
	case b := <-it.free:
		return b
	default:
		return &Batch{}
	}
}

// Next returns the next batch. It stays valid until the following call to
// Next or Close, which recycle its memory. If ctx ends while Next waits, the
// next call waits for the same step; an error from making a batch is final
// (every later call returns it), so no step is ever skipped.
func (it *Iterator) Next(ctx context.Context) (*Batch, error) {
	if it.err != nil {
		return nil, it.err
	}
	if it.last != nil {
		select {
		case it.free <- it.last:
		default:
		}
		it.last = nil
	}
	if it.cur == nil {
		select {
		case out, ok := <-it.pending:
			if !ok {
				return nil, errors.New("sampler: iterator closed")
			}
			it.cur = out
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var r result
	select {
	case r = <-it.cur:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	it.cur = nil
	if r.err != nil {
		it.err = r.err
		return nil, r.err
	}
	it.account(r.b)
	it.step = r.b.Step + 1
	it.last = r.b
	return r.b, nil
}

// Close stops the workers and waits for them.
func (it *Iterator) Close() error {
	it.cancel()
	err := it.g.Wait() // results go to buffered channels: no worker blocks on them
	it.prefetches.Wait()
	return err
}

// make fills b with the batch of step.
func (it *Iterator) make(ctx context.Context, step int64, b *Batch) error {
	cfg := &it.cfg
	n := cfg.Batch
	c := it.shape.Channels
	ib := it.shape.ImageBytes()
	ob := it.oh * it.ow * c
	b.Step, b.Epoch = step, step/it.stepsPer
	b.Height, b.Width, b.Channels = it.oh, it.ow, c
	b.Labels = slices.Grow(b.Labels[:0], n)[:n]
	b.IDs = slices.Grow(b.IDs[:0], n)[:n]
	b.Sources = slices.Grow(b.Sources[:0], n)[:n]
	b.Images = slices.Grow(b.Images[:0], n*ob)[:n*ob]
	if cfg.Normalize != nil {
		b.Floats = slices.Grow(b.Floats[:0], n*ob)[:n*ob]
	}
	// Where each image goes in the batch: a seeded shuffle, as the paper's
	// loader shuffles its indices.
	slot := make([]int, n)
	for i := range slot {
		slot[i] = i
	}
	shuffle(slot, mix(cfg.Seed, 0x736c6f74 /* "slot" */, uint64(step), uint64(cfg.Rank)))
	k := 0
	for src, q := range it.quotas {
		o := it.orders[src]
		base := (step*int64(cfg.WorldSize) + int64(cfg.Rank)) * int64(q)
		for j := range q {
			d := o.at(base + int64(j))
			rows, err := it.cache.get(ctx, blockKey{src, d.block}, it.fetch)
			if err != nil {
				return fmt.Errorf("step %d: %w", step, err)
			}
			i := slot[k]
			k++
			b.Labels[i], b.IDs[i], b.Sources[i] = rows.Labels[d.row], rows.IDs[d.row], uint8(src)
			img := rows.Images[d.row*ib : (d.row+1)*ib]
			r := mix(cfg.Seed, 0x61756720 /* "aug " */, uint64(step), uint64(cfg.Rank), uint64(i))
			cfg.Augment.apply(b.Images[i*ob:(i+1)*ob], img, it.shape.Height, it.shape.Width, c, it.oh, it.ow, r)
			if cfg.Normalize != nil {
				cfg.Normalize.toFloat(b.Floats[i*ob:(i+1)*ob], b.Images[i*ob:(i+1)*ob], it.oh, it.ow, c)
			}
		}
	}
	return nil
}

// fetch reads one record batch of a source with a range read.
func (it *Iterator) fetch(ctx context.Context, key blockKey, dst *shards.Rows) error {
	blk := it.orders[key.src].blocks[key.block]
	return it.sets[key.src].ReadBatch(ctx, blk.shard, blk.batch, dst)
}

// prefetch starts fetching, in the background, the record batches that step
// will draw from, so that a new group is in memory before it is needed.
func (it *Iterator) prefetch(step int64) {
	for src, q := range it.quotas {
		if q == 0 {
			continue
		}
		o := it.orders[src]
		base := (step*int64(it.cfg.WorldSize) + int64(it.cfg.Rank)) * int64(q)
		for _, p := range []int64{base, base + int64(q) - 1} {
			for _, blk := range o.groupBlocks(p) {
				key := blockKey{src, blk}
				if it.cache.has(key) {
					continue
				}
				if !it.prefetches.TryGo(func() error {
					_, _ = it.cache.get(it.gctx, key, it.fetch) // errors surface when the step itself asks
					return nil
				}) {
					return // enough fetches in flight
				}
			}
		}
	}
}
