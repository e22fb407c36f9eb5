package sampler

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"

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
