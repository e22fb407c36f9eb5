package sampler

import (
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"

	"certmix/shards"
)

// State is all an iterator needs to continue exactly where it stopped: a
// checkpoint stores it (it is small JSON) and New resumes from it.
type State struct {
	Seed      uint64        `json:"seed"`
	Step      int64         `json:"step"` // the next step to produce
	Epoch     int64         `json:"epoch"`
	Batch     int           `json:"batch"`
	Rank      int           `json:"rank"`
	WorldSize int           `json:"world_size"`
	Sources   []SourceState `json:"sources"`
}

// SourceState identifies a source by the checksum of its manifest, so that a
// resume against other data is refused.
type SourceState struct {
	Manifest    string  `json:"manifest_xxh64"`
	Fraction    float64 `json:"fraction"`
	Replacement bool    `json:"replacement"`
	// Excluded is the checksum of the rows the source holds out
	// (Source.Exclude); empty when none.
	Excluded string `json:"excluded_xxh64,omitempty"`
}

// State returns the state after the last batch returned by Next.
func (it *Iterator) State() State {
	st := State{Seed: it.cfg.Seed, Step: it.step, Epoch: it.step / it.stepsPer, Batch: it.cfg.Batch,
		Rank: it.cfg.Rank, WorldSize: it.cfg.WorldSize}
	for i, s := range it.cfg.Sources {
		st.Sources = append(st.Sources, SourceState{Manifest: it.sums[i], Fraction: s.Fraction, Replacement: s.Replacement, Excluded: it.excluded[i]})
	}
	return st
}

// resume positions the iterator at st after checking that it describes
// this configuration and these datasets.
func (it *Iterator) resume(st *State) error {
	cur := it.State()
	if st.Seed != cur.Seed || st.Batch != cur.Batch || st.Rank != cur.Rank || st.WorldSize != cur.WorldSize || len(st.Sources) != len(cur.Sources) {
		return fmt.Errorf("sampler: resume state (seed %d, batch %d, rank %d of %d, %d sources) does not match the configuration (seed %d, batch %d, rank %d of %d, %d sources)",
			st.Seed, st.Batch, st.Rank, st.WorldSize, len(st.Sources), cur.Seed, cur.Batch, cur.Rank, cur.WorldSize, len(cur.Sources))
	}
	for i := range st.Sources {
		a, b := st.Sources[i], cur.Sources[i]
		if a.Manifest != b.Manifest || a.Replacement != b.Replacement || math.Abs(a.Fraction-b.Fraction) > 1e-9 || a.Excluded != b.Excluded {
			return fmt.Errorf("sampler: resume state source %d is %+v, the configuration has %+v (another dataset, fraction or held-out split)", i, st.Sources[i], cur.Sources[i])
		}
	}
	if st.Step < 0 {
		return fmt.Errorf("sampler: resume state at step %d", st.Step)
	}
	it.step = st.Step
	return nil
}

func manifestSum(m *shards.Manifest) string {
	data, err := m.Marshal()
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%016x", xxhash.Sum64(data))
}
