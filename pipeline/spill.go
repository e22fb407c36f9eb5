package pipeline

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"

	"certmix/shards"
)

// The build writes rows in key order without holding the input in memory:
// pass one deals every selected row into one of K buckets by key range (the
// keys are uniform, so buckets are of nearly equal size), spilling buckets to
// temporary files when the rows do not fit the memory budget; pass two loads
// one bucket at a time, sorts it by key, and emits its rows. Concatenating
// the sorted buckets gives the rows in global key order.

// A spilled record: key, id, label, coarse label, then the image, unless
// the source can read images by id (ImageReaderAt): then pass two reads
// them straight from the source and the spill holds 20 bytes a row.
const recHeader = 8 + 8 + 2 + 2

type buckets struct {
	recBytes int
	minKey   uint64   // smallest key selected
	maxKey   uint64   // largest key selected
	rows     []int64  // rows dealt to each bucket
	width    uint64   // key range of one bucket
	mem      [][]byte // in-memory buckets (when k == 1)
	files    []*os.File
	writers  []*bufio.Writer
}

// newBuckets prepares k buckets covering keys [minKey, maxKey], for records of
// imageBytes pixels (0 to spill the index alone). With k > 1 the buckets are
// files in dir, removed by close.
func newBuckets(k int, minKey, maxKey uint64, imageBytes int, dir string) (*buckets, error) {
	b := &buckets{recBytes: recHeader + imageBytes, minKey: minKey, maxKey: maxKey, width: (maxKey-minKey)/uint64(k) + 1, rows: make([]int64, k)}
	if k == 1 {
		b.mem = make([][]byte, 1)
		return b, nil
	}
	bufSize := max(4<<10, min(1<<20, (16<<20)/k)) // 16 MiB in all, whatever k, so memory stays flat
	for i := range k {
		f, err := os.CreateTemp(dir, fmt.Sprintf("certmix-shuffle-%03d-*", i))
		if err != nil {
			b.close()
			return nil, fmt.Errorf("shuffle spill: %w", err)
		}
		b.files = append(b.files, f)
		b.writers = append(b.writers, bufio.NewWriterSize(f, bufSize))
	}
	return b, nil
}

func (b *buckets) count() int { return max(len(b.mem), len(b.files)) }

// add appends one row to the bucket of its key; rec is scratch of recBytes.
func (b *buckets) add(rec []byte, key uint64, id int64, label, coarse int16, image []byte) error {
	binary.LittleEndian.PutUint64(rec[0:], key)
	binary.LittleEndian.PutUint64(rec[8:], uint64(id))
	binary.LittleEndian.PutUint16(rec[16:], uint16(label))
	binary.LittleEndian.PutUint16(rec[18:], uint16(coarse))
	copy(rec[recHeader:], image) // nothing when the images stay in the source
	if b.mem != nil {
		b.mem[0] = append(b.mem[0], rec...)
		b.rows[0]++
		return nil
	}
	i := int((key - b.minKey) / b.width)
	b.rows[i]++
	if _, err := b.writers[i].Write(rec); err != nil {
		return fmt.Errorf("shuffle spill %s: %w", b.files[i].Name(), err)
	}
	return nil
}

// finish flushes the spill files, ready for load.
func (b *buckets) finish() error {
	for i, w := range b.writers {
		if err := w.Flush(); err != nil {
			return fmt.Errorf("shuffle spill %s: %w", b.files[i].Name(), err)
		}
	}
	return nil
}

// load returns bucket i's records and their positions sorted by key,
// reusing buf and pos, and releases the bucket's memory or file.
func (b *buckets) load(i int, buf []byte, pos []int32) ([]byte, []int32, error) {
	if b.mem != nil {
		buf, b.mem[i] = b.mem[i], nil
	} else {
		f := b.files[i]
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, nil, fmt.Errorf("shuffle spill %s: %w", f.Name(), err)
		}
		buf = slices.Grow(buf[:0], int(size))[:size]
		if _, err := f.ReadAt(buf, 0); err != nil {
			return nil, nil, fmt.Errorf("shuffle spill %s: %w", f.Name(), err)
		}
		f.Close()
		os.Remove(f.Name())
		b.files[i] = nil
	}
	n := len(buf) / b.recBytes
	pos = slices.Grow(pos[:0], n)[:n]
	for j := range pos {
		pos[j] = int32(j)
	}
	key := func(j int32) uint64 { return binary.LittleEndian.Uint64(buf[int(j)*b.recBytes:]) }
	slices.SortFunc(pos, func(x, y int32) int { return cmp.Compare(key(x), key(y)) })
	return buf, pos, nil
}

// appendRecord decodes one record onto rows; the image, if the record has
// none, is read from src.
func appendRecord(rows *shards.Rows, rec []byte, coarse bool, src ImageReaderAt, imageBytes int) error {
	id := int64(binary.LittleEndian.Uint64(rec[8:]))
	rows.IDs = append(rows.IDs, id)
	rows.Labels = append(rows.Labels, int16(binary.LittleEndian.Uint16(rec[16:])))
	if coarse {
		rows.Coarse = append(rows.Coarse, int16(binary.LittleEndian.Uint16(rec[18:])))
	}
	if src == nil {
		rows.Images = append(rows.Images, rec[recHeader:]...)
		return nil
	}
	n := len(rows.Images)
	rows.Images = rows.Images[:n+imageBytes]
	return src.ReadImageAt(rows.Images[n:], id)
}

// close removes every spill file left.
func (b *buckets) close() {
	for _, f := range b.files {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}
	b.mem = nil
}
