package pipeline

import (
	"errors"
)

// ErrFormat is wrapped by every error about malformed input: a file whose
// size, header, dtype, shape or label does not match its format.
var ErrFormat = errors.New("malformed input")

// Info describes a source before any row is read.
type Info struct {
	Format        string // "cifar10", "cifar100", "npz" or "idx"
	Height        int
	Width         int
	Channels      int
	Classes       int      // labels lie in [0, Classes)
	CoarseClasses int      // CIFAR-100's 20 superclasses; 0 when the source has none
	Rows          int64    // total number of images
	Files         []string // input files, in the order their rows are read
}

// Chunk is a run of consecutive rows of a source.
type Chunk struct {
	First  int64   // id of the first row: its index in the source, counted from 0 across all files
	Labels []int16 // one label per row
	Coarse []int16 // coarse labels, nil when Info.CoarseClasses == 0
	Images []byte  // len(Labels) images of Height*Width*Channels bytes each, uint8 HWC
}

// Len returns the number of rows in the chunk.
func (c *Chunk) Len() int { return len(c.Labels) }

// Source streams the rows of one input dataset in order, in memory that does
// not depend on the input's size.
type Source interface {
	// Info describes the source; it is known once the source is opened.
	Info() Info
	// Read replaces c's rows with the next at most n rows, reusing the
	// capacity of c's slices. It returns io.EOF, with c empty, after the last
	// row. Every label has been checked against the class range; an error
	// names the file, the record and byte offset, and what was expected, and
	// wraps ErrFormat when the input is malformed.
	Read(c *Chunk, n int) error
	// Close releases the source's files.
	Close() error
}

// ImageReaderAt is implemented by sources whose pixels lie uncompressed in a
// file (a stored .npz): the build then reads every image once, straight
// into its shard, instead of spilling the pixels to disk and back. Safe for
// concurrent use.
type ImageReaderAt interface {
	// ReadImageAt copies the pixels of row id (HWC) into dst, which holds
	// exactly one image.
	ReadImageAt(dst []byte, id int64) error
}
