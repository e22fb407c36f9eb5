package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"

	"certmix/shards"
)

// Options control a build. The zero value of a field means its default.
type Options struct {
	Name  string // dataset name (default: the source format)
	Kind  string // shards.KindReal or shards.KindGenerated (default real)
	Split string // "train", "test", ... (default "train")
	Codec string // body compression: zstd (default), lz4 or none

	ShardBytes int64 // target uncompressed bytes of one shard (default 64 MiB)
	BatchRows  int   // rows per record batch (default shards.DefaultBatchRows)

	NoShuffle bool   // keep the source order (no --take then)
	Seed      uint64 // seed of the permutation and of the take
	Take      int64  // rows drawn uniformly without replacement; 0 = all
	Skip      int64  // leave out the first Skip rows of the permutation: with one seed, the complement of Take Skip
	// Exclude lists source ids left out of the dataset after the
	// selection above (e.g. near-copies of test images that shardtool
	// audit flagged); sorted, without duplicates (see ReadExcludeIDs). They
	// are recorded in the manifest's provenance, so the dataset is the same
	// selection minus exactly these rows, and can be made again.
	Exclude []int64

	Overwrite bool   // replace a dataset already at the destination
	BreakLock bool   // take the build lock even if held: after a build that died without releasing it
	TempDir   string // where shuffle buckets spill (default os.TempDir())
	Workers   int    // concurrent shard encoders (default 2 per core)
	Tool      string // program and version, recorded in the manifest

	// Progress, if not nil, is called from one goroutine at a time as the
	// build advances: stage is "read" (rows of the source) or "write" (rows
	// in shards).
	Progress func(stage string, done, total int64)
}

func (o *Options) defaults(info Info) {
	if o.Name == "" {
		o.Name = info.Format
	}
	if o.Kind == "" {
		o.Kind = shards.KindReal
	}
	if o.Split == "" {
		o.Split = "train"
	}
	if o.Codec == "" {
		o.Codec = shards.CodecZstd
	}
	if o.ShardBytes <= 0 {
		o.ShardBytes = 64 << 20
	}
	if o.BatchRows <= 0 {
		o.BatchRows = shards.DefaultBatchRows
	}
	if o.Workers <= 0 {
		o.Workers = 2 * runtime.GOMAXPROCS(0) // two per core: one encodes while the other waits on I/O
	}
	if o.Progress == nil {
		o.Progress = func(string, int64, int64) {}
	}
}

type builder struct {
	src     Source
	store   shards.Store
	opts    Options
	info    Info
	shape   shards.Shape
	order   order
	images  ImageReaderAt // nil unless the source reads images by id
	written []string      // shards stored so far, for cleanup
}

// ShardName is the object name of shard i.
func ShardName(i int) string { return fmt.Sprintf("shard-%06d.arrow", i) }

// The rows of one shard are one bucket of the shuffle: the keys are uniform,
// so the buckets hold ShardBytes of rows each give or take a fraction of a
// percent, and every shard can be sorted, encoded and stored on its own, on
// any core.
func (b *builder) run(ctx context.Context) (*shards.Manifest, error) {
	n := b.info.Rows - b.opts.Skip
	if b.opts.Take > 0 {
		n = b.opts.Take
	}
	ib := b.shape.ImageBytes()
	rowBytes := int64(ib + 8 + 2)
	k := int(max(1, (n*rowBytes+b.opts.ShardBytes-1)/b.opts.ShardBytes))
	spilled := ib
	if b.images != nil && k > 1 {
		spilled = 0
	}
	var minKey uint64 // rows of rank Skip.. have keys above the Skip-th smallest
	if b.opts.Skip > 0 {
		minKey = b.order.threshold(b.info.Rows, b.opts.Skip) + 1
	}
	bk, err := newBuckets(k, minKey, b.order.threshold(b.info.Rows, b.opts.Skip+n), spilled, b.opts.TempDir)
	if err != nil {
		return nil, err
	}
	defer bk.close()

	m := &shards.Manifest{
		Name: b.opts.Name, Kind: b.opts.Kind, Split: b.opts.Split, Shape: b.shape, Codec: b.opts.Codec,
		Rows: n, ClassCounts: make([]int64, b.shape.Classes),
		Provenance: shards.Provenance{Tool: b.opts.Tool, Source: b.info.Format, SourceRows: b.info.Rows,
			Shuffle: !b.opts.NoShuffle, Seed: b.opts.Seed, Take: b.opts.Take, Skip: b.opts.Skip,
			Excluded: b.opts.Exclude},
	}
	if b.opts.NoShuffle {
		m.Provenance.Seed = 0
	}

	// Pass one: the source is read in one goroutine and dealt into buckets
	// in another, while a third checksums the input files.
	chunks := make(chan *Chunk)
	free := make(chan *Chunk, 3)
	for range cap(free) {
		free <- &Chunk{}
	}
	b.opts.Progress("read", 0, b.info.Rows)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		inputs, err := hashInputs(gctx, b.info.Files)
		m.Provenance.Inputs = inputs
		return err
	})
	g.Go(func() error {
		// chunks is closed only after a complete read: after an error, deal
		// stops on the cancelled context, so the read's error is the one
		// reported, not deal's count of the rows it did not get.
		err := b.read(gctx, free, chunks)
		if err == nil {
			close(chunks)
		}
		return err
	})
	var excluded int64
	g.Go(func() (err error) {
		excluded, err = b.deal(gctx, bk, chunks, free, m.ClassCounts)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	n -= excluded
	m.Rows = n

	// Pass two: shards in parallel, one bucket each.
	var names []string
	index := make([]int, k) // shard of each non-empty bucket
	for i := range k {
		index[i] = -1
		if bk.rows[i] > 0 {
			index[i] = len(names)
			names = append(names, ShardName(len(names)))
		}
	}
	b.written = names // fixed names: a failed build removes them all
	b.opts.Progress("write", 0, n)
	m.Shards = make([]shards.ShardInfo, len(names))
	var (
		mu      sync.Mutex
		written int64
	)
	buckets := make(chan int)
	g, gctx = errgroup.WithContext(ctx)
	for range min(b.opts.Workers, len(names)) {
		g.Go(func() error {
			var buf []byte
			var pos []int32
			var batch shards.Rows
			for i := range buckets {
				// A shard whose upload failed is encoded and sent again from
				// the sorted bucket still in memory: the same bytes.
				info, err := b.writeShard(gctx, bk, i, names[index[i]], &buf, &pos, &batch, false)
				for attempt := 1; err != nil && attempt < 3 && retriable(gctx, err); attempt++ {
					info, err = b.writeShard(gctx, bk, i, names[index[i]], &buf, &pos, &batch, true)
				}
				if err != nil {
					return err
				}
				mu.Lock()
				m.Shards[index[i]] = info
				written += info.Rows
				b.opts.Progress("write", written, n)
				mu.Unlock()
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(buckets)
		for i := range k {
			if index[i] < 0 {
				continue
			}
			select {
			case buckets <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return m, nil
}

// read streams the source's rows into chunks of about 1 MiB.
func (b *builder) read(ctx context.Context, free <-chan *Chunk, out chan<- *Chunk) error {
	per := max(1, (1<<20)/b.shape.ImageBytes())
	for {
		var c *Chunk
		select {
		case c = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
		err := b.src.Read(c, per)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case out <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// deal puts the selected rows of each chunk in their buckets, leaving out
// the excluded ids; it returns how many selected rows were excluded.
func (b *builder) deal(ctx context.Context, bk *buckets, in <-chan *Chunk, free chan<- *Chunk, counts []int64) (int64, error) {
	ib := b.shape.ImageBytes()
	rec := make([]byte, bk.recBytes)
	var done, excluded int64
	exclude := b.opts.Exclude // sorted: a cursor follows the ids, which arrive in order
	for {
		var c *Chunk
		select {
		case c = <-in:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if c == nil {
			break // the reader closed the channel: every row was read
		}
		if c.First != done {
			return 0, fmt.Errorf("%s: chunk starts at id %d, want %d", b.info.Format, c.First, done)
		}
		for i := range c.Len() {
			id := c.First + int64(i)
			key := b.order.key(id)
			if key > bk.maxKey || key < bk.minKey {
				continue
			}
			for len(exclude) > 0 && exclude[0] < id {
				exclude = exclude[1:]
			}
			if len(exclude) > 0 && exclude[0] == id {
				excluded++
				continue
			}
			label := c.Labels[i]
			if label < 0 || int(label) >= b.shape.Classes {
				return 0, fmt.Errorf("id %d: label %d outside [0,%d): %w", id, label, b.shape.Classes, ErrFormat)
			}
			var coarse int16
			if c.Coarse != nil {
				coarse = c.Coarse[i]
			}
			counts[label]++
			if err := bk.add(rec, key, id, label, coarse, c.Images[i*ib:(i+1)*ib]); err != nil {
				return 0, err
			}
		}
		done += int64(c.Len())
		b.opts.Progress("read", done, b.info.Rows)
		free <- c
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if done != b.info.Rows {
		return 0, fmt.Errorf("%s: read %d rows, the headers promised %d: %w", b.info.Format, done, b.info.Rows, ErrFormat)
	}
	return excluded, bk.finish()
}

// writeShard sorts bucket i and stores it as one shard, a record batch at a
// time; buf, pos and batch are the worker's buffers, reused across shards.
func (b *builder) writeShard(ctx context.Context, bk *buckets, i int, name string, buf *[]byte, pos *[]int32, batch *shards.Rows, again bool) (shards.ShardInfo, error) {
	if !again { // a retry reuses the bucket loaded the first time
		var err error
		if *buf, *pos, err = bk.load(i, *buf, *pos); err != nil {
			return shards.ShardInfo{}, err
		}
	}
	w, err := shards.NewShardWriter(ctx, b.store, name, b.shape, b.opts.Codec)
	if err != nil {
		return shards.ShardInfo{}, err
	}
	coarse := b.shape.CoarseClasses > 0
	ib := b.shape.ImageBytes()
	for lo := 0; lo < len(*pos); lo += b.opts.BatchRows {
		hi := min(lo+b.opts.BatchRows, len(*pos))
		batch.Reset()
		batch.Grow(hi-lo, ib, coarse)
		images := b.images
		if bk.recBytes > recHeader {
			images = nil // the spill holds them
		}
		for _, p := range (*pos)[lo:hi] {
			off := int(p) * bk.recBytes
			if err := appendRecord(batch, (*buf)[off:off+bk.recBytes], coarse, images, ib); err != nil {
				w.Abort()
				return shards.ShardInfo{}, err
			}
		}
		if err := w.Write(batch); err != nil {
			return shards.ShardInfo{}, err
		}
		if err := ctx.Err(); err != nil {
			w.Abort()
			return shards.ShardInfo{}, err
		}
	}
	return w.Close()
}

// retriable says whether a failed shard upload is worth encoding and sending
// again: a store fault, not bad input, and not a cancelled build.
func retriable(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, ErrFormat) && !errors.Is(err, shards.ErrFormat) && !errors.Is(err, context.Canceled)
}
