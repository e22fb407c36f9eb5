package shards

import "slices"

// Rows is a run of dataset rows held in memory, column by column: what a
// shard writer encodes and a shard reader returns.
type Rows struct {
	IDs    []int64
	Labels []int16
	Coarse []int16 // nil when the dataset has no coarse labels
	Images []byte  // Len() images of Shape.ImageBytes() bytes each, HWC
}

// Len returns the number of rows.
func (r *Rows) Len() int { return len(r.IDs) }

// Reset empties r, keeping its capacity for reuse.
func (r *Rows) Reset() {
	r.IDs, r.Labels, r.Images = r.IDs[:0], r.Labels[:0], r.Images[:0]
	if r.Coarse != nil {
		r.Coarse = r.Coarse[:0]
	}
}

// Image returns the pixels of row i (a slice of r.Images, not a copy).
func (r *Rows) Image(i, imageBytes int) []byte {
	return r.Images[i*imageBytes : (i+1)*imageBytes]
}

// slice returns rows [lo, hi) without copying.
func (r *Rows) slice(lo, hi, imageBytes int) Rows {
	s := Rows{IDs: r.IDs[lo:hi], Labels: r.Labels[lo:hi], Images: r.Images[lo*imageBytes : hi*imageBytes]}
	if r.Coarse != nil {
		s.Coarse = r.Coarse[lo:hi]
	}
	return s
}

// Grow makes room for n more rows without reallocation; coarse says whether
// the rows carry coarse labels.
func (r *Rows) Grow(n, imageBytes int, coarse bool) {
	r.IDs = slices.Grow(r.IDs, n)
	r.Labels = slices.Grow(r.Labels, n)
	if coarse {
		r.Coarse = slices.Grow(r.Coarse, n)
		if r.Coarse == nil {
			r.Coarse = []int16{}
		}
	}
	r.Images = slices.Grow(r.Images, n*imageBytes)
}
