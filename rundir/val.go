package rundir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// ValFile names the validation split of a training run.
const ValFile = "val.json"

// ValVersion is the version of val.json this package writes.
const ValVersion = 1

// Val is the validation split a training run held out of its real
// training set (val.json): which rows, chosen from which dataset by which
// seed, so that every cell of a sweep can be seen to hold out the same
// images and a resumed run the ones it started with.
type Val struct {
	Version int `json:"version"`
	// Dataset is the real training set's URL as given, Manifest the
	// checksum of its manifest.
	Dataset  string `json:"dataset"`
	Manifest string `json:"manifest_xxh64"`
	Seed     uint64 `json:"seed"`
	// Rows are the held-out rows (indices in shard order, sorted) and IDs
	// their image ids in the dataset.
	Rows []int64 `json:"rows"`
	IDs  []int64 `json:"ids"`
}

// Same says whether v and w hold out the same images of the same dataset.
func (v Val) Same(w Val) bool {
	return v.Manifest == w.Manifest && v.Seed == w.Seed && slices.Equal(v.Rows, w.Rows) && slices.Equal(v.IDs, w.IDs)
}

// WriteVal writes v as dir/val.json, atomically.
func WriteVal(dir string, v Val) error {
	v.Version = ValVersion
	if len(v.Rows) != len(v.IDs) {
		return fmt.Errorf("%s: %d rows and %d ids", filepath.Join(dir, ValFile), len(v.Rows), len(v.IDs))
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, ValFile), append(data, '\n'))
}

// ReadVal reads dir/val.json; a run without one has no validation split
// (os.ErrNotExist).
func ReadVal(dir string) (Val, error) {
	var v Val
	path := filepath.Join(dir, ValFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return v, fmt.Errorf("read validation split: %w", err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case v.Version > ValVersion:
		return v, fmt.Errorf("%s: version %d: %w (this one reads up to %d)", path, v.Version, ErrVersion, ValVersion)
	case len(v.Rows) != len(v.IDs):
		return v, fmt.Errorf("%s: %d rows and %d ids", path, len(v.Rows), len(v.IDs))
	case !slices.IsSorted(v.Rows):
		return v, errors.New(path + ": rows are not sorted")
	}
	return v, nil
}
