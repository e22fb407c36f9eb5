package shards

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"
)

// ShardError is the verdict on one damaged shard.
type ShardError struct {
	Shard string
	Err   error
}

func (e *ShardError) Error() string { return e.Err.Error() }
func (e *ShardError) Unwrap() error { return e.Err }

// Verify reads every shard of d whole and checks it against the manifest:
// the object's size and checksum, every record batch's checksum, that every
// row decodes, that ids are unique, inside the source and match the shard's
// first and last id, that labels lie in the class range, and that the row
// and per-class counts add up. It goes on past a damaged shard and returns
// every damaged shard (in manifest order) joined in one error; progress, if
// not nil, is called after each shard with the rows checked so far.
func Verify(ctx context.Context, d *Dataset, progress func(rows int64)) error {
	m := d.Manifest
	var (
		mu      sync.Mutex
		bad     []*ShardError
		counts  = make([]int64, m.Classes)
		done    int64
		seen    = newIDSet(m.Provenance.SourceRows)
		idLimit = m.Provenance.SourceRows
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(runtime.GOMAXPROCS(0), 1))
	for i := range m.Shards {
		g.Go(func() error {
			var rows Rows
			err := d.ReadShard(gctx, i, &rows)
			if err == nil {
				err = checkRows(m, i, &rows, idLimit)
			}
			if gctx.Err() != nil {
				return gctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				err = seen.addAll(rows.IDs)
			}
			if err != nil {
				bad = append(bad, &ShardError{Shard: m.Shards[i].Name, Err: err})
				return nil
			}
			for _, l := range rows.Labels {
				counts[l]++
			}
			done += int64(rows.Len())
			if progress != nil {
				progress(done)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(bad) > 0 {
		slices.SortFunc(bad, func(a, b *ShardError) int { return shardIndex(m, a.Shard) - shardIndex(m, b.Shard) })
		errs := make([]error, len(bad))
		for i, b := range bad {
			errs[i] = b
		}
		return fmt.Errorf("%s: %d of %d shards damaged, first %s: %w", d.store, len(bad), len(m.Shards), bad[0].Shard, errors.Join(errs...))
	}
	if !slices.Equal(counts, m.ClassCounts) {
		return fmt.Errorf("%s: class counts %v, manifest says %v: %w", d.store, counts, m.ClassCounts, ErrFormat)
	}
	return nil
}

func shardIndex(m *Manifest, name string) int {
	return slices.IndexFunc(m.Shards, func(s ShardInfo) bool { return s.Name == name })
}

// checkRows checks the decoded rows of shard i against the manifest.
func checkRows(m *Manifest, i int, r *Rows, idLimit int64) error {
	s := m.Shards[i]
	name := s.Name
	if r.IDs[0] != s.FirstID || r.IDs[r.Len()-1] != s.LastID {
		return fmt.Errorf("%s: ids run %d..%d, manifest says %d..%d: %w", name, r.IDs[0], r.IDs[r.Len()-1], s.FirstID, s.LastID, ErrFormat)
	}
	for k, id := range r.IDs {
		if id < 0 || (idLimit > 0 && id >= idLimit) {
			return fmt.Errorf("%s row %d: id %d outside the source's [0,%d): %w", name, k, id, idLimit, ErrFormat)
		}
		if l := r.Labels[k]; l < 0 || int(l) >= m.Classes {
			return fmt.Errorf("%s row %d (id %d): label %d outside [0,%d): %w", name, k, id, l, m.Classes, ErrFormat)
		}
		if m.CoarseClasses > 0 {
			if c := r.Coarse[k]; c < 0 || int(c) >= m.CoarseClasses {
				return fmt.Errorf("%s row %d (id %d): coarse label %d outside [0,%d): %w", name, k, id, c, m.CoarseClasses, ErrFormat)
			}
		}
	}
	return nil
}

// idSet is a bitmap of ids seen, to prove that no image appears twice. A
// manifest's source row count is not trusted to size it beyond 2^32 ids
// (512 MiB); larger sources are checked against a map of the ids seen.
type idSet struct {
	bits []uint64
	seen map[int64]struct{}
}

func newIDSet(n int64) *idSet {
	if n <= 0 || n > 1<<32 { // unknown or huge: a map of the ids seen
		return &idSet{seen: map[int64]struct{}{}}
	}
	return &idSet{bits: make([]uint64, (n+63)/64)}
}

func (s *idSet) addAll(ids []int64) error {
	for _, id := range ids {
		if s.seen != nil {
			if _, dup := s.seen[id]; dup {
				return fmt.Errorf("id %d appears twice: %w", id, ErrFormat)
			}
			s.seen[id] = struct{}{}
			continue
		}
		w, b := id/64, uint64(1)<<(id%64)
		if id < 0 || w >= int64(len(s.bits)) {
			return fmt.Errorf("id %d outside the source: %w", id, ErrFormat)
		}
		if s.bits[w]&b != 0 {
			return fmt.Errorf("id %d appears twice: %w", id, ErrFormat)
		}
		s.bits[w] |= b
	}
	return nil
}

// VerifyNested proves that small is a subsample nested in large: both were
// drawn from the same input files with the same seed, and small's rows are
// exactly the first rows of large, in the same order (the build draws a
// take-N subset as the N smallest keys of one seeded permutation).
func VerifyNested(ctx context.Context, small, large *Dataset) error {
	a, b := small.Manifest, large.Manifest
	if !slices.Equal(a.Provenance.Inputs, b.Provenance.Inputs) || a.Provenance.Seed != b.Provenance.Seed ||
		a.Provenance.Source != b.Provenance.Source || !a.Provenance.Shuffle || !b.Provenance.Shuffle ||
		a.Provenance.Skip != b.Provenance.Skip {
		return fmt.Errorf("%s and %s were not drawn from the same inputs with the same seed: not nested", small, large)
	}
	if a.Rows > b.Rows {
		return fmt.Errorf("%s has %d rows, more than the %d of %s: not nested", small, a.Rows, b.Rows, large)
	}
	var ra, rb Rows
	var pos int64 // rows of large consumed
	j, offB := 0, 0
	for i := range a.Shards {
		if err := small.ReadShard(ctx, i, &ra); err != nil {
			return err
		}
		for _, id := range ra.IDs {
			if offB == rb.Len() {
				if err := large.ReadShard(ctx, j, &rb); err != nil {
					return err
				}
				j, offB = j+1, 0
			}
			if rb.IDs[offB] != id {
				return fmt.Errorf("row %d: %s holds id %d, %s holds id %d: not nested", pos, small, id, large, rb.IDs[offB])
			}
			offB++
			pos++
		}
	}
	return nil
}
