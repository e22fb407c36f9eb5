package audit

import (
	"fmt"
	"strconv"
	"strings"

	"certmix/shards"
)

// Part is one of Count slices of every dataset's rows, so that one audit
// can run on several machines and be merged. The zero value is the whole.
type Part struct {
	Index int `json:"index"` // 0-based
	Count int `json:"count"` // 0 or 1: the whole dataset
}

// ParsePart reads "i/n" (1-based i, 1 ≤ i ≤ n), as --part takes it.
func ParsePart(s string) (Part, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 1 || i > n {
		return Part{}, fmt.Errorf("part %q: want i/n with 1 ≤ i ≤ n, e.g. 2/4 for the second of four machines", s)
	}
	return Part{Index: i - 1, Count: n}, nil
}

func (p Part) String() string {
	if p.Count <= 1 {
		return "1/1"
	}
	return fmt.Sprintf("%d/%d", p.Index+1, p.Count)
}

// batchRef is one record batch of a dataset, the unit of work.
type batchRef struct {
	shard, batch int
	rows         int64
}

// batches returns the record batches of part p of m, in dataset order: the
// batches whose first row falls in the part's share [i·R/n, (i+1)·R/n) of
// the R rows. The shares partition the rows, so the parts together cover
// each row exactly once, and every batch is searched whole by one part,
// as the unsplit audit searches it.
func (p Part) batches(m *shards.Manifest) []batchRef {
	n := int64(max(p.Count, 1))
	lo, hi := int64(p.Index)*m.Rows/n, int64(p.Index+1)*m.Rows/n
	var out []batchRef
	var row int64
	for i, s := range m.Shards {
		for j, b := range s.Batches {
			if row >= lo && row < hi {
				out = append(out, batchRef{shard: i, batch: j, rows: b.Rows})
			}
			row += b.Rows
		}
	}
	return out
}
