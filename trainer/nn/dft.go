package nn

import (
	"math"
	"unsafe"

	"gonum.org/v1/gonum/blas"
)

// RealDFT2 is the two-dimensional discrete Fourier transform of real N×N
// planes, zero-padded by Pad pixels on every side to n×n (n = N + 2·Pad),
// computed as matrix products (one Sgemm along x, one Cgemm along y), which at
// the LOT layer's sizes (n = 34, 18, 10, 6, 4, 1: not powers of two) beats a
// per-plane FFT by batching every plane of a batch into two large products
// (BenchmarkDFT); the products are split over the cores (gemm_split.go,
// cgemm_split.go). A real input has a Hermitian spectrum, so only the half
// v ∈ [0, n/2] is kept: Half = ⌊n/2⌋ + 1 columns.
//
// Layouts: planes in space are [b][c][y][x] (NCHW, N×N each); spectra are
// [u][v][c][b], i.e. frequency-major with a C×B matrix per frequency
// f = u·Half + v, as the LOT layer's per-frequency products want them.
//
// The four maps are pairwise adjoint (TestDFTAdjoint), so a layer built from
// them has its backward pass in the same four calls:
//
//	Forward:  X̂(u,v)  = Σ_{y,x} x(y,x) e^{−2πi(u(y+Pad) + v(x+Pad))/n}
//	ForwardT: x(y,x)  = Re Σ_{u,v} X̂(u,v) e^{+2πi(u(y+Pad) + v(x+Pad))/n}
//	Inverse:  x(y,x)  = n⁻² Re Σ_{u,v} c_v X̂(u,v) e^{+2πi(...)}  (c_v = 2 for the
//	          columns whose mirror image is not kept, else 1): the real inverse
//	          DFT of the Hermitian extension, cropped to the N×N interior
//	InverseT: X̂(u,v)  = n⁻² c_v Σ_{y,x} x(y,x) e^{−2πi(...)}
//
// so that Inverse(Forward(x)) = x. Not safe for concurrent use (it owns its
// scratch).
type RealDFT2 struct {
	Size, Pad, Len, Half int // N, Pad, n = N + 2·Pad, ⌊n/2⌋ + 1

	fy, ey   []complex64 // n×N e^{−2πi u(y+Pad)/n}, and its conjugate transpose N×n
	fx, fxw  []float32   // N×2Half: (cos, −sin)(2π v(x+Pad)/n), and times c_v/n²
	gx, gxw  []float32   // 2Half×N: rows cos and −sin, and times c_v/n²
	t1, t2   []complex64 // scratch: maxPlanes·N·Half values
	maxPlane int
	split    cgemmSplit
}

// NewRealDFT2 prepares the transforms of N×N planes padded by pad, for up to
// maxPlanes planes (batch × channels) per call.
func NewRealDFT2(size, pad, maxPlanes int) *RealDFT2 {
	if size < 1 || pad < 0 || maxPlanes < 1 {
		panic("nn: NewRealDFT2: invalid size")
	}
	n := size + 2*pad
	d := &RealDFT2{Size: size, Pad: pad, Len: n, Half: n/2 + 1, maxPlane: maxPlanes}
	N, h := size, d.Half
	d.fy, d.ey = make([]complex64, n*N), make([]complex64, N*n)
	for u := range n {
		for y := range N {
			c, s := unitRoot(u*(y+pad), n)
			d.fy[u*N+y] = complex(float32(c), float32(-s))
			d.ey[y*n+u] = complex(float32(c), float32(s))
		}
	}
	d.fx, d.fxw = make([]float32, N*2*h), make([]float32, N*2*h)
	d.gx, d.gxw = make([]float32, 2*h*N), make([]float32, 2*h*N)
	for v := range h {
		w := HalfWeight(v, n) / float64(n*n)
		for x := range N {
			c, s := unitRoot(v*(x+pad), n)
			d.fx[x*2*h+2*v], d.fx[x*2*h+2*v+1] = float32(c), float32(-s)
			d.fxw[x*2*h+2*v], d.fxw[x*2*h+2*v+1] = float32(w*c), float32(-w*s)
			d.gx[2*v*N+x], d.gx[(2*v+1)*N+x] = float32(c), float32(-s)
			d.gxw[2*v*N+x], d.gxw[(2*v+1)*N+x] = float32(w*c), float32(-w*s)
		}
	}
	d.t1, d.t2 = make([]complex64, maxPlanes*N*h), make([]complex64, maxPlanes*N*h)
	return d
}

// HalfWeight is c_v: how many columns of the full n×n spectrum column v of the
// half spectrum stands for (2, or 1 for v = 0 and v = n/2).
func HalfWeight(v, n int) float64 {
	if v == 0 || 2*v == n {
		return 1
	}
	return 2
}

// Frequencies is the number of frequencies of the half spectrum, n·Half.
func (d *RealDFT2) Frequencies() int { return d.Len * d.Half }

// Forward writes the half spectrum of b×c padded planes src ([b][c][N][N]) into
// dst ([u][v][c][b]).
func (d *RealDFT2) Forward(dst []complex64, src []float32, b, c int) { d.analyze(dst, src, b, c, d.fx) }

// ForwardT is Forward's adjoint: from a half spectrum src ([u][v][c][b]) to
// b×c real N×N planes dst.
func (d *RealDFT2) ForwardT(dst []float32, src []complex64, b, c int) {
	d.synthesize(dst, src, b, c, d.gx)
}

// Inverse writes into dst the N×N interiors of the real planes whose half
// spectra are src: the inverse DFT of their Hermitian extension.
func (d *RealDFT2) Inverse(dst []float32, src []complex64, b, c int) {
	d.synthesize(dst, src, b, c, d.gxw)
}

// InverseT is Inverse's adjoint: n⁻² c_v times the half spectrum of the padded
// planes src.
func (d *RealDFT2) InverseT(dst []complex64, src []float32, b, c int) {
	d.analyze(dst, src, b, c, d.fxw)
}

func (d *RealDFT2) check(spec int, space int, b, c int) {
	p := b * c
	if p > d.maxPlane || spec < d.Frequencies()*p || space < p*d.Size*d.Size {
		panic("nn: RealDFT2: bad slice length or too many planes")
	}
}

// analyze: along x by an Sgemm of the real planes with fx (whose interleaved
// cos/−sin columns write complex values), then [b][c][y][v] → [y][v][c][b],
// then along y by one Cgemm with fy.
func (d *RealDFT2) analyze(dst []complex64, src []float32, b, c int, fx []float32) {
	d.check(len(dst), len(src), b, c)
	N, h, n, p := d.Size, d.Half, d.Len, b*c
	t1, t2 := d.t1[:p*N*h], d.t2[:p*N*h]
	Gemm(false, false, p*N, 2*h, N, 1, src, N, fx, 2*h, 0, floats(t1), 2*h)
	for ci := range c { // t2[yv][ci][bi] = t1[bi][ci][yv]
		transpose(t2[ci*b:], c*b, t1[ci*N*h:], c*N*h, b, N*h)
	}
	cgemmPar(&d.split, blas.NoTrans, blas.NoTrans, n, h*p, N, 1, d.fy, N, t2, h*p, 0, dst, h*p)
}

// synthesize: along u by one Cgemm with ey, [y][v][c][b] → [b][c][y][v], then
// the real part along v by an Sgemm with gx.
func (d *RealDFT2) synthesize(dst []float32, src []complex64, b, c int, gx []float32) {
	d.check(len(src), len(dst), b, c)
	N, h, n, p := d.Size, d.Half, d.Len, b*c
	t1, t2 := d.t1[:p*N*h], d.t2[:p*N*h]
	cgemmPar(&d.split, blas.NoTrans, blas.NoTrans, N, h*p, n, 1, d.ey, n, src, h*p, 0, t2, h*p)
	for ci := range c { // t1[bi][ci][yv] = t2[yv][ci][bi]
		transpose(t1[ci*N*h:], c*N*h, t2[ci*b:], c*b, N*h, b)
	}
	Gemm(false, false, p*N, N, 2*h, 1, floats(t1), 2*h, gx, N, 0, dst, N)
}

// transpose writes dst[j·ldd + i] = src[i·lds + j] for i < rows, j < cols,
// in tiles that keep both sides in cache.
func transpose[T any](dst []T, ldd int, src []T, lds, rows, cols int) {
	const tile = 16
	for i0 := 0; i0 < rows; i0 += tile {
		i1 := min(i0+tile, rows)
		for j0 := 0; j0 < cols; j0 += tile {
			j1 := min(j0+tile, cols)
			for i := i0; i < i1; i++ {
				row := src[i*lds:]
				for j := j0; j < j1; j++ {
					dst[j*ldd+i] = row[j]
				}
			}
		}
	}
}

// floats views complex values as interleaved (real, imaginary) float32 pairs,
// Go's memory layout of complex64.
func floats(c []complex64) []float32 {
	if len(c) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&c[0])), 2*len(c))
}

// unitRoot returns cos and sin of 2π·m/n, exactly for multiples of a quarter
// turn (so that the spectra of real kernels are exactly real where they must be).
func unitRoot(m, n int) (c, s float64) {
	m = (m%n + n) % n
	switch {
	case m == 0:
		return 1, 0
	case 2*m == n:
		return -1, 0
	case 4*m == n:
		return 0, 1
	case 4*m == 3*n:
		return 0, -1
	}
	a := 2 * math.Pi * float64(m) / float64(n)
	return math.Cos(a), math.Sin(a)
}
