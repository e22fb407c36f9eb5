package pipeline

// Build's guards around the shards it writes: the checks of its options,
// the build lock, the claim on the destination, the manifest written last
// (the commit) and the removal of stale or partial shards. .mutate/run
// mutates this file (and hash.go) on its own.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"certmix/shards"
)

// Build streams src into a new dataset in store: rows in a seeded random
// order (or the source order), optionally a uniform subset, in shards of
// about ShardBytes. Shards are written first and the manifest last, so the
// destination holds a dataset only once the build has succeeded; a failed
// or cancelled build removes the shards it wrote. Memory is bounded by one
// shard per worker, whatever the source's size; the rest of a large input
// waits in spill files in TempDir.
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
	if info.Rows == 0 {
		return nil, fmt.Errorf("%s: the source holds no rows", info.Format)
	}
	if opts.Take < 0 || opts.Skip < 0 || opts.Skip >= info.Rows || opts.Take > info.Rows-opts.Skip {
		return nil, fmt.Errorf("skip %d, take %d: the source holds %d rows", opts.Skip, opts.Take, info.Rows)
	}
	if err := checkExclude(opts.Exclude, info.Rows); err != nil {
		return nil, err
	}
	if (opts.Take > 0 || opts.Skip > 0) && opts.NoShuffle {
		return nil, errors.New("take and skip need the shuffle: a subset of the source order would not be uniform")
	}
	unlock, err := lock(ctx, store, opts.BreakLock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	old, err := claim(ctx, store, opts.Overwrite)
	if err != nil {
		return nil, err
	}

	b := &builder{src: src, store: store, opts: opts, info: info, shape: shape,
		order: newOrder(!opts.NoShuffle, opts.Seed)}
	b.images, _ = src.(ImageReaderAt)
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
	return slices.DeleteFunc(old, func(n string) bool { return n == shards.ManifestName || n == LockName }), nil
}

// LockName is the object a build holds while it writes a dataset.
const LockName = "build.lock"

// lock takes the destination's build lock, where the store can create an
// object atomically, so that two builds into one prefix never mix their
// shards: the second refuses. It returns the function that releases it.
func lock(ctx context.Context, store shards.Store, breakLock bool) (func(), error) {
	ex, ok := store.(shards.ExclusiveStore)
	if !ok {
		return func() {}, nil
	}
	if breakLock {
		if err := store.Delete(ctx, LockName); err != nil {
			return nil, fmt.Errorf("%s: break the build lock: %w", store, err)
		}
	}
	host, _ := os.Hostname()
	note := fmt.Sprintf("{\"host\": %q, \"pid\": %d, \"started\": %q}\n", host, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	err := ex.PutIfAbsent(ctx, LockName, strings.NewReader(note), int64(len(note)))
	if errors.Is(err, shards.ErrTaken) {
		return nil, fmt.Errorf("%s: another build is writing here (it holds %s; if no build is running, one died without releasing it: pass --break-lock): %w", store, LockName, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: take the build lock: %w", store, err)
	}
	return func() { _ = store.Delete(context.WithoutCancel(ctx), LockName) }, nil
}

// cleanup removes the shards of a failed build, best effort: they are not
// a dataset without a manifest either way.
func (b *builder) cleanup() {
	ctx := context.WithoutCancel(context.Background())
	for _, name := range b.written {
		_ = b.store.Delete(ctx, name)
	}
}
