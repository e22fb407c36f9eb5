package audit

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"certmix/shards"
)

// ResultVersion is the version of the result file this code writes and reads.
const ResultVersion = 1

// Result is what a search found: for every test image, its nearest
// neighbours in each dataset, and the pixels of the closest pairs. The
// result of one part (--part) is a Result too; Merge combines them into the
// Result of the whole. Its JSON form is the part file that crosses machines.
type Result struct {
	Version  int             `json:"version"`
	Settings Settings        `json:"settings"`
	Test     TestSet         `json:"test"`
	Datasets []DatasetResult `json:"datasets"`
}

// Settings are the search options that decide what a result holds; parts
// merge only when theirs agree.
type Settings struct {
	Normalize  string `json:"normalize"`
	Shifts     int    `json:"shifts"`
	Cells      int    `json:"cells"`
	Candidates int    `json:"candidates"`
	Neighbours int    `json:"neighbours"`
	Pairs      int    `json:"pairs"`
}

// TestSet identifies the test images, by position: a neighbour list's
// index is the test image's position here.
type TestSet struct {
	URL    string       `json:"url"`
	Name   string       `json:"name"`
	Shape  shards.Shape `json:"shape"`
	IDs    []int64      `json:"ids"`
	Labels []int16      `json:"labels"`
}

// DatasetResult is what one dataset (or one part of it) holds for the test images.
type DatasetResult struct {
	URL       string `json:"url"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Rows      int64  `json:"rows"`       // rows of the whole dataset
	Scanned   int64  `json:"scanned"`    // rows searched: all of them once every part is merged
	PartCount int    `json:"part_count"` // the n of --part i/n
	Parts     []int  `json:"parts"`      // 0-based parts searched, sorted
	// Neighbours holds, per test image, its nearest rows, closest first
	// (ties by id), at most Settings.Neighbours.
	Neighbours [][]Neighbour `json:"neighbours"`
	// Pairs holds the pixels of the test images whose nearest neighbour is
	// closest, with that neighbour, at most Settings.Pairs, closest first.
	Pairs []Pair `json:"pairs"`
}

// Neighbour is one dataset row near a test image.
type Neighbour struct {
	ID    int64 `json:"id"`
	Label int16 `json:"label"`
	// Dist is the root mean square difference of the normalised pixels
	// (in [0, 1] units without normalisation) between the row and the test
	// image transformed by Variant, over the pixels where they overlap.
	Dist    float64 `json:"dist"`
	Variant string  `json:"variant"` // "same", "flip", "same+1+0" (moved right 1), ...
}

// Pair is a test image and its nearest row, with their pixels (HWC).
type Pair struct {
	Test        int    `json:"test"` // position in TestSet
	ID          int64  `json:"id"`
	TestPixels  []byte `json:"test_pixels"`
	MatchPixels []byte `json:"match_pixels"`
}

// less orders neighbours closest first, ties by id.
func less(a, b Neighbour) int {
	return cmp.Or(cmp.Compare(a.Dist, b.Dist), cmp.Compare(a.ID, b.ID))
}

// Merge combines the results of parts of one audit into the result of the
// parts together: per test image the closest neighbours over all parts,
// and the closest pairs. Parts must agree on the settings, test set and
// datasets, and none may be given twice.
func Merge(parts []*Result) (*Result, error) {
	if len(parts) == 0 {
		return nil, errors.New("merge: no results")
	}
	first := parts[0]
	out := &Result{Version: ResultVersion, Settings: first.Settings, Test: first.Test}
	for k, p := range parts {
		switch {
		case p.Settings != first.Settings:
			return nil, fmt.Errorf("merge: result %d was searched with %+v, result 1 with %+v", k+1, p.Settings, first.Settings)
		case p.Test.Shape != first.Test.Shape || !slices.Equal(p.Test.IDs, first.Test.IDs) || !slices.Equal(p.Test.Labels, first.Test.Labels):
			// URLs may differ between machines; the images' ids may not.
			return nil, fmt.Errorf("merge: result %d audits test set %s (%d images), result 1 %s (%d images): not the same ids and labels",
				k+1, p.Test.URL, len(p.Test.IDs), first.Test.URL, len(first.Test.IDs))
		case len(p.Datasets) != len(first.Datasets):
			return nil, fmt.Errorf("merge: result %d has %d datasets, result 1 has %d", k+1, len(p.Datasets), len(first.Datasets))
		}
	}
	for j := range first.Datasets {
		d0 := first.Datasets[j]
		m := DatasetResult{URL: d0.URL, Name: d0.Name, Kind: d0.Kind, Rows: d0.Rows, PartCount: d0.PartCount,
			Neighbours: make([][]Neighbour, len(first.Test.IDs))}
		var pairs []Pair
		for k, p := range parts {
			d := p.Datasets[j]
			if d.Name != d0.Name || d.Rows != d0.Rows || d.PartCount != d0.PartCount {
				return nil, fmt.Errorf("merge: result %d dataset %d is %s named %q (%d rows, %d parts), result 1's is %s named %q (%d rows, %d parts)",
					k+1, j+1, d.URL, d.Name, d.Rows, d.PartCount, d0.URL, d0.Name, d0.Rows, d0.PartCount)
			}
			if len(d.Neighbours) != len(first.Test.IDs) {
				return nil, fmt.Errorf("merge: result %d dataset %s: %d neighbour lists for %d test images", k+1, d.URL, len(d.Neighbours), len(first.Test.IDs))
			}
			for _, q := range d.Parts {
				if slices.Contains(m.Parts, q) {
					return nil, fmt.Errorf("merge: part %d/%d of %s given twice", q+1, d.PartCount, d.URL)
				}
				m.Parts = append(m.Parts, q)
			}
			m.Scanned += d.Scanned
			for i, ns := range d.Neighbours {
				m.Neighbours[i] = append(m.Neighbours[i], ns...)
			}
			pairs = append(pairs, d.Pairs...)
		}
		slices.Sort(m.Parts)
		for i, ns := range m.Neighbours {
			slices.SortFunc(ns, less)
			m.Neighbours[i] = ns[:min(len(ns), first.Settings.Neighbours)]
		}
		// A pair shown for the whole is the nearest neighbour of its test
		// image in the part that holds it, and among that part's closest
		// pairs: keep those that are still the nearest overall.
		pairs = slices.DeleteFunc(pairs, func(p Pair) bool {
			ns := m.Neighbours[p.Test]
			return len(ns) == 0 || ns[0].ID != p.ID
		})
		m.Pairs = closestPairs(pairs, m.Neighbours, first.Settings.Pairs)
		out.Datasets = append(out.Datasets, m)
	}
	return out, nil
}

// closestPairs orders pairs by their test image's nearest distance (ties by
// test position) and keeps the first n.
func closestPairs(pairs []Pair, ns [][]Neighbour, n int) []Pair {
	slices.SortFunc(pairs, func(a, b Pair) int {
		return cmp.Or(cmp.Compare(ns[a.Test][0].Dist, ns[b.Test][0].Dist), cmp.Compare(a.Test, b.Test))
	})
	return slices.Clip(pairs[:min(len(pairs), n)])
}

// WriteFile stores r as JSON at path, atomically: a reader sees the whole
// file or none.
func (r *Result) WriteFile(path string) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return writeAtomic(path, append(data, '\n'))
}

// ReadResult loads a result file written by WriteFile.
func ReadResult(path string) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit result: %w", err)
	}
	var r Result
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("audit result %s: not a result file of shardtool audit: %w", path, err)
	}
	if r.Version != ResultVersion {
		return nil, fmt.Errorf("audit result %s: version %d, this certmix reads %d", path, r.Version, ResultVersion)
	}
	n := len(r.Test.IDs)
	if len(r.Test.Labels) != n {
		return nil, fmt.Errorf("audit result %s: %d test ids, %d labels", path, n, len(r.Test.Labels))
	}
	ib := r.Test.Shape.ImageBytes()
	for _, d := range r.Datasets {
		if len(d.Neighbours) != n {
			return nil, fmt.Errorf("audit result %s: dataset %s has %d neighbour lists for %d test images", path, d.URL, len(d.Neighbours), n)
		}
		for _, p := range d.Pairs {
			if p.Test < 0 || p.Test >= n || len(p.TestPixels) != ib || len(p.MatchPixels) != ib {
				return nil, fmt.Errorf("audit result %s: dataset %s: pair of test %d and id %d is malformed", path, d.URL, p.Test, p.ID)
			}
		}
	}
	return &r, nil
}

// writeAtomic writes data to a temporary file beside path and renames it.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}
