package sweep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"

	"certmix/shards"
)

// ErrDataChanged marks a cell whose datasets are not those it started
// with: resuming it would mix two sets of data in one result.
var ErrDataChanged = errors.New("cell data changed")

// DataRecord identifies one dataset a cell used, so that a result's data
// is exactly known: its URL, what its manifest says, and the xxhash64 of
// the manifest (which holds the checksum of every shard and record batch).
// The checksum is the one the sampler's resumable state records.
type DataRecord struct {
	Role          string `json:"role"` // real, generated or test
	URL           string `json:"url"`
	Name          string `json:"name"`
	Kind          string `json:"kind"`
	Split         string `json:"split"`
	Rows          int64  `json:"rows"`
	Shards        int    `json:"shards"`
	ManifestXXH64 string `json:"manifest_xxh64"`
}

// dataName is the cell's record of its datasets.
const dataName = "data.json"

// RecordData reads the manifests of the cell's datasets and writes them to
// the cell directory's data.json. When the file exists (an earlier
// attempt), the datasets must be the same: otherwise [ErrDataChanged].
func RecordData(ctx context.Context, cellDir string, c Cell) ([]DataRecord, error) {
	var recs []DataRecord
	for _, d := range []struct{ role, url string }{{"real", c.Real}, {"generated", c.GeneratedURL}, {"test", c.Test}} {
		if d.url == "" {
			continue
		}
		r, err := readRecord(ctx, d.role, d.url)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	data, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	path := filepath.Join(cellDir, dataName)
	old, err := os.ReadFile(path)
	if err == nil {
		if !bytes.Equal(old, data) {
			return nil, fmt.Errorf("%s: %w: the datasets' manifests differ from those this cell started with (now:\n%s)", path, ErrDataChanged, data)
		}
		return recs, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("record data: %w", err)
	}
	if err := writeAtomic(path, data); err != nil {
		return nil, fmt.Errorf("record data: %w", err)
	}
	return recs, nil
}

func readRecord(ctx context.Context, role, url string) (DataRecord, error) {
	store, err := shards.OpenStore(ctx, url, shards.S3ConfigFromEnv())
	if err != nil {
		return DataRecord{}, fmt.Errorf("%s data %s: %w", role, url, err)
	}
	m, err := shards.ReadManifest(ctx, store)
	if err != nil {
		return DataRecord{}, fmt.Errorf("%s data: %w", role, err)
	}
	canon, err := m.Marshal()
	if err != nil {
		return DataRecord{}, fmt.Errorf("%s data %s: %w", role, url, err)
	}
	return DataRecord{Role: role, URL: url, Name: m.Name, Kind: m.Kind, Split: m.Split, Rows: m.Rows,
		Shards: len(m.Shards), ManifestXXH64: fmt.Sprintf("%016x", xxhash.Sum64(canon))}, nil
}
