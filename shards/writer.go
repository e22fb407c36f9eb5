package shards

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// Codecs for the body compression of shards.
const (
	CodecZstd = "zstd"
	CodecLZ4  = "lz4"
	CodecNone = "none"
)

// DefaultBatchRows is the number of rows per record batch: large enough to
// compress well, small enough (12 MiB of CIFAR images) to fetch by range.
const DefaultBatchRows = 4096

func codecOption(codec string) ([]ipc.Option, error) {
	switch codec {
	case CodecZstd:
		return []ipc.Option{ipc.WithZstd()}, nil
	case CodecLZ4:
		return []ipc.Option{ipc.WithLZ4()}, nil
	case CodecNone:
		return nil, nil
	}
	return nil, fmt.Errorf("codec %q, want %s, %s or %s: %w", codec, CodecZstd, CodecLZ4, CodecNone, ErrFormat)
}

// WriteShard encodes rows as one Arrow IPC file, in record batches of
// batchRows rows, and stores it under name. It returns the shard's manifest
// entry.
func WriteShard(ctx context.Context, store Store, name string, shape Shape, codec string, batchRows int, rows *Rows) (ShardInfo, error) {
	if batchRows < 1 {
		batchRows = DefaultBatchRows
	}
	w, err := NewShardWriter(ctx, store, name, shape, codec)
	if err != nil {
		return ShardInfo{Name: name}, err
	}
	ib := shape.ImageBytes()
	for lo := 0; lo < rows.Len(); lo += batchRows {
		part := rows.slice(lo, min(lo+batchRows, rows.Len()), ib)
		if err := w.Write(&part); err != nil {
			return ShardInfo{Name: name}, err
		}
	}
	return w.Close()
}

// ShardWriter streams one shard to a store, one record batch per Write, so
// that a shard is never held whole in memory. The object appears in the
// store only when Close succeeds; after an error, or Abort, nothing is stored.
type ShardWriter struct {
	name   string
	codec  string
	shape  Shape
	schema *arrow.Schema
	info   ShardInfo
	sink   *shardSink
	fw     *ipc.FileWriter
	pw     *io.PipeWriter
	done   chan error // the Put's result
	err    error
}

// NewShardWriter starts storing shard name in store. With codec zstd or
// lz4, the first batch decides: if a zstd pass over a sample of its images
// saves less than 3%, as for raw colour thumbnails, the shard is stored
// uncompressed (ShardInfo.Codec says so) and no time is spent compressing
// what does not compress.
func NewShardWriter(ctx context.Context, store Store, name string, shape Shape, codec string) (*ShardWriter, error) {
	if _, err := codecOption(codec); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	w := &ShardWriter{name: name, shape: shape, schema: shape.Schema(), codec: codec,
		info: ShardInfo{Name: name}, sink: newShardSink(pw), pw: pw, done: make(chan error, 1)}
	put := store.Put
	if ds, ok := store.(DeferredStore); ok {
		put = ds.PutDeferred // WriteManifest syncs
	}
	go func() {
		err := put(ctx, name, pr, -1)
		if err != nil {
			err = fmt.Errorf("write shard %s/%s: %w", store, name, err)
		}
		pr.CloseWithError(err) // unblocks the encoder if Put gave up early
		w.done <- err
	}()
	return w, nil
}

// Write appends rows to the shard as one record batch.
func (w *ShardWriter) Write(rows *Rows) error {
	if w.err != nil {
		return w.err
	}
	if rows.Len() == 0 {
		return nil
	}
	if w.fw == nil {
		if w.codec != CodecNone && !compressible(rows.Images) {
			w.codec = CodecNone
		}
		opts, _ := codecOption(w.codec)
		fw, err := ipc.NewFileWriter(w.sink, append(opts, ipc.WithSchema(w.schema))...)
		if err != nil {
			w.fail(err)
			return w.err
		}
		w.fw, w.info.Codec, w.info.FirstID = fw, w.codec, rows.IDs[0]
	}
	w.info.LastID = rows.IDs[rows.Len()-1]
	rec := record(w.schema, w.shape, rows)
	err := w.fw.Write(rec)
	rec.Release()
	if err != nil {
		w.fail(err)
		return w.err
	}
	w.info.Rows += int64(rows.Len())
	w.info.Batches = append(w.info.Batches, w.sink.endBlock(int64(rows.Len())))
	return nil
}

// sampleEncoder compresses samples to decide whether a shard compresses.
var sampleEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))

// compressible reports whether zstd saves at least 3% on a sample of images.
func compressible(images []byte) bool {
	sample := images[:min(len(images), 256<<10)]
	out := sampleEncoder.EncodeAll(sample, make([]byte, 0, len(sample)))
	return len(out) < len(sample)*97/100
}

// Close finishes the file, waits until the store holds it, and returns the
// shard's manifest entry.
func (w *ShardWriter) Close() (ShardInfo, error) {
	if w.err == nil && w.info.Rows == 0 {
		w.fail(errors.New("no rows"))
	}
	if w.err != nil {
		return w.info, w.err
	}
	if err := w.fw.Close(); err != nil {
		w.fail(err)
		return w.info, w.err
	}
	w.pw.Close()
	if err := <-w.done; err != nil {
		w.err = err
		return w.info, err
	}
	w.info.Bytes, w.info.XXH64 = w.sink.pos, hex64(w.sink.whole.Sum64())
	return w.info, nil
}

// Abort gives the shard up: nothing is stored. It is a no-op after Close.
func (w *ShardWriter) Abort() {
	if w.err == nil && w.info.Bytes == 0 {
		w.fail(errors.New("aborted"))
	}
}

// fail records err, stops the Put (which then stores nothing) and waits for it.
func (w *ShardWriter) fail(err error) {
	w.err = fmt.Errorf("write shard %s: %w", w.name, err)
	w.pw.CloseWithError(w.err)
	if perr := <-w.done; perr != nil && !errors.Is(perr, w.err) {
		w.err = perr
	}
}

// record wraps rows in an Arrow record batch without copying them.
func record(schema *arrow.Schema, shape Shape, r *Rows) arrow.RecordBatch {
	n := r.Len()
	cols := []arrow.Array{
		array.NewInt64Data(array.NewData(arrow.PrimitiveTypes.Int64, n,
			[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(r.IDs))}, nil, 0, 0)),
		array.NewInt16Data(array.NewData(arrow.PrimitiveTypes.Int16, n,
			[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int16Traits.CastToBytes(r.Labels))}, nil, 0, 0)),
	}
	if shape.CoarseClasses > 0 {
		cols = append(cols, array.NewInt16Data(array.NewData(arrow.PrimitiveTypes.Int16, n,
			[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int16Traits.CastToBytes(r.Coarse))}, nil, 0, 0)))
	}
	cols = append(cols, array.NewFixedSizeBinaryData(array.NewData(schema.Field(len(cols)).Type, n,
		[]*memory.Buffer{nil, memory.NewBufferBytes(r.Images)}, nil, 0, 0)))
	rec := array.NewRecordBatch(schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

// shardSink counts and hashes the bytes of a shard as they stream out, and
// cuts the per-batch hashes at record batch boundaries. The first batch
// starts after the file magic (8 bytes) and the schema message, whose
// length it reads from the message prefix (continuation marker, length).
type shardSink struct {
	w          io.Writer
	pos        int64
	head       [16]byte
	whole      *xxhash.Digest
	block      *xxhash.Digest
	blockStart int64 // -1 until the schema message's length is known
}

func newShardSink(w io.Writer) *shardSink {
	return &shardSink{w: w, whole: xxhash.New(), block: xxhash.New(), blockStart: -1}
}

func (s *shardSink) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	p = p[:n]
	s.whole.Write(p)
	start := s.pos
	if start < int64(len(s.head)) {
		copy(s.head[start:], p)
	}
	s.pos += int64(n)
	if s.blockStart < 0 && s.pos >= int64(len(s.head)) {
		s.blockStart = int64(len(s.head)) + int64(binary.LittleEndian.Uint32(s.head[12:]))
	}
	if s.blockStart >= 0 && s.pos > s.blockStart {
		s.block.Write(p[max(s.blockStart-start, 0):])
	}
	return n, err
}

// endBlock closes the record batch that ends at the current position.
func (s *shardSink) endBlock(rows int64) BatchInfo {
	b := BatchInfo{Offset: s.blockStart, Length: s.pos - s.blockStart, Rows: rows, XXH64: hex64(s.block.Sum64())}
	s.block.Reset()
	s.blockStart = s.pos
	return b
}

func hex64(v uint64) string { return fmt.Sprintf("%016x", v) }
