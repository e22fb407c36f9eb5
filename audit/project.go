package audit

import (
	"fmt"
	"math"

	"certmix/shards"
)

// Normalisations of an image before it is compared.
const (
	NormNone = "none" // pixels in [0, 1]
	NormMean = "mean" // pixels in [0, 1] less the image's mean: blind to brightness
	NormUnit = "unit" // less the mean, divided by the l2 norm: blind to brightness and contrast
)

// normalize writes image px (uint8) as float32 into dst, normalised by norm.
func normalize(dst []float32, px []byte, norm string) {
	var sum float64
	for i, p := range px {
		v := float32(p) * (1.0 / 255)
		dst[i] = v
		sum += float64(v)
	}
	if norm == NormNone {
		return
	}
	mean := float32(sum / float64(len(px)))
	var ss float64
	for i := range dst {
		dst[i] -= mean
		ss += float64(dst[i]) * float64(dst[i])
	}
	if norm == NormUnit && ss > 0 {
		s := float32(1 / math.Sqrt(ss))
		for i := range dst {
			dst[i] *= s
		}
	}
}

// variant is one way a test image is compared: horizontally flipped or
// not, then moved by (dx, dy) pixels. The moved image is compared on the
// pixels where it overlaps the other image.
type variant struct {
	flip   bool
	dx, dy int
}

func (v variant) String() string {
	s := "same"
	if v.flip {
		s = "flip"
	}
	if v.dx != 0 || v.dy != 0 {
		s += fmt.Sprintf("%+d%+d", v.dx, v.dy)
	}
	return s
}

// variants returns the identity, the flip and, with shifts 1, each of them
// moved by one pixel left, right, up and down.
func variants(shifts int) []variant {
	vs := []variant{{}, {flip: true}}
	if shifts > 0 {
		for _, f := range []bool{false, true} {
			for _, d := range [][2]int{{-1, 0}, {1, 0}, {0, -1}, {0, 1}} {
				vs = append(vs, variant{flip: f, dx: d[0], dy: d[1]})
			}
		}
	}
	return vs
}

// apply writes variant v of the normalised image src into dst: dst(y, x) =
// src'(y-dy, x-dx) where src' is src or its mirror image; pixels moved in
// from outside repeat the edge (for the filter only: exact distances skip
// them).
func (v variant) apply(dst, src []float32, s shards.Shape) {
	h, w, c := s.Height, s.Width, s.Channels
	for y := range h {
		sy := min(max(y-v.dy, 0), h-1)
		for x := range w {
			sx := min(max(x-v.dx, 0), w-1)
			if v.flip {
				sx = w - 1 - sx
			}
			copy(dst[(y*w+x)*c:(y*w+x+1)*c], src[(sy*w+sx)*c:(sy*w+sx+1)*c])
		}
	}
}

// projection maps an image onto a coarse grid of cells: each cell's
// coefficient is the sum of its pixels (per channel) divided by the square
// root of its size. The cells partition the image, so this is an orthogonal
// projection onto piecewise-constant images, and the l2 distance of two
// projections is a lower bound on the l2 distance of the images: the
// filter never ranks a pair closer than it is.
type projection struct {
	shape  shards.Shape
	cy, cx []int     // cell row of each pixel row, cell column of each pixel column
	scale  []float32 // 1/sqrt(size) of each cell
	cw     int       // cells per row
	dim    int       // cells × channels
}

// newProjection divides the image into about cells × cells cells (fewer on
// a side shorter than cells pixels).
func newProjection(s shards.Shape, cells int) *projection {
	ch, cw := min(cells, s.Height), min(cells, s.Width)
	p := &projection{shape: s, cy: make([]int, s.Height), cx: make([]int, s.Width), cw: cw, dim: ch * cw * s.Channels}
	for y := range s.Height {
		p.cy[y] = y * ch / s.Height
	}
	for x := range s.Width {
		p.cx[x] = x * cw / s.Width
	}
	size := make([]int, ch*cw)
	for y := range s.Height {
		for x := range s.Width {
			size[p.cy[y]*cw+p.cx[x]]++
		}
	}
	p.scale = make([]float32, ch*cw)
	for i, n := range size {
		p.scale[i] = float32(1 / math.Sqrt(float64(n)))
	}
	return p
}

// apply writes the projection of the normalised image img into dst (dim
// values) and returns its squared norm and the norm of the residual, the
// part of img the projection leaves out. Two images a, b with projections
// Pa, Pb and residual norms ra, rb are at least
//
//	|Pa − Pb|² + (ra − rb)²
//
// apart (Pythagoras, and the reverse triangle inequality on the residuals):
// the filter's distance, a lower bound at the cost of one number per image.
func (p *projection) apply(dst, img []float32) (norm2, resid float32) {
	clear(dst)
	c, w := p.shape.Channels, p.shape.Width
	var all float64
	for y := range p.shape.Height {
		row := p.cy[y] * p.cw
		for x := range w {
			cell := (row + p.cx[x]) * c
			px := img[(y*w+x)*c:]
			for k := range c {
				dst[cell+k] += px[k]
				all += float64(px[k]) * float64(px[k])
			}
		}
	}
	var n float64
	for i := range dst {
		dst[i] *= p.scale[i/c]
		n += float64(dst[i]) * float64(dst[i])
	}
	return float32(n), float32(math.Sqrt(max(all-n, 0)))
}

// exactD2 is the squared l2 distance between variant v of the normalised
// test image and the normalised image d, over the pixels where they
// overlap, scaled to the whole image (so that shifted and unshifted
// comparisons are on one scale). t is the test image, already mirrored
// when v.flip. It stops early, returning a value above limit, once the
// partial sum passes limit.
func exactD2(t, d []float32, v variant, s shards.Shape, limit float64) float64 {
	h, w, c := s.Height, s.Width, s.Channels
	y0, y1 := max(0, v.dy), min(h, h+v.dy)
	x0, x1 := max(0, v.dx), min(w, w+v.dx)
	scale := float64(h*w) / float64((y1-y0)*(x1-x0))
	lim := limit / scale
	var sum float64
	for y := y0; y < y1; y++ {
		a := t[(y-v.dy)*w*c+(x0-v.dx)*c : (y-v.dy)*w*c+(x1-v.dx)*c]
		b := d[y*w*c+x0*c : y*w*c+x1*c]
		b = b[:len(a)]
		var s0, s1, s2, s3 float32
		i := 0
		for ; i+4 <= len(a); i += 4 {
			e0, e1, e2, e3 := a[i]-b[i], a[i+1]-b[i+1], a[i+2]-b[i+2], a[i+3]-b[i+3]
			s0 += e0 * e0
			s1 += e1 * e1
			s2 += e2 * e2
			s3 += e3 * e3
		}
		for ; i < len(a); i++ {
			e := a[i] - b[i]
			s0 += e * e
		}
		sum += float64((s0 + s1) + (s2 + s3))
		if sum > lim {
			return sum * scale
		}
	}
	return sum * scale
}
