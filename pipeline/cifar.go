package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"syscall"
)

const (
	cifarSide      = 32
	cifarImage     = 3 * cifarSide * cifarSide // bytes of one image, CHW or HWC
	cifarPlane     = cifarSide * cifarSide     // bytes of one colour plane
	cifarBatch     = 256                       // records fetched per ReadAt
	cifar10Rec     = 1 + cifarImage
	cifar100Rec    = 2 + cifarImage
	cifar100Coarse = 20
)

// OpenCIFAR10 streams the CIFAR-10 binary batch files at paths
// (data_batch_1.bin ... test_batch.bin), in the given order. Each 3073-byte
// record is a label in [0, 10) followed by a 32x32 RGB image stored as three
// colour planes; rows come out as HWC so every source has the same layout.
// File sizes are checked here, before any row is read, so a truncated
// download fails at once rather than after part of the output is written.
func OpenCIFAR10(paths ...string) (Source, error) {
	return cifarOpen("cifar10", paths, cifar10Rec, 10, 0)
}

// OpenCIFAR100 streams CIFAR-100 binary files (train.bin, test.bin). Each
// 3074-byte record holds a coarse label in [0, 20), a fine label in [0, 100)
// and a planar 32x32 RGB image. Labels are the fine classes; the superclasses
// go to Chunk.Coarse.
func OpenCIFAR100(paths ...string) (Source, error) {
	return cifarOpen("cifar100", paths, cifar100Rec, 100, cifar100Coarse)
}

// cifarSource reads fixed-size records from a list of files through a
// buffer of cifarBatch records, so reads stay large whatever n the caller
// passes to Read.
type cifarSource struct {
	info    Info
	files   []io.ReaderAt
	closers []io.Closer
	recs    []int64 // records in each file
	rec     int     // record size in bytes
	coarse  bool    // records start with a coarse label (CIFAR-100)
	batch   int     // records per buffer fill

	buf     []byte
	fi      int   // file that buf was filled from
	base    int64 // index within files[fi] of the record at buf[0]
	bufRecs int   // records held in buf
	bufPos  int   // next record of buf to deliver
	next    int64 // id of the next row
	err     error // sticky error; srcErrClosed after Close
}

func cifarOpen(format string, paths []string, rec, classes, coarse int) (Source, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("%s: no input files", format)
	}
	s := cifarNew(format, rec, classes, coarse)
	for _, p := range paths {
		f, size, err := srcOpenFile(p)
		if err == nil {
			err = s.add(p, f, f, size)
		}
		if err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// cifarNew returns a source with no files yet.
func cifarNew(format string, rec, classes, coarse int) *cifarSource {
	return &cifarSource{
		info: Info{Format: format, Height: cifarSide, Width: cifarSide, Channels: 3,
			Classes: classes, CoarseClasses: coarse},
		rec: rec, coarse: coarse > 0, batch: cifarBatch,
	}
}

// add appends the size bytes of r, read from the file at path, after the
// records already added; c is closed with the source.
func (s *cifarSource) add(path string, r io.ReaderAt, c io.Closer, size int64) error {
	s.closers = append(s.closers, c)
	rec := int64(s.rec)
	if size == 0 {
		return srcErrf(path, nil, "file is empty; want %d-byte %s records", rec, s.info.Format)
	}
	if size%rec != 0 {
		return srcErrf(path, nil, "size %d bytes is not a multiple of the %d-byte %s record; "+
			"a partial record of %d bytes starts at byte offset %d",
			size, rec, s.info.Format, size%rec, size-size%rec)
	}
	s.files = append(s.files, r)
	s.info.Files = append(s.info.Files, path)
	s.recs = append(s.recs, size/rec)
	s.info.Rows += size / rec
	return nil
}

// Info implements Source.
func (s *cifarSource) Info() Info { return s.info }

// Read implements Source.
func (s *cifarSource) Read(c *Chunk, n int) error {
	if err := srcCheckRead(s.err, n); err != nil {
		srcEmpty(c, s.next, s.coarse)
		return err
	}
	k := srcRowsFor(n, s.info.Rows-s.next, cifarImage)
	if k == 0 {
		srcEmpty(c, s.next, s.coarse)
		return io.EOF
	}
	srcResize(c, s.next, k, cifarImage, s.coarse)
	for i := 0; i < k; {
		if s.bufPos == s.bufRecs {
			if err := s.fill(); err != nil {
				s.err = err
				srcEmpty(c, s.next, s.coarse)
				return err
			}
		}
		m := min(k-i, s.bufRecs-s.bufPos)
		for j := range m {
			r := s.buf[(s.bufPos+j)*s.rec:][:s.rec]
			if err := s.labels(c, i+j, r, s.base+int64(s.bufPos+j)); err != nil {
				s.err = err
				srcEmpty(c, s.next, s.coarse)
				return err
			}
			cifarToHWC(c.Images[(i+j)*cifarImage:][:cifarImage], r[s.rec-cifarImage:])
		}
		i += m
		s.bufPos += m
	}
	s.next += int64(k)
	return nil
}

// labels checks the label bytes of record r, the rec-th of the current file,
// and stores them as row i of c.
func (s *cifarSource) labels(c *Chunk, i int, r []byte, rec int64) error {
	fine := 0
	if s.coarse {
		fine = 1
		if v := int(r[0]); v >= s.info.CoarseClasses {
			return s.labelErr(rec, 0, "coarse label", v, s.info.CoarseClasses)
		}
		c.Coarse[i] = int16(r[0])
	}
	if v := int(r[fine]); v >= s.info.Classes {
		return s.labelErr(rec, fine, "label", v, s.info.Classes)
	}
	c.Labels[i] = int16(r[fine])
	return nil
}

// labelErr reports label v of record rec of the current file, at byte at of
// the record, as outside [0, limit).
func (s *cifarSource) labelErr(rec int64, at int, what string, v, limit int) error {
	return srcErrf(s.info.Files[s.fi], nil, "record %d (id %d): %s %d at byte offset %d is outside [0, %d)",
		rec, s.id(rec), what, v, rec*int64(s.rec)+int64(at), limit)
}

// id returns the global id of record rec of the current file.
func (s *cifarSource) id(rec int64) int64 {
	for _, n := range s.recs[:s.fi] {
		rec += n
	}
	return rec
}

// fill loads the next records of the current file, moving on to the next
// file when this one is used up. Read never asks for more rows than remain.
func (s *cifarSource) fill() error {
	s.base += int64(s.bufRecs)
	s.bufRecs, s.bufPos = 0, 0
	for s.base == s.recs[s.fi] {
		s.fi++
		s.base = 0
	}
	if s.buf == nil {
		s.buf = make([]byte, int(min(int64(s.batch), slices.Max(s.recs)))*s.rec)
	}
	m := int(min(int64(s.batch), s.recs[s.fi]-s.base))
	got, err := s.files[s.fi].ReadAt(s.buf[:m*s.rec], s.base*int64(s.rec))
	if got < m*s.rec {
		rec := s.base + int64(got/s.rec)
		return srcErrf(s.info.Files[s.fi], srcNoEOF(err),
			"data ends within record %d (id %d) at byte offset %d; the file held %d records when opened",
			rec, s.id(rec), int64(got)+s.base*int64(s.rec), s.recs[s.fi])
	}
	s.bufRecs = m
	return nil
}

// Close implements Source.
func (s *cifarSource) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	s.closers = nil
	s.err = srcErrClosed
	return errors.Join(errs...)
}

// cifarToHWC converts one planar image (1024 R, 1024 G, 1024 B bytes) in src
// to interleaved RGB pixels in dst. Eight pixels at a time are gathered into
// three 64-bit words, so the loop does 24 byte loads but only 3 stores and no
// bounds checks; it is about twice as fast as a per-pixel byte loop.
func cifarToHWC(dst, src []byte) {
	dst = dst[:cifarImage:cifarImage]
	rp := src[:cifarPlane:cifarPlane]
	gp := src[cifarPlane : 2*cifarPlane : 2*cifarPlane]
	bp := src[2*cifarPlane : 3*cifarPlane : 3*cifarPlane]
	for i := 0; i < cifarPlane; i += 8 {
		r, g, b := rp[i:i+8:i+8], gp[i:i+8:i+8], bp[i:i+8:i+8]
		o := dst[3*i : 3*i+24 : 3*i+24]
		binary.LittleEndian.PutUint64(o[0:], uint64(r[0])|uint64(g[0])<<8|uint64(b[0])<<16|uint64(r[1])<<24|
			uint64(g[1])<<32|uint64(b[1])<<40|uint64(r[2])<<48|uint64(g[2])<<56)
		binary.LittleEndian.PutUint64(o[8:], uint64(b[2])|uint64(r[3])<<8|uint64(g[3])<<16|uint64(b[3])<<24|
			uint64(r[4])<<32|uint64(g[4])<<40|uint64(b[4])<<48|uint64(r[5])<<56)
		binary.LittleEndian.PutUint64(o[16:], uint64(g[5])|uint64(b[5])<<8|uint64(r[6])<<16|uint64(g[6])<<24|
			uint64(b[6])<<32|uint64(r[7])<<40|uint64(g[7])<<48|uint64(b[7])<<56)
	}
}

// The helpers below are shared by the CIFAR, NPZ and IDX sources.

// srcMaxRowBytes caps the bytes of one image that a header may declare, so a
// corrupt header cannot make Read allocate absurd chunks.
const srcMaxRowBytes = 1 << 26

// srcErrClosed is returned by Read after Close.
var srcErrClosed = errors.New("pipeline: source is closed")

// srcOpenFile opens a regular file for reading and returns its size. The
// error starts with the path and wraps fs.ErrNotExist when it is missing.
func srcOpenFile(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, 0, fmt.Errorf("%s: cannot open: %w", path, err)
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file (mode %v)", st.Mode())
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return f, st.Size(), nil
}

// srcErrf builds an error about the file at path: the message, then cause
// when there is one, then ErrFormat. An I/O failure reported by the system
// (a syscall.Errno) is not a format error, so then cause is wrapped without
// ErrFormat.
func srcErrf(path string, cause error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	var errno syscall.Errno
	switch {
	case cause == nil:
		return fmt.Errorf("%s: %s: %w", path, msg, ErrFormat)
	case errors.As(cause, &errno):
		return fmt.Errorf("%s: %s: %w", path, msg, cause)
	}
	return fmt.Errorf("%s: %s: %w: %w", path, msg, cause, ErrFormat)
}

// srcNoEOF turns the end of input in the middle of expected data into
// io.ErrUnexpectedEOF.
func srcNoEOF(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// srcCheckRead returns the sticky error of a source or rejects a bad n.
func srcCheckRead(sticky error, n int) error {
	if sticky != nil {
		return sticky
	}
	if n <= 0 {
		return fmt.Errorf("pipeline: Read of %d rows: n must be positive", n)
	}
	return nil
}

// srcRowsFor returns how many rows of rowBytes bytes the next chunk holds:
// at most n, at most left, and few enough for the image bytes to fit an int.
func srcRowsFor(n int, left int64, rowBytes int) int {
	k := min(int64(n), left, int64(math.MaxInt/rowBytes))
	return int(max(k, 0))
}

// srcResize makes c hold k rows starting at id first, reusing its capacity.
func srcResize(c *Chunk, first int64, k, rowBytes int, coarse bool) {
	c.First = first
	c.Labels = srcGrow(c.Labels, k)
	c.Images = srcGrow(c.Images, k*rowBytes)
	if coarse {
		c.Coarse = srcGrow(c.Coarse, k)
	} else {
		c.Coarse = nil
	}
}

// srcEmpty empties c, keeping its capacity; next is the id the next row
// would have.
func srcEmpty(c *Chunk, next int64, coarse bool) {
	srcResize(c, next, 0, 0, coarse)
}

// srcGrow returns s with length n, reallocating only when its capacity is
// too small.
func srcGrow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}
