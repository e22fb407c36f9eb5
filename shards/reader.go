package shards

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cespare/xxhash/v2"
)

// Dataset is an open dataset: its manifest and the store that holds its shards.
// Every read checks the bytes against the manifest's checksums, so plain
// reads and Verify share one code path. A Dataset is safe for concurrent use.
type Dataset struct {
	Manifest *Manifest
	store    Store

	mu        sync.Mutex
	schemaMsg []byte // the schema's IPC stream message, to decode lone record batches
}

// Open opens the dataset at url (a local path, file://path or s3://bucket/prefix).
func Open(ctx context.Context, url string, cfg S3Config) (*Dataset, error) {
	store, err := OpenStore(ctx, url, cfg)
	if err != nil {
		return nil, err
	}
	return OpenDataset(ctx, store)
}

// OpenDataset opens the dataset held by store. A store without a manifest
// is refused with ErrNoDataset.
func OpenDataset(ctx context.Context, store Store) (*Dataset, error) {
	m, err := ReadManifest(ctx, store)
	if err != nil {
		return nil, err
	}
	return &Dataset{Manifest: m, store: store}, nil
}

// Store returns the store that holds the dataset.
func (d *Dataset) Store() Store { return d.store }

// String returns the dataset's URL.
func (d *Dataset) String() string { return d.store.String() }

// ReadShard fetches shard i whole, checks its size and checksum, and decodes
// all its rows into dst (reusing dst's capacity).
func (d *Dataset) ReadShard(ctx context.Context, i int, dst *Rows) error {
	s := d.Manifest.Shards[i]
	data, err := d.fetch(ctx, s.Name, 0, s.Bytes, s.XXH64)
	if err != nil {
		return err
	}
	// The ranges that ReadBatch reads must hold what the manifest says too.
	for j, b := range s.Batches {
		if got := hex64(xxhash.Sum64(data[b.Offset : b.Offset+b.Length])); got != b.XXH64 {
			return fmt.Errorf("%s/%s batch %d: bytes %d..%d have xxh64 %s, manifest says %s: %w", d.store, s.Name, j, b.Offset, b.Offset+b.Length, got, b.XXH64, ErrChecksum)
		}
	}
	fr, err := ipc.NewMappedFileReader(data)
	if err != nil {
		return fmt.Errorf("%s/%s: %v: %w", d.store, s.Name, err, ErrFormat)
	}
	defer fr.Close()
	if fr.NumRecords() != len(s.Batches) {
		return fmt.Errorf("%s/%s: %d record batches, manifest lists %d: %w", d.store, s.Name, fr.NumRecords(), len(s.Batches), ErrFormat)
	}
	dst.Reset()
	for j := range fr.NumRecords() {
		rec, err := fr.RecordBatchAt(j)
		if err != nil {
			return fmt.Errorf("%s/%s batch %d: %v: %w", d.store, s.Name, j, err, ErrFormat)
		}
		err = d.appendRows(dst, rec, s.Batches[j].Rows, false)
		rec.Release()
		if err != nil {
			return fmt.Errorf("%s/%s batch %d: %w", d.store, s.Name, j, err)
		}
	}
	if int64(dst.Len()) != s.Rows {
		return fmt.Errorf("%s/%s: %d rows, manifest says %d: %w", d.store, s.Name, dst.Len(), s.Rows, ErrFormat)
	}
	return nil
}

// ReadBatch fetches record batch j of shard i with one range read, checks
// its checksum, and appends its rows to dst. When dst is empty and the batch
// is stored uncompressed, dst's columns share the fetched bytes instead of
// copying them (their capacity is capped, so a later append copies): treat
// them as read-only.
func (d *Dataset) ReadBatch(ctx context.Context, i, j int, dst *Rows) error {
	s := d.Manifest.Shards[i]
	b := s.Batches[j]
	schema, err := d.schemaMessage(ctx)
	if err != nil {
		return err
	}
	data, err := d.fetch(ctx, s.Name, b.Offset, b.Length, b.XXH64)
	if err != nil {
		return fmt.Errorf("batch %d: %w", j, err)
	}
	fail := func(err error) error {
		return fmt.Errorf("%s/%s batch %d at offset %d: %v: %w", d.store, s.Name, j, b.Offset, err, ErrFormat)
	}
	r, err := ipc.NewReaderFromMessageReader(&memMessages{msgs: [][]byte{schema, data}},
		ipc.WithSchema(d.Manifest.Schema()), ipc.WithAllocator(memory.NewGoAllocator()))
	if err != nil {
		return fail(err)
	}
	defer r.Release()
	if !r.Next() {
		return fail(fmt.Errorf("no record batch (%v)", r.Err()))
	}
	if err := d.appendRows(dst, r.RecordBatch(), b.Rows, dst.Len() == 0); err != nil {
		return fmt.Errorf("%s/%s batch %d: %w", d.store, s.Name, j, err)
	}
	return nil
}

// memMessages yields encapsulated IPC messages held in memory, their bodies
// shared, not copied.
type memMessages struct {
	msgs [][]byte
	next int
}

func (m *memMessages) Message() (msg *ipc.Message, err error) {
	if m.next == len(m.msgs) {
		return nil, io.EOF
	}
	b := m.msgs[m.next]
	m.next++
	if len(b) < 8 || binary.LittleEndian.Uint32(b) != 0xFFFFFFFF {
		return nil, errors.New("no IPC message continuation marker")
	}
	n := int64(binary.LittleEndian.Uint32(b[4:]))
	if n < 4 || 8+n > int64(len(b)) {
		return nil, fmt.Errorf("IPC message metadata of %d bytes in a %d-byte message", n, len(b))
	}
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("invalid IPC message metadata: %v", r)
		}
	}()
	return ipc.NewMessage(memory.NewBufferBytes(b[8:8+n]), memory.NewBufferBytes(b[8+n:])), nil
}

func (m *memMessages) Release() {}
func (m *memMessages) Retain()  {}

// schemaMessage returns the schema's encapsulated IPC message, which precedes
// every record batch in a shard; it is read from the first shard on first
// use and kept once read (a failed or cancelled read is tried again next time).
func (d *Dataset) schemaMessage(ctx context.Context) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.schemaMsg != nil {
		return d.schemaMsg, nil
	}
	if len(d.Manifest.Shards) == 0 {
		return nil, fmt.Errorf("%s: dataset has no shards: %w", d.store, ErrFormat)
	}
	s := d.Manifest.Shards[0]
	obj, err := d.store.Open(ctx, s.Name)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", d.store, s.Name, err)
	}
	defer obj.Close()
	n := s.Batches[0].Offset - 8
	if n < 8 || n > 1<<20 {
		return nil, fmt.Errorf("%s/%s: schema message of %d bytes: %w", d.store, s.Name, n, ErrFormat)
	}
	buf := make([]byte, n)
	if _, err := obj.ReadAt(buf, 8); err != nil {
		return nil, fmt.Errorf("%s/%s: read schema: %w", d.store, s.Name, err)
	}
	d.schemaMsg = buf
	return buf, nil
}

// fetch reads length bytes at off of object name and checks their xxhash64.
func (d *Dataset) fetch(ctx context.Context, name string, off, length int64, sum string) ([]byte, error) {
	obj, err := d.store.Open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", d.store, name, err)
	}
	defer obj.Close()
	if off < 0 || length < 0 || off > obj.Size()-length {
		return nil, fmt.Errorf("%s/%s: %d bytes, need %d (truncated?): %w", d.store, name, obj.Size(), off+length, ErrChecksum)
	}
	data := make([]byte, length)
	if _, err := obj.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s/%s: read %d bytes at %d: %w", d.store, name, length, off, err)
	}
	if got := hex64(xxhash.Sum64(data)); got != sum {
		return nil, fmt.Errorf("%s/%s: bytes %d..%d have xxh64 %s, manifest says %s: %w", d.store, name, off, off+length, got, sum, ErrChecksum)
	}
	return data, nil
}

// appendRows copies a decoded record batch onto dst after checking its schema
// and row count; with share, dst takes the batch's columns without a copy.
func (d *Dataset) appendRows(dst *Rows, rec arrow.RecordBatch, want int64, share bool) error {
	m := d.Manifest
	if !rec.Schema().Equal(m.Schema()) {
		return fmt.Errorf("schema %v differs from the manifest's: %w", rec.Schema(), ErrFormat)
	}
	if rec.NumRows() != want {
		return fmt.Errorf("%d rows, manifest says %d: %w", rec.NumRows(), want, ErrFormat)
	}
	for i, c := range rec.Columns() {
		if c.NullN() > 0 {
			return fmt.Errorf("column %s holds %d nulls: %w", rec.ColumnName(i), c.NullN(), ErrFormat)
		}
	}
	col := 0
	next := func() arrow.Array { c := rec.Column(col); col++; return c }
	ids := next().(*array.Int64).Int64Values()
	labels := next().(*array.Int16).Int16Values()
	var coarse []int16
	if m.CoarseClasses > 0 {
		coarse = next().(*array.Int16).Int16Values()
	}
	img := next().(*array.FixedSizeBinary)
	n := int(rec.NumRows()) * m.ImageBytes()
	var vals []byte
	if b := img.Data().Buffers()[1]; b != nil {
		vals = b.Bytes()[min(img.Data().Offset()*m.ImageBytes(), b.Len()):]
	}
	if len(vals) < n || len(ids) != int(want) || len(labels) != int(want) || len(coarse) != int(want)*min(m.CoarseClasses, 1) {
		return fmt.Errorf("columns hold %d ids, %d labels, %d coarse labels, %d image bytes for %d rows: %w", len(ids), len(labels), len(coarse), len(vals), want, ErrFormat)
	}
	if share {
		dst.IDs, dst.Labels, dst.Images = ids[:want:want], labels[:want:want], vals[:n:n]
		if coarse != nil {
			dst.Coarse = coarse[:want:want]
		}
		return nil
	}
	dst.IDs = append(dst.IDs, ids...)
	dst.Labels = append(dst.Labels, labels...)
	if coarse != nil {
		dst.Coarse = append(dst.Coarse, coarse...)
	}
	dst.Images = append(dst.Images, vals[:n]...)
	return nil
}
