package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"

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

	Overwrite   bool   // replace a dataset already at the destination
	TempDir     string // where shuffle buckets spill (default os.TempDir())
	MemoryBytes int64  // rows held in memory for the shuffle (default 64 MiB)
	Workers     int    // concurrent shard encoders (default GOMAXPROCS)
	Tool        string // program and version, recorded in the manifest

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
	if o.MemoryBytes <= 0 {
		o.MemoryBytes = 64 << 20
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Progress == nil {
		o.Progress = func(string, int64, int64) {}
	}
}

// Build streams src into a new dataset in store: rows in a seeded random
// order (or the source order), optionally a uniform subset, in shards of
// about ShardBytes. Shards are written first and the manifest last, so the
// destination holds a dataset only once the build has succeeded; a failed
// or cancelled build removes the shards it wrote. Memory is bounded by
// MemoryBytes plus a few shards, whatever the source's size.
func Build(ctx context.Context, src Source, store shards.Store, opts Options) (*shards.Manifest, error) {
	info := src.Info()
	opts.defaults(info)
	shape := shards.Shape{Height: info.Height, Width: info.Width, Channels: info.Channels,
		Classes: info.Classes, CoarseClasses: info.CoarseClasses}
	if err := shape.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", info.Format, err)
	}
	if opts.Kind != shards.KindReal && opts.Kind != shards.KindGenerated {
		return nil, fmt.Errorf("kind %q: want %q or %q", opts.Kind, shards.KindReal, shards.KindGenerated)
	}
	if opts.Take < 0 || opts.Take > info.Rows {
		return nil, fmt.Errorf("take %d: the source holds %d rows", opts.Take, info.Rows)
	}
	if opts.Take > 0 && opts.NoShuffle {
		return nil, errors.New("take needs the shuffle: a subset of the source order would not be uniform")
	}
	if info.Rows == 0 {
		return nil, fmt.Errorf("%s: the source holds no rows", info.Format)
	}
	old, err := claim(ctx, store, opts.Overwrite)
	if err != nil {
		return nil, err
	}

	b := &builder{src: src, store: store, opts: opts, info: info, shape: shape,
		order: newOrder(!opts.NoShuffle, opts.Seed)}
	m, err := b.run(ctx)
	if err != nil {
		b.cleanup()
		return nil, err
	}
	if err := shards.WriteManifest(ctx, store, m); err != nil {
		b.cleanup()
		return nil, err
	}
	// Shards of a replaced dataset that the new manifest does not name.
	for _, name := range old {
		if !slices.ContainsFunc(m.Shards, func(s shards.ShardInfo) bool { return s.Name == name }) {
			if err := store.Delete(ctx, name); err != nil {
				return m, fmt.Errorf("dataset written, but removing stale object %s: %w", name, err)
			}
		}
	}
	return m, nil
}

// claim checks that the destination may receive a dataset. With overwrite,
// it first removes the old manifest, so that the old dataset stops being one
// before any of its shards is replaced, and returns the old objects.
func claim(ctx context.Context, store shards.Store, overwrite bool) ([]string, error) {
	_, err := store.Stat(ctx, shards.ManifestName)
	switch {
	case errors.Is(err, shards.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%s: %w", store, err)
	case !overwrite:
		return nil, fmt.Errorf("%s: %w (pass --overwrite to replace it)", store, shards.ErrExists)
	}
	old, err := store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", store, err)
	}
	if err := store.Delete(ctx, shards.ManifestName); err != nil {
		return nil, fmt.Errorf("%s: remove old manifest: %w", store, err)
	}
	return slices.DeleteFunc(old, func(n string) bool { return n == shards.ManifestName }), nil
}

type builder struct {
	src     Source
	store   shards.Store
	opts    Options
	info    Info
	shape   shards.Shape
	order   order
	written []string // shards stored so far, for cleanup
}

// cleanup removes the shards of a failed build, best effort: they are not
// a dataset without a manifest either way.
func (b *builder) cleanup() {
	ctx := context.WithoutCancel(context.Background())
	for _, name := range b.written {
		_ = b.store.Delete(ctx, name)
	}
}

// ShardName is the object name of shard i.
func ShardName(i int) string { return fmt.Sprintf("shard-%06d.arrow", i) }

func (b *builder) run(ctx context.Context) (*shards.Manifest, error) {
	n := b.info.Rows
	if b.opts.Take > 0 {
		n = b.opts.Take
	}
	maxKey := b.order.threshold(b.info.Rows, n)
	ib := b.shape.ImageBytes()
	k := int(max(1, (n*int64(recHeader+ib)+b.opts.MemoryBytes-1)/b.opts.MemoryBytes))
	bk, err := newBuckets(k, maxKey, ib, b.opts.TempDir)
	if err != nil {
		return nil, err
	}
	defer bk.close()

	m := &shards.Manifest{
		Name: b.opts.Name, Kind: b.opts.Kind, Split: b.opts.Split, Shape: b.shape, Codec: b.opts.Codec,
		Rows: n, ClassCounts: make([]int64, b.shape.Classes),
		Provenance: shards.Provenance{Tool: b.opts.Tool, Source: b.info.Format, SourceRows: b.info.Rows,
			Shuffle: !b.opts.NoShuffle, Seed: b.opts.Seed, Take: b.opts.Take},
	}
	if b.opts.NoShuffle {
		m.Provenance.Seed = 0
	}

	// Pass one reads the source while the input files are hashed beside it.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		inputs, err := hashInputs(gctx, b.info.Files)
		m.Provenance.Inputs = inputs
		return err
	})
	g.Go(func() error { return b.deal(gctx, bk, maxKey, m.ClassCounts) })
	if err := g.Wait(); err != nil {
		return nil, err
	}

	infos, err := b.write(ctx, bk, n)
	if err != nil {
		return nil, err
	}
	m.Shards = infos
	return m, nil
}

// deal reads every row of the source and puts the selected ones in buckets.
func (b *builder) deal(ctx context.Context, bk *buckets, maxKey uint64, counts []int64) error {
	ib := b.shape.ImageBytes()
	rec := make([]byte, recHeader+ib)
	var c Chunk
	var done int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := b.src.Read(&c, max(1, (1<<20)/ib))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		for i := range c.Len() {
			id := c.First + int64(i)
			key := b.order.key(id)
			if key > maxKey {
				continue
			}
			var coarse int16
			if c.Coarse != nil {
				coarse = c.Coarse[i]
			}
			label := c.Labels[i]
			if label < 0 || int(label) >= b.shape.Classes {
				return fmt.Errorf("id %d: label %d outside [0,%d): %w", id, label, b.shape.Classes, ErrFormat)
			}
			counts[label]++
			if err := bk.add(rec, key, id, label, coarse, c.Images[i*ib:(i+1)*ib]); err != nil {
				return err
			}
		}
		done += int64(c.Len())
		b.opts.Progress("read", done, b.info.Rows)
	}
	if done != b.info.Rows {
		return fmt.Errorf("%s: read %d rows, the headers promised %d: %w", b.info.Format, done, b.info.Rows, ErrFormat)
	}
	return bk.finish()
}

// write emits the buckets in key order, cut into shards that the workers
// encode and store concurrently. Shard buffers circulate through a free
// list, so at most Workers+1 shards are in memory.
func (b *builder) write(ctx context.Context, bk *buckets, n int64) ([]shards.ShardInfo, error) {
	ib := b.shape.ImageBytes()
	rowBytes := int64(ib + 8 + 2)
	perShard := max(1, b.opts.ShardBytes/rowBytes)
	if perShard > int64(b.opts.BatchRows) {
		perShard -= perShard % int64(b.opts.BatchRows) // whole record batches
	}
	nShards := int((n + perShard - 1) / perShard)
	infos := make([]shards.ShardInfo, nShards)
	for i := range nShards {
		b.written = append(b.written, ShardName(i)) // names are fixed: clean up all on failure
	}

	type job struct {
		index int
		rows  *shards.Rows
	}
	free := make(chan *shards.Rows, b.opts.Workers+1)
	for range cap(free) {
		free <- &shards.Rows{}
	}
	jobs := make(chan job)
	g, gctx := errgroup.WithContext(ctx)
	var written int64
	progress := make(chan int64, nShards)
	for range b.opts.Workers {
		g.Go(func() error {
			for j := range jobs {
				info, err := shards.WriteShard(gctx, b.store, ShardName(j.index), b.shape, b.opts.Codec, b.opts.BatchRows, j.rows)
				if err != nil {
					return err
				}
				infos[j.index] = info
				progress <- info.Rows
				free <- j.rows
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(jobs)
		coarse := b.shape.CoarseClasses > 0
		var (
			buf   []byte
			pos   []int32
			cur   *shards.Rows
			index int
			err   error
		)
		send := func() error {
			select {
			case jobs <- job{index, cur}:
				index, cur = index+1, nil
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		for i := range bk.count() {
			if buf, pos, err = bk.load(i, buf, pos); err != nil {
				return err
			}
			for _, p := range pos {
				if cur == nil {
					select {
					case cur = <-free:
						cur.Reset()
						if coarse && cur.Coarse == nil {
							cur.Coarse = []int16{}
						}
					case <-gctx.Done():
						return gctx.Err()
					}
				}
				off := int(p) * bk.recBytes
				appendRecord(cur, buf[off:off+bk.recBytes], coarse)
				if int64(cur.Len()) == perShard {
					if err := send(); err != nil {
						return err
					}
				}
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if cur != nil && cur.Len() > 0 {
			return send()
		}
		return nil
	})
	// Progress is reported from this goroutine alone.
	done := make(chan error, 1)
	go func() { done <- g.Wait(); close(progress) }()
	for r := range progress {
		written += r
		b.opts.Progress("write", written, n)
	}
	if err := <-done; err != nil {
		return nil, err
	}
	if written != n {
		return nil, fmt.Errorf("wrote %d rows, expected %d", written, n)
	}
	return infos, nil
}
