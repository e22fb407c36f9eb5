package shards

import (
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
)

// Column names of a shard's Arrow schema. One row is one image.
const (
	ColID     = "id"           // int64: the image's index in its source, stable forever
	ColLabel  = "label"        // int16: class index
	ColCoarse = "coarse_label" // int16: CIFAR-100 superclass, present only when CoarseClasses > 0
	ColImage  = "image"        // FixedSizeBinary(H*W*C): uint8 pixels, HWC
)

// Layout is the pixel order inside the image column: rows, then columns, then channels.
const Layout = "HWC"

// Shape is the geometry and label space shared by every row of a dataset.
type Shape struct {
	Height        int `json:"height"`
	Width         int `json:"width"`
	Channels      int `json:"channels"`
	Classes       int `json:"classes"`
	CoarseClasses int `json:"coarse_classes,omitempty"`
}

// ImageBytes is the size in bytes of one image.
func (s Shape) ImageBytes() int { return s.Height * s.Width * s.Channels }

// Limits on a shape, so that a crafted manifest or header cannot make a
// reader allocate gigabytes for one row.
const (
	maxSide     = 4096
	maxChannels = 4
	maxClasses  = 1 << 15
)

// Validate reports whether the shape is one certmix can hold.
func (s Shape) Validate() error {
	switch {
	case s.Height < 1 || s.Height > maxSide || s.Width < 1 || s.Width > maxSide:
		return fmt.Errorf("image size %dx%d outside 1..%d: %w", s.Height, s.Width, maxSide, ErrFormat)
	case s.Channels < 1 || s.Channels > maxChannels:
		return fmt.Errorf("%d channels outside 1..%d: %w", s.Channels, maxChannels, ErrFormat)
	case s.Classes < 1 || s.Classes > maxClasses:
		return fmt.Errorf("%d classes outside 1..%d: %w", s.Classes, maxClasses, ErrFormat)
	case s.CoarseClasses < 0 || s.CoarseClasses > maxClasses:
		return fmt.Errorf("%d coarse classes outside 0..%d: %w", s.CoarseClasses, maxClasses, ErrFormat)
	}
	return nil
}

// Schema returns the Arrow schema of a shard holding images of this shape.
// The shape is also stored in the schema metadata so that a shard read
// without its manifest still says what it holds.
func (s Shape) Schema() *arrow.Schema {
	fields := []arrow.Field{
		{Name: ColID, Type: arrow.PrimitiveTypes.Int64},
		{Name: ColLabel, Type: arrow.PrimitiveTypes.Int16},
	}
	if s.CoarseClasses > 0 {
		fields = append(fields, arrow.Field{Name: ColCoarse, Type: arrow.PrimitiveTypes.Int16})
	}
	fields = append(fields, arrow.Field{Name: ColImage, Type: &arrow.FixedSizeBinaryType{ByteWidth: s.ImageBytes()}})
	md := arrow.NewMetadata(
		[]string{"height", "width", "channels", "layout", "classes", "coarse_classes"},
		[]string{itoa(s.Height), itoa(s.Width), itoa(s.Channels), Layout, itoa(s.Classes), itoa(s.CoarseClasses)},
	)
	return arrow.NewSchema(fields, &md)
}

func itoa(v int) string { return strconv.Itoa(v) }
