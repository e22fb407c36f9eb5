package sampler

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"

	"certmix/rundir"
	"certmix/shards"
)

// Holdout chooses n of the dataset's rows (indices in shard order, sorted)
// to hold out of training as a validation split. The choice depends only
// on the dataset (its manifest) and seed, not on the training run's seed,
// so every cell of a sweep over one real set holds out the same images.
// It draws by Floyd's algorithm from a splitmix64 stream: memory in n, not
// in the dataset's size.
func Holdout(m *shards.Manifest, n int, seed uint64) ([]int64, error) {
	if n < 0 || int64(n) >= m.Rows {
		return nil, fmt.Errorf("hold out %d of %d rows: want at least 0 and fewer than the dataset holds", n, m.Rows)
	}
	data, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("hold out: %w", err)
	}
	x := mix(seed, 0x686f6c64 /* "hold" */, xxhash.Sum64(data))
	chosen := make(map[int64]bool, n)
	out := make([]int64, 0, n)
	for j := m.Rows - int64(n); j < m.Rows; j++ {
		x += golden
		t := int64(lemire(mix64(x), uint64(j+1)))
		if chosen[t] {
			t = j
		}
		chosen[t] = true
		out = append(out, t)
	}
	slices.Sort(out)
	return out, nil
}

// HoldoutSplit chooses n rows of the real training set d (given as url) by
// [Holdout] with seed and reads them: the record a run keeps of its
// validation split (rundir.Val, val.json) and the rows' ids, labels and
// images, in row order. Only the record batches that hold a chosen row are
// read. certmix train holds these rows out of its own sampler; a sweep's
// external cells hold the same rows out of the sampler servers that feed
// their trainer.
func HoldoutSplit(ctx context.Context, d *shards.Dataset, url string, n int, seed uint64) (rundir.Val, *shards.Rows, error) {
	m := d.Manifest
	rows, err := Holdout(m, n, seed)
	if err != nil {
		return rundir.Val{}, nil, fmt.Errorf("%s: %w", d, err)
	}
	data, err := m.Marshal()
	if err != nil {
		return rundir.Val{}, nil, fmt.Errorf("%s: %w", d, err)
	}
	v := rundir.Val{Dataset: url, Manifest: fmt.Sprintf("%016x", xxhash.Sum64(data)), Seed: seed, Rows: rows}
	ib := m.ImageBytes()
	out := &shards.Rows{Images: make([]byte, 0, n*ib)}
	var rec shards.Rows
	var start int64
	next := rows
	for i, s := range m.Shards {
		for j, b := range s.Batches {
			end := start + b.Rows
			if len(next) > 0 && next[0] < end {
				rec.Reset() // ReadBatch appends
				if err := d.ReadBatch(ctx, i, j, &rec); err != nil {
					return rundir.Val{}, nil, fmt.Errorf("read the validation split of %s: %w", d, err)
				}
				for len(next) > 0 && next[0] < end {
					r := int(next[0] - start)
					out.IDs = append(out.IDs, rec.IDs[r])
					out.Labels = append(out.Labels, rec.Labels[r])
					out.Images = append(out.Images, rec.Images[r*ib:(r+1)*ib]...)
					next = next[1:]
				}
			}
			start = end
		}
	}
	v.IDs = out.IDs
	return v, out, nil
}

// checkExclude returns rows sorted, after checking that they are distinct
// and inside a dataset of total rows that keeps at least one.
func checkExclude(rows []int64, total int64) ([]int64, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	s := slices.Clone(rows)
	slices.Sort(s)
	for i, r := range s {
		if r < 0 || r >= total {
			return nil, fmt.Errorf("excluded row %d outside the dataset's %d rows", r, total)
		}
		if i > 0 && s[i-1] == r {
			return nil, fmt.Errorf("row %d excluded twice", r)
		}
	}
	if int64(len(s)) == total {
		return nil, errors.New("every row is excluded: nothing left to draw")
	}
	return s, nil
}

// excludeSum is the checksum of sorted excluded rows ("" for none), which
// the state keeps so that a resume with another split is refused.
func excludeSum(rows []int64) string {
	if len(rows) == 0 {
		return ""
	}
	b := make([]byte, 8*len(rows))
	for i, r := range rows {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(r))
	}
	return fmt.Sprintf("%016x", xxhash.Sum64(b))
}
