package shards

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// ManifestName is the object that makes a prefix a dataset. It is written
// last, in one atomic Put, after every shard it names is in place.
const ManifestName = "manifest.json"

// FormatVersion is the manifest version this code writes and the newest it reads.
const FormatVersion = 1

// maxRows bounds every row count a manifest states (2^40, 10^5 times the
// paper's largest set), so that sums cannot overflow and no reader sizes a
// buffer from a crafted count.
const maxRows = 1 << 40

// maxManifestBytes bounds what a reader loads before parsing: a manifest of
// 10M images in 64 MiB shards is well under 1 MiB.
const maxManifestBytes = 64 << 20

// Dataset kinds.
const (
	KindReal      = "real"
	KindGenerated = "generated"
)

// Manifest describes one dataset: what it holds, its shards, and how it was made.
type Manifest struct {
	Format      string      `json:"format"` // always "certmix-shards"
	Version     int         `json:"version"`
	Name        string      `json:"name"`
	Kind        string      `json:"kind"`  // KindReal or KindGenerated
	Split       string      `json:"split"` // "train", "test", ...
	Shape                   // height, width, channels, classes, coarse_classes
	Layout      string      `json:"layout"` // always Layout
	Codec       string      `json:"codec"`  // body compression: "zstd", "lz4" or "none"
	Rows        int64       `json:"rows"`
	ClassCounts []int64     `json:"class_counts"` // rows per class, indexed by label
	Shards      []ShardInfo `json:"shards"`
	Provenance  Provenance  `json:"provenance"`
}

// ShardInfo is the manifest's entry for one shard object.
type ShardInfo struct {
	Name    string      `json:"name"` // object name, relative to the dataset prefix
	Rows    int64       `json:"rows"`
	Bytes   int64       `json:"bytes"`
	FirstID int64       `json:"first_id"` // id of the shard's first row
	LastID  int64       `json:"last_id"`  // id of the shard's last row
	XXH64   string      `json:"xxh64"`    // xxhash64 of the whole object, 16 hex digits
	Codec   string      `json:"codec"`    // body compression of this shard: the dataset's, or none where it did not pay
	Batches []BatchInfo `json:"batches"`  // record batches in file order
}

// BatchInfo locates one record batch inside its shard, so that a reader can
// fetch and check it with a single range read.
type BatchInfo struct {
	Offset int64  `json:"offset"` // first byte of the batch's IPC message
	Length int64  `json:"length"` // bytes of the message (metadata and body)
	Rows   int64  `json:"rows"`
	XXH64  string `json:"xxh64"` // xxhash64 of those bytes
}

// Provenance records how a dataset was made, enough to make it again.
type Provenance struct {
	Tool       string      `json:"tool"`   // program and version that wrote the dataset
	Source     string      `json:"source"` // input format: "cifar10", "cifar100", "npz", "idx"
	SourceRows int64       `json:"source_rows"`
	Inputs     []InputFile `json:"inputs"`
	Shuffle    bool        `json:"shuffle"`
	Seed       uint64      `json:"seed"`           // shuffle and subsample seed
	Take       int64       `json:"take"`           // rows drawn without replacement; 0 = all
	Skip       int64       `json:"skip,omitempty"` // rows of the permutation left out before them
	// Excluded lists source ids left out after the selection (shardtool
	// build --exclude-ids, e.g. near-copies of test images found by
	// shardtool audit), sorted.
	Excluded []int64 `json:"excluded,omitempty"`
}

// InputFile is one file the dataset was built from.
type InputFile struct {
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
	XXH64 string `json:"xxh64"`
}

const formatName = "certmix-shards"

// Validate checks that the manifest is complete and self-consistent, and
// that every shard name stays inside the dataset's prefix. It bounds every
// size a reader would allocate from.
func (m *Manifest) Validate() error {
	if m.Format != formatName {
		return fmt.Errorf("format %q, want %q: %w", m.Format, formatName, ErrFormat)
	}
	if m.Version < 1 || m.Version > FormatVersion {
		return fmt.Errorf("version %d, this certmix reads 1..%d: %w", m.Version, FormatVersion, ErrVersion)
	}
	if err := m.Shape.Validate(); err != nil {
		return err
	}
	if m.Layout != Layout {
		return fmt.Errorf("layout %q, want %q: %w", m.Layout, Layout, ErrFormat)
	}
	if _, err := codecOption(m.Codec); err != nil {
		return err
	}
	if m.Kind != KindReal && m.Kind != KindGenerated {
		return fmt.Errorf("kind %q, want %q or %q: %w", m.Kind, KindReal, KindGenerated, ErrFormat)
	}
	if len(m.ClassCounts) != m.Classes {
		return fmt.Errorf("%d class counts for %d classes: %w", len(m.ClassCounts), m.Classes, ErrFormat)
	}
	var perClass, rows int64
	for _, c := range m.ClassCounts {
		if c < 0 || c > maxRows {
			return fmt.Errorf("class count %d outside 0..%d: %w", c, int64(maxRows), ErrFormat)
		}
		perClass += c
	}
	seen := make(map[string]bool, len(m.Shards))
	for i, s := range m.Shards {
		if err := checkName(s.Name); err != nil {
			return fmt.Errorf("shard %d: %w", i, err)
		}
		if seen[s.Name] || s.Name == ManifestName {
			return fmt.Errorf("shard %d: name %q used twice: %w", i, s.Name, ErrFormat)
		}
		seen[s.Name] = true
		if _, err := codecOption(s.Codec); err != nil {
			return fmt.Errorf("shard %s: %w", s.Name, err)
		}
		if s.Rows < 1 || s.Bytes < 1 || len(s.XXH64) != 16 {
			return fmt.Errorf("shard %s: rows %d, bytes %d, xxh64 %q: %w", s.Name, s.Rows, s.Bytes, s.XXH64, ErrFormat)
		}
		var batchRows int64
		end := int64(8) // after the file magic
		for j, b := range s.Batches {
			if b.Offset < end || b.Length < 1 || b.Length > s.Bytes-b.Offset || b.Rows < 1 || b.Rows > maxRows || len(b.XXH64) != 16 {
				return fmt.Errorf("shard %s batch %d: offset %d length %d rows %d in a %d-byte shard: %w",
					s.Name, j, b.Offset, b.Length, b.Rows, s.Bytes, ErrFormat)
			}
			end = b.Offset + b.Length
			if batchRows += b.Rows; batchRows > maxRows {
				return fmt.Errorf("shard %s: more than %d rows: %w", s.Name, int64(maxRows), ErrFormat)
			}
		}
		if batchRows != s.Rows {
			return fmt.Errorf("shard %s: batches hold %d rows, shard says %d: %w", s.Name, batchRows, s.Rows, ErrFormat)
		}
		if rows += s.Rows; rows > maxRows {
			return fmt.Errorf("more than %d rows: %w", int64(maxRows), ErrFormat)
		}
	}
	if m.Rows < 1 || len(m.Shards) == 0 {
		return fmt.Errorf("%d rows in %d shards: a dataset holds at least one row: %w", m.Rows, len(m.Shards), ErrFormat)
	}
	if p := m.Provenance.SourceRows; p != 0 && (p < m.Rows || p > 1<<40) {
		return fmt.Errorf("source rows %d for %d rows: %w", p, m.Rows, ErrFormat)
	}
	if rows != m.Rows || perClass != m.Rows {
		return fmt.Errorf("rows %d, shards hold %d, class counts sum to %d: %w", m.Rows, rows, perClass, ErrFormat)
	}
	return nil
}

// checkName refuses shard names that would leave the dataset's prefix.
func checkName(name string) error {
	switch {
	case name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.Contains(name, ":"):
		return fmt.Errorf("shard name %q must be a relative path inside the dataset: %w", name, ErrFormat)
	case path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../"):
		return fmt.Errorf("shard name %q must be a clean path inside the dataset: %w", name, ErrFormat)
	}
	return nil
}

// ReadManifest loads and validates the manifest of the dataset in store.
// A store without one is refused with ErrNoDataset.
func ReadManifest(ctx context.Context, store Store) (*Manifest, error) {
	obj, err := store.Open(ctx, ManifestName)
	if errors.Is(err, ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", store, ErrNoDataset)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: open manifest: %w", store, err)
	}
	defer obj.Close()
	if obj.Size() > maxManifestBytes {
		return nil, fmt.Errorf("%s/%s: %d bytes, more than the %d a manifest may have: %w", store, ManifestName, obj.Size(), maxManifestBytes, ErrFormat)
	}
	data := make([]byte, obj.Size())
	if _, err := obj.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s/%s: %w", store, ManifestName, err)
	}
	return parseManifest(data, fmt.Sprintf("%s/%s", store, ManifestName))
}

func parseManifest(data []byte, where string) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		// A newer version may add fields: report the version first.
		var probe struct{ Version int }
		if json.Unmarshal(data, &probe) == nil && probe.Version > FormatVersion {
			return nil, fmt.Errorf("%s: version %d, this certmix reads 1..%d: %w", where, probe.Version, FormatVersion, ErrVersion)
		}
		return nil, fmt.Errorf("%s: %v: %w", where, err, ErrFormat)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return &m, nil
}

// Marshal returns the manifest as indented JSON.
func (m *Manifest) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// WriteManifest validates m and stores it in one atomic Put: the moment the
// dataset becomes visible to readers. Shards put with deferred durability
// are synced first.
func WriteManifest(ctx context.Context, store Store, m *Manifest) error {
	m.Format, m.Version, m.Layout = formatName, FormatVersion, Layout
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%s: refusing to write an invalid manifest: %w", store, err)
	}
	if ds, ok := store.(DeferredStore); ok {
		if err := ds.Sync(ctx); err != nil {
			return err
		}
	}
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := store.Put(ctx, ManifestName, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("%s: write manifest: %w", store, err)
	}
	return nil
}
