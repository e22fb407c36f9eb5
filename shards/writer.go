package shards

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cespare/xxhash/v2"
	"golang.org/x/sync/errgroup"
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
// batchRows rows, and stores it under name. The bytes stream to the store as
// they are encoded. It returns the shard's manifest entry.
func WriteShard(ctx context.Context, store Store, name string, shape Shape, codec string, batchRows int, rows *Rows) (ShardInfo, error) {
	info := ShardInfo{Name: name, Rows: int64(rows.Len())}
	if rows.Len() == 0 {
		return info, fmt.Errorf("shard %s: no rows", name)
	}
	if batchRows < 1 {
		batchRows = DefaultBatchRows
	}
	opts, err := codecOption(codec)
	if err != nil {
		return info, err
	}
	info.FirstID, info.LastID = rows.IDs[0], rows.IDs[rows.Len()-1]

	pr, pw := io.Pipe()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		sink := newShardSink(pw)
		err := encodeShard(sink, shape, opts, batchRows, rows, &info)
		if err == nil {
			info.Bytes, info.XXH64 = sink.pos, hex64(sink.whole.Sum64())
		}
		pw.CloseWithError(err)
		return err
	})
	g.Go(func() error {
		err := store.Put(gctx, name, pr, -1)
		pr.CloseWithError(err) // unblocks the encoder if Put gave up early
		return err
	})
	if err := g.Wait(); err != nil {
		return info, fmt.Errorf("write shard %s/%s: %w", store, name, err)
	}
	return info, nil
}

func encodeShard(sink *shardSink, shape Shape, opts []ipc.Option, batchRows int, rows *Rows, info *ShardInfo) error {
	schema := shape.Schema()
	fw, err := ipc.NewFileWriter(sink, append(opts, ipc.WithSchema(schema))...)
	if err != nil {
		return err
	}
	ib := shape.ImageBytes()
	for lo := 0; lo < rows.Len(); lo += batchRows {
		hi := min(lo+batchRows, rows.Len())
		part := rows.slice(lo, hi, ib)
		rec := record(schema, shape, &part)
		err := fw.Write(rec)
		rec.Release()
		if err != nil {
			return err
		}
		info.Batches = append(info.Batches, sink.endBlock(int64(hi-lo)))
	}
	return fw.Close()
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
