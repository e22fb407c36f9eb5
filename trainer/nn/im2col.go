package nn

import "gonum.org/v1/gonum/blas/gonum"

// ConvGeom is the shape of a 2-D convolution: Cin input channels of H×W, Cout
// output channels, a square K×K kernel, stride and zero padding, all fixed at
// construction, so that the operator (and its norm) is that of the real input size.
type ConvGeom struct {
	Cin, Cout, K, Stride, Pad int
	H, W                      int
}

// Ho is the output height ⌊(H + 2·Pad − K)/Stride⌋ + 1.
func (g ConvGeom) Ho() int { return (g.H+2*g.Pad-g.K)/g.Stride + 1 }

// Wo is the output width ⌊(W + 2·Pad − K)/Stride⌋ + 1.
func (g ConvGeom) Wo() int { return (g.W+2*g.Pad-g.K)/g.Stride + 1 }

// InLen is the length of one input image, Cin·H·W.
func (g ConvGeom) InLen() int { return g.Cin * g.H * g.W }

// OutLen is the length of one output image, Cout·Ho·Wo.
func (g ConvGeom) OutLen() int { return g.Cout * g.Ho() * g.Wo() }

// WeightLen is the length of the kernel, Cout·Cin·K·K (PyTorch layout).
func (g ConvGeom) WeightLen() int { return g.Cout * g.Cin * g.K * g.K }

func (g ConvGeom) valid() bool {
	return g.Cin > 0 && g.Cout > 0 && g.K > 0 && g.Stride > 0 && g.Pad >= 0 &&
		g.H > 0 && g.W > 0 && g.H+2*g.Pad >= g.K && g.W+2*g.Pad >= g.K
}

// pointwise reports whether im2col is the identity (1×1 kernel, stride 1, no padding).
func (g ConvGeom) pointwise() bool { return g.K == 1 && g.Stride == 1 && g.Pad == 0 }

// span returns the output columns [lo, hi) whose input column ox·Stride − Pad + kx
// lies inside [0, size).
func (g ConvGeom) span(kx, size, outSize int) (lo, hi int) {
	if a := g.Pad - kx; a > 0 {
		lo = (a + g.Stride - 1) / g.Stride
	}
	b := size - 1 + g.Pad - kx
	if b < 0 {
		return 0, 0
	}
	hi = min(outSize, b/g.Stride+1)
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// im2col writes the patches of imgs consecutive images of in into col, a
// (Cin·K·K) × (imgs·Ho·Wo) row-major matrix: row (c·K + ky)·K + kx, column
// i·Ho·Wo + oy·Wo + ox holds image i's pixel (c, oy·S − P + ky, ox·S − P + kx), or 0
// in the padding.
func (g ConvGeom) im2col(col, in []float32, imgs int) {
	ho, wo := g.Ho(), g.Wo()
	p := ho * wo
	ld := imgs * p
	inLen, plane := g.InLen(), g.H*g.W
	same := g.sameWidth()
	for c := 0; c < g.Cin; c++ {
		for ky := 0; ky < g.K; ky++ {
			for kx := 0; kx < g.K; kx++ {
				r := (c*g.K+ky)*g.K + kx
				lo, hi := g.span(kx, g.W, wo)
				for i := 0; i < imgs; i++ {
					src := in[i*inLen+c*plane:][:plane]
					dst := col[r*ld+i*p:][:p]
					if same {
						g.shiftCopy(dst, src, ky, kx, lo, hi)
						continue
					}
					for oy := 0; oy < ho; oy++ {
						row := dst[oy*wo:][:wo]
						iy := oy*g.Stride - g.Pad + ky
						if iy < 0 || iy >= g.H {
							clear(row)
							continue
						}
						clear(row[:lo])
						clear(row[hi:])
						srow := src[iy*g.W:][:g.W]
						ix := lo*g.Stride - g.Pad + kx
						if g.Stride == 1 {
							copy(row[lo:hi], srow[ix:])
							continue
						}
						for ox := lo; ox < hi; ox++ {
							row[ox] = srow[ix]
							ix += g.Stride
						}
					}
				}
			}
		}
	}
}

// col2im is the adjoint of im2col: it clears the imgs images of dst and adds every
// entry of col back onto the input pixel it was copied from. It clobbers col's
// padding entries.
func (g ConvGeom) col2im(dst, col []float32, imgs int) {
	ho, wo := g.Ho(), g.Wo()
	p := ho * wo
	ld := imgs * p
	inLen, plane := g.InLen(), g.H*g.W
	same := g.sameWidth()
	clear(dst[:imgs*inLen])
	for c := 0; c < g.Cin; c++ {
		for ky := 0; ky < g.K; ky++ {
			for kx := 0; kx < g.K; kx++ {
				r := (c*g.K+ky)*g.K + kx
				lo, hi := g.span(kx, g.W, wo)
				if lo == hi {
					continue
				}
				for i := 0; i < imgs; i++ {
					d := dst[i*inLen+c*plane:][:plane]
					src := col[r*ld+i*p:][:p]
					if same {
						g.shiftAdd(d, src, ky, kx, lo, hi)
						continue
					}
					for oy := 0; oy < ho; oy++ {
						iy := oy*g.Stride - g.Pad + ky
						if iy < 0 || iy >= g.H {
							continue
						}
						row := src[oy*wo+lo : oy*wo+hi]
						drow := d[iy*g.W:][:g.W]
						ix := lo*g.Stride - g.Pad + kx
						if g.Stride == 1 {
							drow = drow[ix : ix+len(row)]
							for j, v := range row {
								drow[j] += v
							}
							continue
						}
						for _, v := range row {
							drow[ix] += v
							ix += g.Stride
						}
					}
				}
			}
		}
	}
}

// sameWidth reports whether the conv is stride 1 with Wo = W (2·Pad = K − 1, as
// in every LiResNet block). Then the patch row of tap (ky, kx) is the input plane
// shifted by (ky − Pad)·W + kx − Pad in flat index, so im2col and col2im move whole
// planes at once and only fix the columns that fall into the padding.
func (g ConvGeom) sameWidth() bool { return g.Stride == 1 && g.Wo() == g.W }

// rows returns the output rows [lo, hi) whose input row oy − Pad + ky is inside
// the image, for stride 1.
func (g ConvGeom) rows(ky, ho int) (lo, hi int) {
	lo = max(0, g.Pad-ky)
	hi = min(ho, g.H+g.Pad-ky)
	return lo, max(lo, hi)
}

// shiftCopy is im2col of one plane and one tap (ky, kx) for a sameWidth conv:
// dst (Ho×W) gets src shifted, with padding rows and the columns outside
// [lo, hi) zeroed.
func (g ConvGeom) shiftCopy(dst, src []float32, ky, kx, lo, hi int) {
	w := g.W
	y0, y1 := g.rows(ky, len(dst)/w)
	if y0 == y1 || lo == hi { // the tap sees only padding
		clear(dst)
		return
	}
	clear(dst[:y0*w])
	clear(dst[y1*w:])
	shift := (ky-g.Pad)*w + kx - g.Pad
	d0, d1 := y0*w, y1*w
	// Clip to src; the clipped entries are in columns outside [lo, hi), which the
	// band's first valid entry (y0, lo) and last (y1−1, hi−1) bound.
	if d0+shift < 0 {
		d0 = -shift
	}
	if d1+shift > len(src) {
		d1 = len(src) - shift
	}
	copy(dst[d0:d1], src[d0+shift:d1+shift])
	if lo == 0 && hi == w {
		return
	}
	zeroEdges(dst, w, y0, y1, lo, hi)
}

// shiftAdd is the adjoint of shiftCopy: it adds the valid entries of col (Ho×W)
// to dst shifted back. It zeroes col's columns outside [lo, hi) (col is scratch)
// so that the whole valid band can be added in one pass.
func (g ConvGeom) shiftAdd(dst, col []float32, ky, kx, lo, hi int) {
	w := g.W
	y0, y1 := g.rows(ky, len(col)/w)
	if y0 == y1 || lo == hi {
		return
	}
	if lo != 0 || hi != w {
		zeroEdges(col, w, y0, y1, lo, hi)
	}
	shift := (ky-g.Pad)*w + kx - g.Pad
	d0, d1 := y0*w, y1*w
	if d0+shift < 0 {
		d0 = -shift
	}
	if d1+shift > len(dst) {
		d1 = len(dst) - shift
	}
	axpy.Saxpy(d1-d0, 1, col[d0:d1], 1, dst[d0+shift:d1+shift], 1)
}

// zeroEdges zeroes columns [0, lo) and [hi, w) of rows [y0, y1) of the w-wide
// plane p: a few entries per row, stored directly rather than through clear.
func zeroEdges(p []float32, w, y0, y1, lo, hi int) {
	for y := y0; y < y1; y++ {
		row := p[y*w:][:w]
		for x := 0; x < lo; x++ {
			row[x] = 0
		}
		for x := hi; x < w; x++ {
			row[x] = 0
		}
	}
}

// axpy is gonum's Saxpy (assembly, no cgo call), used for the adds of col2im.
var axpy gonum.Implementation
