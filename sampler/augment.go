package sampler

import (
	"fmt"
	"sync"
)

// Augment is the per-sample augmentation of each architecture (the authors' data loaders):
// a random crop of Size x Size from the image padded by Pad on every side,
// the padding zeros or the replicated border ("edge"), then a horizontal flip
// with probability 1/2. It runs on uint8 HWC pixels, seeded per sample.
type Augment struct {
	Size int  // output side; 0 = the input's (no crop when Pad is 0 too)
	Pad  int  // padding on each side before the crop
	Edge bool // replicate the border instead of padding with zeros
	Flip bool // random horizontal flip
}

// Normalize turns uint8 HWC pixels into float32 CHW: (x/255 - Mean[c]) / Std[c].
type Normalize struct {
	Mean, Std []float32

	once  sync.Once
	table []float32
}

// OutSize returns the output height and width for an input of h x w, or an
// error when the crop does not fit the padded image.
func (a Augment) OutSize(h, w int) (int, int, error) {
	oh, ow := h, w
	if a.Size > 0 {
		oh, ow = a.Size, a.Size
	}
	if a.Pad < 0 || h+2*a.Pad < oh || w+2*a.Pad < ow {
		return 0, 0, fmt.Errorf("crop %dx%d from %dx%d padded by %d: the crop is larger than the padded image", oh, ow, h, w, a.Pad)
	}
	return oh, ow, nil
}

// apply writes the augmented image of src (h x w x c) into dst (oh x ow x c).
// r is the sample's random word: it picks the crop offsets and the flip.
func (a Augment) apply(dst, src []byte, h, w, c, oh, ow int, r uint64) {
	dy := int(lemire(mix64(r), uint64(h+2*a.Pad-oh+1))) - a.Pad
	dx := int(lemire(mix64(r^0xa5a5), uint64(w+2*a.Pad-ow+1))) - a.Pad
	flip := a.Flip && r>>63 == 1
	row := ow * c
	for y := range oh {
		sy := y + dy
		out := dst[y*row : (y+1)*row]
		if sy < 0 || sy >= h {
			if !a.Edge {
				clear(out)
				continue
			}
			sy = min(max(sy, 0), h-1)
		}
		in := src[sy*w*c : (sy+1)*w*c]
		// Output columns [x0, x1) come from the image; the rest is padding:
		// before x0 the left border (or, flipped, the right), after x1 the other.
		// (With a padding wider than half the crop, a row may lie wholly
		// in the padding: x0 == x1.)
		var x0, x1 int
		if flip {
			x0, x1 = max(0, dx+ow-w), min(ow, dx+ow)
		} else {
			x0, x1 = max(0, -dx), min(ow, w-dx)
		}
		x0 = min(x0, ow)
		x1 = max(x1, x0)
		switch {
		case x1 == x0:
		case flip:
			reverse(out[x0*c:x1*c], in[(dx+ow-x1)*c:(dx+ow-x0)*c], c)
		default:
			copy(out[x0*c:x1*c], in[(dx+x0)*c:(dx+x1)*c])
		}
		first, last := in[:c], in[(w-1)*c:]
		if flip {
			first, last = last, first
		}
		pad(out[:x0*c], first, a.Edge)
		pad(out[x1*c:], last, a.Edge)
	}
}

// reverse copies the pixels of src into dst in reverse order.
func reverse(dst, src []byte, c int) {
	n := len(dst) / c
	switch c {
	case 1:
		for i := range n {
			dst[i] = src[n-1-i]
		}
	case 3:
		for i := range n {
			d, s := dst[i*3:i*3+3], src[(n-1-i)*3:(n-i)*3]
			d[0], d[1], d[2] = s[0], s[1], s[2]
		}
	default:
		for i := range n {
			copy(dst[i*c:(i+1)*c], src[(n-1-i)*c:(n-i)*c])
		}
	}
}

// pad fills dst with zeros, or with copies of the border pixel px.
func pad(dst, px []byte, edge bool) {
	if !edge {
		clear(dst)
		return
	}
	for i := 0; i < len(dst); i += len(px) {
		copy(dst[i:], px)
	}
}

// toFloat writes the CHW float32 form of an HWC image, through a table of
// the 256 values of each channel (built once), exactly as computing them.
func (n *Normalize) toFloat(dst []float32, src []byte, h, w, c int) {
	n.once.Do(func() { n.table = n.values(c) })
	plane := h * w
	for ch := range c {
		t := n.table[ch*256 : (ch+1)*256]
		out := dst[ch*plane : (ch+1)*plane]
		for i := range out {
			out[i] = t[src[i*c+ch]]
		}
	}
}

// values returns, per channel, the normalised value of each byte.
func (n *Normalize) values(c int) []float32 {
	t := make([]float32, 256*c)
	for ch := range c {
		mean, inv := float32(0), float32(1)
		if ch < len(n.Mean) {
			mean = n.Mean[ch]
		}
		if ch < len(n.Std) {
			inv = 1 / n.Std[ch]
		}
		for v := range 256 {
			t[ch*256+v] = (float32(v)/255 - mean) * inv
		}
	}
	return t
}
