package pipeline

import (
	"archive/zip"
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strings"

	"github.com/klauspost/compress/flate"

	"certmix/internal/npy"
)

const (
	npzImageBuf    = 1 << 20   // read-ahead of image.npy
	npzLabelBuf    = 64 << 10  // read-ahead of label.npy
	npzInflateBuf  = 256 << 10 // compressed input buffered per deflated member
	npzMaxClasses  = math.MaxInt16 + 1
	npzMaxInflated = 1032 // deflate's largest expansion ratio
)

// OpenNPZ streams a numpy .npz archive written by np.savez or
// np.savez_compressed with an 'image' array of uint8, shape (N, H, W, C) in
// C order, and a 'label' array of any integer dtype and shape (N,), whose
// values must lie in [0, classes). Both members are read in lockstep
// straight from the archive: stored members in place with large reads,
// deflated ones through a streaming decompressor, so memory stays a few MiB
// whatever N. Headers, dtypes, shapes and member sizes are checked here,
// before any row is read; labels and CRC-32s are checked as rows stream.
func OpenNPZ(path string, classes int) (Source, error) {
	if classes <= 0 || classes > npzMaxClasses {
		return nil, fmt.Errorf("%s: classes %d is outside [1, %d]", path, classes, npzMaxClasses)
	}
	f, size, err := srcOpenFile(path)
	if err != nil {
		return nil, err
	}
	return npzNew(path, f, f, size, classes)
}

// npzNew streams the size-byte archive r, read from the file at path; c is
// closed with the source, or at once when the archive is rejected.
func npzNew(path string, r io.ReaderAt, c io.Closer, size int64, classes int) (Source, error) {
	s := &npzSource{r: r, closer: c, path: path, classes: classes}
	if err := s.open(size); err != nil {
		s.Close()
		return nil, err
	}
	if s.img.stored >= 0 {
		return npzStored{s}, nil
	}
	return s, nil
}

// npzStored is an npz source whose images are stored uncompressed, so that
// any image can be read in place (ImageReaderAt).
type npzStored struct{ *npzSource }

// ReadImageAt copies the pixels of row id into dst with one positioned
// read. The member's CRC-32 is checked by the sequential Read, not here.
func (s npzStored) ReadImageAt(dst []byte, id int64) error {
	if id < 0 || id >= s.info.Rows || len(dst) != s.rowBytes {
		return fmt.Errorf("%s: image %d (%d bytes) outside %d images of %d bytes", s.path, id, len(dst), s.info.Rows, s.rowBytes)
	}
	off := s.img.stored + s.img.hdr.Len + id*int64(s.rowBytes)
	if _, err := s.r.ReadAt(dst, off); err != nil {
		return fmt.Errorf("%s: image %d at byte offset %d: %w", s.path, id, off, err)
	}
	return nil
}

// npzSource reads rows of the image and label members of one archive.
type npzSource struct {
	info     Info
	path     string
	r        io.ReaderAt
	closer   io.Closer
	img, lab *npzMember
	classes  int
	rowBytes int
	next     int64
	labBuf   []byte
	err      error // sticky; srcErrClosed after Close
}

// npzMember is one .npy member, positioned after its header.
type npzMember struct {
	name   string
	r      io.Reader
	closer io.Closer // the decompressor of a deflated member, or nil
	stored int64     // byte offset of a stored member's data in the archive; -1 when deflated
	hdr    npy.Header
	size   int64 // uncompressed bytes, header included
}

func (s *npzSource) open(size int64) error {
	zr, err := zip.NewReader(s.r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return srcErrf(s.path, err, "not a zip archive (is the .npz truncated?)")
	}
	zr.RegisterDecompressor(zip.Deflate, npzInflate)
	if s.img, err = s.member(zr, size, "image", npzImageBuf); err != nil {
		return err
	}
	if s.lab, err = s.member(zr, size, "label", npzLabelBuf); err != nil {
		return err
	}
	if err := s.checkImage(); err != nil {
		return err
	}
	if err := s.checkLabel(); err != nil {
		return err
	}
	sh := s.img.hdr.Shape
	s.rowBytes = int(sh[1] * sh[2] * sh[3])
	s.info = Info{Format: "npz", Height: int(sh[1]), Width: int(sh[2]), Channels: int(sh[3]),
		Classes: s.classes, Rows: sh[0], Files: []string{s.path}}
	return nil
}

// npzInflate is the archive's deflate decompressor: klauspost's inflater,
// fed from a large buffer so the file is read in big pieces.
func npzInflate(r io.Reader) io.ReadCloser {
	return &npzSplitEOF{ReadCloser: flate.NewReader(bufio.NewReaderSize(r, npzInflateBuf))}
}

// npzSplitEOF delays an io.EOF that comes with data to the next Read:
// archive/zip drops the data of such a Read when the stream is shorter than
// the directory says, and the error could then not name the right record.
type npzSplitEOF struct {
	io.ReadCloser
	eof bool
}

func (r *npzSplitEOF) Read(p []byte) (int, error) {
	if r.eof {
		return 0, io.EOF
	}
	n, err := r.ReadCloser.Read(p)
	if n > 0 && err == io.EOF {
		r.eof, err = true, nil
	}
	return n, err
}

// member finds the array key (as np.savez names it, key + ".npy"), opens
// it for streaming and parses its .npy header.
func (s *npzSource) member(zr *zip.Reader, fileSize int64, key string, bufSize int) (*npzMember, error) {
	var zf *zip.File
	for _, f := range zr.File {
		if f.Name == key+".npy" || f.Name == key {
			if zf != nil {
				return nil, srcErrf(s.path, nil, "archive has two %q members", key)
			}
			zf = f
		}
	}
	if zf == nil {
		var names []string
		for _, f := range zr.File {
			names = append(names, f.Name)
		}
		return nil, srcErrf(s.path, nil, "no %s.npy member (members: %s)", key, strings.Join(names, ", "))
	}
	m := &npzMember{name: zf.Name, size: int64(zf.UncompressedSize64), stored: -1}
	off, err := zf.DataOffset()
	if err != nil {
		return nil, srcErrf(s.path, err, "%s: bad local header", m.name)
	}
	csize := zf.CompressedSize64
	if m.size < 0 || csize > uint64(fileSize) || off > fileSize-int64(csize) {
		return nil, srcErrf(s.path, nil, "%s: %d bytes of data at byte offset %d run past the end of the %d-byte file",
			m.name, csize, off, fileSize)
	}
	switch zf.Method {
	case zip.Store:
		if csize != zf.UncompressedSize64 {
			return nil, srcErrf(s.path, nil, "%s: stored member has compressed size %d but size %d",
				m.name, csize, m.size)
		}
		sr := io.NewSectionReader(s.r, off, m.size)
		m.stored = off
		m.r = bufio.NewReaderSize(&npzCRCReader{r: sr, want: zf.CRC32}, bufSize)
	case zip.Deflate:
		if zf.UncompressedSize64/npzMaxInflated > csize+1 {
			return nil, srcErrf(s.path, nil, "%s: %d compressed bytes cannot inflate to the declared %d bytes",
				m.name, csize, zf.UncompressedSize64)
		}
		rc, err := zf.Open()
		if err != nil {
			return nil, srcErrf(s.path, err, "%s", m.name)
		}
		m.r, m.closer = rc, rc
	default:
		return nil, srcErrf(s.path, nil, "%s: unsupported zip compression method %d", m.name, zf.Method)
	}
	if m.hdr, err = npy.ReadHeader(m.r, m.size); err != nil {
		if m.closer != nil {
			m.closer.Close()
		}
		return nil, srcErrf(s.path, err, "%s", m.name)
	}
	return m, nil
}

// checkImage accepts uint8 data of shape (N, H, W, C) in C order that
// exactly fills the member.
func (s *npzSource) checkImage() error {
	h := s.img.hdr
	switch {
	case h.DType.Kind != 'u' || h.DType.Size != 1:
		return srcErrf(s.path, nil, "%s: dtype %q, want '|u1' (uint8)", s.img.name, h.DType.Str)
	case h.Fortran:
		return srcErrf(s.path, nil, "%s: fortran_order is True; save a C-ordered array (np.ascontiguousarray)", s.img.name)
	case len(h.Shape) != 4:
		return srcErrf(s.path, nil, "%s: shape %v, want 4 dimensions (N, H, W, C)", s.img.name, h.Shape)
	}
	if _, ok := npy.Count(h.Shape[1:], srcMaxRowBytes); !ok || min(h.Shape[1], h.Shape[2], h.Shape[3]) == 0 {
		return srcErrf(s.path, nil, "%s: image shape %v must be non-empty and at most %d bytes",
			s.img.name, h.Shape[1:], srcMaxRowBytes)
	}
	if c := h.Shape[3]; c > npzMaxChannels {
		hint := ""
		if h.Shape[1] <= npzMaxChannels {
			hint = "; it looks like NCHW (N, C, H, W): save it as NHWC with np.transpose(image, (0, 2, 3, 1))"
		}
		return srcErrf(s.path, nil, "%s: shape %v has %d channels on its last axis, want 1..%d in (N, H, W, C)%s",
			s.img.name, h.Shape, c, npzMaxChannels, hint)
	}
	return s.checkSize(s.img, h.Shape[1]*h.Shape[2]*h.Shape[3])
}

// npzMaxChannels is the most channels a dataset holds (shards.Shape's limit).
const npzMaxChannels = 4

// checkLabel accepts integer labels of shape (N,), N matching the images.
func (s *npzSource) checkLabel() error {
	h := s.lab.hdr
	switch {
	case (h.DType.Kind != 'i' && h.DType.Kind != 'u') || h.DType.Size&(h.DType.Size-1) != 0 || h.DType.Size > 8:
		return srcErrf(s.path, nil, "%s: dtype %q, want an integer type", s.lab.name, h.DType.Str)
	case len(h.Shape) != 1:
		return srcErrf(s.path, nil, "%s: shape %v, want (N,)", s.lab.name, h.Shape)
	case h.Shape[0] != s.img.hdr.Shape[0]:
		return srcErrf(s.path, nil, "%s: %d labels but %s has %d images", s.lab.name, h.Shape[0],
			s.img.name, s.img.hdr.Shape[0])
	}
	return s.checkSize(s.lab, int64(h.DType.Size))
}

// checkSize checks that m holds exactly shape[0] records of rowBytes bytes
// after its header, so the shape is never trusted beyond the member's size.
func (s *npzSource) checkSize(m *npzMember, rowBytes int64) error {
	rows := m.hdr.Shape[0]
	have := m.size - m.hdr.Len
	if rows == 0 {
		return srcErrf(s.path, nil, "%s: no records", m.name)
	}
	if rows > have/rowBytes {
		return srcErrf(s.path, nil, "%s: shape %v needs more than the %d data bytes after its %d-byte header: "+
			"data ends within record %d at byte offset %d of the member", m.name, m.hdr.Shape, have, m.hdr.Len, have/rowBytes, m.size)
	}
	if rows*rowBytes != have {
		return srcErrf(s.path, nil, "%s: %d bytes of trailing data at byte offset %d of the member, after the last of %d records",
			m.name, have-rows*rowBytes, m.hdr.Len+rows*rowBytes, rows)
	}
	return nil
}

// Info implements Source.
func (s *npzSource) Info() Info { return s.info }

// Read implements Source.
func (s *npzSource) Read(c *Chunk, n int) error {
	if err := srcCheckRead(s.err, n); err != nil {
		srcEmpty(c, s.next, false)
		return err
	}
	k := srcRowsFor(n, s.info.Rows-s.next, s.rowBytes)
	if k == 0 {
		srcEmpty(c, s.next, false)
		return io.EOF
	}
	srcResize(c, s.next, k, s.rowBytes, false)
	lsize := s.lab.hdr.DType.Size
	s.labBuf = srcGrow(s.labBuf, k*lsize)
	err := s.readRows(s.img, c.Images, s.rowBytes)
	if err == nil {
		err = s.readRows(s.lab, s.labBuf, lsize)
	}
	if err == nil {
		err = s.labels(c.Labels)
	}
	if err == nil && s.next+int64(k) == s.info.Rows {
		err = errors.Join(s.finish(s.img), s.finish(s.lab))
	}
	if err != nil {
		s.err = err
		srcEmpty(c, s.next, false)
		return err
	}
	s.next += int64(k)
	return nil
}

// readRows fills buf with the next rows of m, naming the record where the
// data runs out.
func (s *npzSource) readRows(m *npzMember, buf []byte, rowBytes int) error {
	got, err := io.ReadFull(m.r, buf)
	if err == nil {
		return nil
	}
	rec := s.next + int64(got/rowBytes)
	return srcErrf(s.path, srcNoEOF(err), "%s: data ends within record %d (id %d) at byte offset %d of the member; the header declares %d records",
		m.name, rec, rec, m.hdr.Len+s.next*int64(rowBytes)+int64(got), s.info.Rows)
}

// labels decodes and range-checks the labels in s.labBuf into dst.
func (s *npzSource) labels(dst []int16) error {
	t := s.lab.hdr.DType
	shift := 64 - 8*t.Size
	for i := range dst {
		b := s.labBuf[i*t.Size:][:t.Size]
		var u uint64
		for j := range b {
			if t.Big {
				u = u<<8 | uint64(b[j])
			} else {
				u |= uint64(b[j]) << (8 * j)
			}
		}
		if u >= uint64(s.classes) { // negative signed values too
			var v any = u
			if t.Kind == 'i' {
				v = int64(u<<shift) >> shift
			}
			id := s.next + int64(i)
			return srcErrf(s.path, nil, "%s: record %d (id %d): label %d at byte offset %d of the member is outside [0, %d)",
				s.lab.name, id, id, v, s.lab.hdr.Len+id*int64(t.Size), s.classes)
		}
		dst[i] = int16(u)
	}
	return nil
}

// finish checks that m ends after its last record, which also makes the
// member's reader verify its CRC-32.
func (s *npzSource) finish(m *npzMember) error {
	var one [1]byte
	n, err := io.ReadFull(m.r, one[:])
	switch {
	case n > 0:
		return srcErrf(s.path, nil, "%s: trailing data after the last of %d records", m.name, s.info.Rows)
	case err != io.EOF:
		return srcErrf(s.path, err, "%s: after the last of %d records", m.name, s.info.Rows)
	}
	return nil
}

// Close implements Source.
func (s *npzSource) Close() error {
	if s.err == srcErrClosed {
		return nil
	}
	s.err = srcErrClosed
	var errs []error
	for _, m := range []*npzMember{s.img, s.lab} {
		if m != nil && m.closer != nil {
			errs = append(errs, m.closer.Close())
		}
	}
	return errors.Join(append(errs, s.closer.Close())...)
}

// npzCRCReader checks the CRC-32 of a stored member as it is read, the way
// archive/zip does for members it opens, and fails at the end on mismatch.
type npzCRCReader struct {
	r    io.Reader
	crc  uint32
	want uint32 // 0: not recorded, not checked (as archive/zip)
}

func (c *npzCRCReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p[:n])
	if err == io.EOF && c.want != 0 && c.crc != c.want {
		return n, fmt.Errorf("CRC-32 %08x, want %08x: %w", c.crc, c.want, zip.ErrChecksum)
	}
	return n, err
}
