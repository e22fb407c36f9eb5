package pipeline

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"

	"github.com/klauspost/compress/gzip"
)

const (
	idxImageMagic = 0x00000803 // unsigned bytes, 3 dimensions: N, H, W
	idxLabelMagic = 0x00000801 // unsigned bytes, 1 dimension: N
	idxClasses    = 10
	idxBufSize    = 1 << 20 // read-ahead of each input file, at most its size
	// idxMaxRatio bounds how much deflate can expand its input (258-byte
	// matches in as little as 2 bits), so a gzip header's claims can be
	// checked against the compressed file size before any allocation.
	idxMaxRatio = 1032
)

// OpenIDX streams an MNIST-style pair of IDX files (images and labels, as
// for MNIST and Fashion-MNIST), each either gzip-compressed or raw; gzip is
// recognised by its magic bytes, not by the file name. The headers, the
// image and label counts and, for raw files, the exact file sizes are
// checked here so a bad pair fails before any row is read. Images have one
// channel; labels lie in [0, 10).
func OpenIDX(images, labels string) (Source, error) {
	img, err := idxOpen(images, idxImageMagic, 3)
	if err != nil {
		return nil, err
	}
	lab, err := idxOpen(labels, idxLabelMagic, 1)
	if err != nil {
		img.c.Close()
		return nil, err
	}
	return idxNew(img, lab)
}

// idxNew checks a pair of opened files against each other and returns
// their source; on error it closes both.
func idxNew(img, lab *idxFile) (Source, error) {
	s := &idxSource{img: img, lab: lab}
	if err := s.check(); err != nil {
		s.Close()
		return nil, err
	}
	n, h, w := img.dims[0], img.dims[1], img.dims[2]
	s.rowBytes = int(h * w)
	s.info = Info{Format: "idx", Height: int(h), Width: int(w), Channels: 1,
		Classes: idxClasses, Rows: int64(n), Files: []string{img.path, lab.path}}
	return s, nil
}

// idxFile is one opened IDX file, positioned after its header.
type idxFile struct {
	path string
	c    io.Closer // the file
	r    io.Reader // positioned after the header; the decompressed stream when gz
	gz   bool
	size int64    // bytes on disk
	head int64    // header bytes: 4 + 4 per dimension
	dims []uint64 // dimensions from the header
}

// idxOpen opens path, detects gzip and reads a header with the given magic.
func idxOpen(path string, magic uint32, ndims int) (*idxFile, error) {
	f, size, err := srcOpenFile(path)
	if err != nil {
		return nil, err
	}
	return idxRead(path, f, f, size, magic, ndims)
}

// idxRead reads the header of the size-byte file r, read from path; c is
// closed with the source, or at once on error.
func idxRead(path string, r io.Reader, c io.Closer, size int64, magic uint32, ndims int) (*idxFile, error) {
	x := &idxFile{path: path, c: c, r: r, size: size, head: int64(4 + 4*ndims)}
	if err := x.header(magic, ndims); err != nil {
		c.Close()
		return nil, err
	}
	return x, nil
}

func (x *idxFile) header(magic uint32, ndims int) error {
	br := bufio.NewReaderSize(x.r, int(min(idxBufSize, x.size+16)))
	x.r = br
	if b, _ := br.Peek(2); len(b) == 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return srcErrf(x.path, err, "bad gzip header")
		}
		x.r, x.gz = zr, true
	}
	hdr := make([]byte, x.head)
	if got, err := io.ReadFull(x.r, hdr); err != nil {
		return srcErrf(x.path, srcNoEOF(err), "%s ends at byte offset %d, within the %d-byte IDX header",
			x.stream(), got, x.head)
	}
	if m := binary.BigEndian.Uint32(hdr); m != magic {
		hint := ""
		if m == idxImageMagic || m == idxLabelMagic {
			hint = "; are the image and label files swapped?"
		}
		return srcErrf(x.path, nil, "IDX magic 0x%08x at byte offset 0 of %s, want 0x%08x (unsigned bytes, %d-D)%s",
			m, x.stream(), magic, ndims, hint)
	}
	for i := range ndims {
		d := uint64(binary.BigEndian.Uint32(hdr[4+4*i:]))
		if d == 0 {
			return srcErrf(x.path, nil, "dimension %d at byte offset %d is 0", i, 4+4*i)
		}
		x.dims = append(x.dims, d)
	}
	return nil
}

// stream names what byte offsets in errors are counted in.
func (x *idxFile) stream() string {
	if x.gz {
		return "the decompressed gzip stream"
	}
	return "the file"
}

// checkData checks that the file can hold exactly want data bytes of rows
// records after its header: exactly, for a raw file; within deflate's
// maximum expansion for a gzip file.
func (x *idxFile) checkData(rows, rowBytes uint64) error {
	want := rows * rowBytes // < 2^32 * srcMaxRowBytes: no overflow
	if x.gz {
		if limit := uint64(x.size)*idxMaxRatio + 1<<16; want > limit {
			return srcErrf(x.path, nil, "header declares %d records of %d bytes, more than a %d-byte gzip file can hold",
				rows, rowBytes, x.size)
		}
		return nil
	}
	have := uint64(x.size - x.head)
	switch {
	case have < want:
		rec := have / rowBytes
		return srcErrf(x.path, nil, "file has %d bytes but its header declares %d records of %d bytes (%d bytes with the header): "+
			"data ends within record %d at byte offset %d", x.size, rows, rowBytes, uint64(x.head)+want, rec, x.size)
	case have > want:
		return srcErrf(x.path, nil, "%d bytes of trailing data at byte offset %d after the last of %d records",
			have-want, uint64(x.head)+want, rows)
	}
	return nil
}

// idxSource reads images and labels in lockstep from their two files.
type idxSource struct {
	info     Info
	img, lab *idxFile
	rowBytes int
	next     int64
	labBuf   []byte
	err      error // sticky; srcErrClosed after Close
}

// check validates the two headers against each other and the file sizes.
func (s *idxSource) check() error {
	n, h, w := s.img.dims[0], s.img.dims[1], s.img.dims[2]
	if h*w > srcMaxRowBytes {
		return srcErrf(s.img.path, nil, "image size %dx%d at byte offset 8 exceeds %d bytes", h, w, srcMaxRowBytes)
	}
	if err := s.img.checkData(n, h*w); err != nil {
		return err
	}
	if s.lab.dims[0] != n {
		return srcErrf(s.lab.path, nil, "header declares %d labels at byte offset 4 but %s declares %d images",
			s.lab.dims[0], s.img.path, n)
	}
	return s.lab.checkData(n, 1)
}

// Info implements Source.
func (s *idxSource) Info() Info { return s.info }

// Read implements Source.
func (s *idxSource) Read(c *Chunk, n int) error {
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
	s.labBuf = srcGrow(s.labBuf, k)
	err := s.readRows(s.img, c.Images, s.rowBytes)
	if err == nil {
		err = s.readRows(s.lab, s.labBuf, 1)
	}
	for i := 0; err == nil && i < k; i++ {
		v := s.labBuf[i]
		if v >= idxClasses {
			id := s.next + int64(i)
			err = srcErrf(s.lab.path, nil, "record %d (id %d): label %d at byte offset %d of %s is outside [0, %d)",
				id, id, v, s.lab.head+id, s.lab.stream(), idxClasses)
		}
		c.Labels[i] = int16(v)
	}
	if err == nil && s.next+int64(k) == s.info.Rows {
		err = errors.Join(s.img.finish(s.info.Rows), s.lab.finish(s.info.Rows))
	}
	if err != nil {
		s.err = err
		srcEmpty(c, s.next, false)
		return err
	}
	s.next += int64(k)
	return nil
}

// readRows fills buf with the next rows of x, naming the record where the
// data runs out.
func (s *idxSource) readRows(x *idxFile, buf []byte, rowBytes int) error {
	got, err := io.ReadFull(x.r, buf)
	if err == nil {
		return nil
	}
	rec := s.next + int64(got/rowBytes)
	return srcErrf(x.path, srcNoEOF(err), "data ends within record %d (id %d) at byte offset %d of %s; the header declares %d records",
		rec, rec, x.head+s.next*int64(rowBytes)+int64(got), x.stream(), s.info.Rows)
}

// finish checks that x ends after its last record; for gzip this also
// verifies the CRC-32 and length in the trailer.
func (x *idxFile) finish(rows int64) error {
	var one [1]byte
	n, err := io.ReadFull(x.r, one[:])
	switch {
	case n > 0:
		return srcErrf(x.path, nil, "trailing data in %s after the last of %d records", x.stream(), rows)
	case err != io.EOF:
		return srcErrf(x.path, err, "after the last of %d records", rows)
	}
	return nil
}

// Close implements Source.
func (s *idxSource) Close() error {
	if s.err == srcErrClosed {
		return nil
	}
	s.err = srcErrClosed
	return errors.Join(s.img.c.Close(), s.lab.c.Close())
}
