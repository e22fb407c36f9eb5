package sampler

import "fmt"

// Augment is the per-sample augmentation of each architecture (spec 6.4):
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
}

// outSize returns the output height and width for an input of h x w.
func (a Augment) outSize(h, w int) (int, int, error) {
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
		if !flip && dx >= 0 && dx+ow <= w {
			copy(out, in[dx*c:(dx+ow)*c]) // the interior: one copy per row
			continue
		}
		for x := range ow {
			sx := x + dx
			if flip {
				sx = ow - 1 - x + dx
			}
			o := out[x*c : (x+1)*c]
			if sx < 0 || sx >= w {
				if !a.Edge {
					clear(o)
					continue
				}
				sx = min(max(sx, 0), w-1)
			}
			copy(o, in[sx*c:(sx+1)*c])
		}
	}
}

// toFloat writes the CHW float32 form of an HWC image.
func (n *Normalize) toFloat(dst []float32, src []byte, h, w, c int) {
	plane := h * w
	for ch := range c {
		mean, inv := float32(0), float32(1)
		if ch < len(n.Mean) {
			mean = n.Mean[ch]
		}
		if ch < len(n.Std) {
			inv = 1 / n.Std[ch]
		}
		out := dst[ch*plane : (ch+1)*plane]
		for i := range out {
			out[i] = (float32(src[i*c+ch])/255 - mean) * inv
		}
	}
}
