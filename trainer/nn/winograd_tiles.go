package nn

import "certmix/trainer/nn/internal/wino"

// The transforms of Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2016), each next to its
// adjoint. A 4×4 input tile d and a 3×3 kernel g give the 2×2 outputs
//
//	Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A,
//
//	Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
//	Aᵀ = [1 1 1 0; 0 1 −1 −1].
//
// Every coefficient is 0, ±1 or ±½, so the transforms are adds and exact
// halvings; in exact arithmetic Y is the 3×3 correlation of d with g.
//
// Layouts. Transformed values are stored tap-major: entry ξ = 4·i + j (row i,
// column j of the 4×4 transformed tile) of every channel and tile is at
// ξ·rows·T + channel·T + tile, so that for each ξ the products over channels
// are one Gemm of rows × T matrices. Tiles of one image are numbered row by
// row, ty·tilesX + tx. Tile (ty, tx) reads rows 2ty..2ty+3 and columns
// 2tx..2tx+3 of the zero-padded input plane; the plane's rows are kept split
// into their even columns and then their odd columns, so that the four
// columns a tile row reads are the unit-stride vectors E[tx], O[tx], E[tx+1],
// O[tx+1] over tx.

// winoPlane is one worker's scratch for the tile transforms of one plane.
type winoPlane struct {
	pad   []float32 // PH×PW input plane, rows split even|odd, zero border
	acc   []float32 // PH×PW accumulator of the input transform's adjoint, split likewise
	col   []float32 // 4×PW: the column pass of one tile row, split likewise
	sum   []float32 // 8×tilesX: Aᵀ M of one tile row
	stage []float32 // 2tilesY×2tilesX: an output plane padded to whole tiles
}

func (w *Winograd) newPlane() *winoPlane {
	ph, pw := 2*w.tilesY+2, 2*w.tilesX+2
	return &winoPlane{pad: make([]float32, ph*pw), acc: make([]float32, ph*pw),
		col: make([]float32, 4*pw), sum: make([]float32, 8*w.tilesX), stage: make([]float32, 4*w.tilesY*w.tilesX)}
}

// splitRow writes the row src (W values) into the split padded row dst at
// padded columns Pad..Pad+W−1: column q goes to dst[q/2] if q is even, else to
// dst[ne + q/2], where ne = tilesX+1 is the length of each half.
func (w *Winograd) splitRow(dst, src []float32) {
	ne := w.tilesX + 1
	ev, od := dst[:ne], dst[ne:2*ne]
	q := w.Pad
	for _, v := range src[:w.W] {
		if q&1 == 0 {
			ev[q>>1] = v
		} else {
			od[q>>1] = v
		}
		q++
	}
}

// joinRow is the inverse of splitRow: it reads padded columns Pad..Pad+W−1
// of the split row src into dst.
func (w *Winograd) joinRow(dst, src []float32) {
	ne := w.tilesX + 1
	ev, od := src[:ne], src[ne:2*ne]
	q := w.Pad
	for x := range dst[:w.W] {
		if q&1 == 0 {
			dst[x] = ev[q>>1]
		} else {
			dst[x] = od[q>>1]
		}
		q++
	}
}

// inputTiles writes V = Bᵀ d B of every 4×4 tile d of planes [lo, hi) of x
// (plane p = image·Cin + channel, H×W each) into v, T tiles per row of v.
func (w *Winograd) inputTiles(v, x []float32, lo, hi, T int, s *winoPlane) {
	n, tiles, pw := w.tilesX, w.tilesY*w.tilesX, 2*w.tilesX+2
	plane, ct := w.H*w.W, w.Cin*T
	if w.kernels16 {
		for p := lo; p < hi; p++ {
			base := p%w.Cin*T + p/w.Cin*tiles
			_ = v[base+15*ct+tiles-1] // the kernel's last store
			wino.Input16(&v[base], &x[p*plane:][:plane][0], uintptr(ct))
		}
		return
	}
	c0, c1, c2, c3 := s.col[:pw], s.col[pw:2*pw], s.col[2*pw:3*pw], s.col[3*pw:4*pw]
	for p := lo; p < hi; p++ {
		img, c := p/w.Cin, p%w.Cin
		src := x[p*plane:][:plane]
		for y := range w.H {
			w.splitRow(s.pad[(y+w.Pad)*pw:][:pw], src[y*w.W:])
		}
		for ty := range w.tilesY {
			r := s.pad[2*ty*pw:][:4*pw]
			r0, r1, r2, r3 := r[:pw], r[pw:2*pw], r[2*pw:3*pw], r[3*pw:4*pw]
			for q := range c0 { // Bᵀ down the tile row's four rows
				a, b, e, f := r0[q], r1[q], r2[q], r3[q]
				c0[q], c1[q], c2[q], c3[q] = a-e, b+e, e-b, b-f
			}
			base := c*T + img*tiles + ty*n
			for i, ci := range [4][]float32{c0, c1, c2, c3} { // B across each tile
				e0, e1, o0, o1 := ci[:n], ci[1:n+1], ci[n+1:2*n+1], ci[n+2:2*n+2]
				d := v[4*i*ct+base:]
				d0, d1, d2, d3 := d[:n], d[ct:ct+n], d[2*ct:2*ct+n], d[3*ct:3*ct+n]
				for tx := range d0 {
					a0, a1, a2, a3 := e0[tx], o0[tx], e1[tx], o1[tx]
					d0[tx], d1[tx], d2[tx], d3[tx] = a0-a2, a1+a2, a2-a1, a1-a3
				}
			}
		}
	}
}

// inputTilesT is the adjoint of inputTiles: it writes into planes [lo, hi) of
// dx the sum over tiles of B dV Bᵀ, each tile added where it was read.
func (w *Winograd) inputTilesT(dx, dv []float32, lo, hi, T int, s *winoPlane) {
	n, tiles, pw := w.tilesX, w.tilesY*w.tilesX, 2*w.tilesX+2
	plane, ct := w.H*w.W, w.Cin*T
	if w.kernels16 {
		for p := lo; p < hi; p++ {
			base := p%w.Cin*T + p/w.Cin*tiles
			_ = dv[base+15*ct+tiles-1]
			wino.InputT16(&dx[p*plane:][:plane][0], &dv[base], uintptr(ct))
		}
		return
	}
	c0, c1, c2, c3 := s.col[:pw], s.col[pw:2*pw], s.col[2*pw:3*pw], s.col[3*pw:4*pw]
	for p := lo; p < hi; p++ {
		img, c := p/w.Cin, p%w.Cin
		clear(s.acc)
		for ty := range w.tilesY {
			base := c*T + img*tiles + ty*n
			for i, ci := range [4][]float32{c0, c1, c2, c3} {
				// The adjoint of (a0, a1, a2, a3) ↦ (a0−a2, a1+a2, a2−a1, a1−a3):
				// column 2tx gets f0, 2tx+1 gets f1−f2+f3, 2tx+2 gets f1+f2−f0 and
				// 2tx+3 gets −f3; tile tx−1 adds its last two to this tile's first two.
				e, o := ci[:n+1], ci[n+1:2*n+2]
				f := dv[4*i*ct+base:]
				f0, f1, f2, f3 := f[:n], f[ct:ct+n], f[2*ct:2*ct+n], f[3*ct:3*ct+n]
				var carryE, carryO float32
				for tx := range f0 {
					a, b, cc, d := f0[tx], f1[tx], f2[tx], f3[tx]
					e[tx] = carryE + a
					o[tx] = carryO + (b - cc + d)
					carryE, carryO = b+cc-a, -d
				}
				e[n], o[n] = carryE, carryO
			}
			r := s.acc[2*ty*pw:][:4*pw]
			r0, r1, r2, r3 := r[:pw], r[pw:2*pw], r[2*pw:3*pw], r[3*pw:4*pw]
			for q := range c0 { // then the adjoint of Bᵀ down the rows
				a, b, e, f := c0[q], c1[q], c2[q], c3[q]
				r0[q] += a
				r1[q] += b - e + f
				r2[q] += b + e - a
				r3[q] -= f
			}
		}
		dst := dx[p*plane:][:plane]
		for y := range w.H {
			w.joinRow(dst[y*w.W:][:w.W], s.acc[(y+w.Pad)*pw:][:pw])
		}
	}
}

// outputTiles writes Y = Aᵀ M A of every tile of planes [lo, hi) of y (plane
// p = image·Cout + channel, Ho×Wo each), plus the channel's bias (nil: none),
// from the products m, T tiles per row of m.
func (w *Winograd) outputTiles(y, m, bias []float32, lo, hi, T int, s *winoPlane) {
	n, tiles, sw := w.tilesX, w.tilesY*w.tilesX, 2*w.tilesX
	ho, wo := w.Ho(), w.Wo()
	plane, kt := ho*wo, w.Cout*T
	whole := ho == 2*w.tilesY && wo == sw
	if w.kernels16 {
		for p := lo; p < hi; p++ {
			base := p%w.Cout*T + p/w.Cout*tiles
			_ = m[base+15*kt+tiles-1]
			var b float32
			if bias != nil {
				b = bias[p%w.Cout]
			}
			wino.Output16(&y[p*plane:][:plane][0], &m[base], uintptr(kt), b)
		}
		return
	}
	for p := lo; p < hi; p++ {
		img, k := p/w.Cout, p%w.Cout
		dst := y[p*plane:][:plane]
		if !whole {
			dst = s.stage
		}
		var b float32
		if bias != nil {
			b = bias[k]
		}
		for ty := range w.tilesY {
			base := k*T + img*tiles + ty*n
			sum := s.sum[:8*n]
			for j := range 4 { // Aᵀ down column j of the tiles
				mj := m[j*kt+base:]
				m0, m1, m2, m3 := mj[:n], mj[4*kt:4*kt+n], mj[8*kt:8*kt+n], mj[12*kt:12*kt+n]
				sj, tj := sum[j*n:(j+1)*n], sum[(4+j)*n:(5+j)*n]
				for tx := range sj {
					b1, b2 := m1[tx], m2[tx]
					sj[tx] = m0[tx] + b1 + b2
					tj[tx] = b1 - b2 - m3[tx]
				}
			}
			s0, s1, s2, s3 := sum[:n], sum[n:2*n], sum[2*n:3*n], sum[3*n:4*n]
			t0, t1, t2, t3 := sum[4*n:5*n], sum[5*n:6*n], sum[6*n:7*n], sum[7*n:8*n]
			o0, o1 := dst[2*ty*sw:][:sw], dst[(2*ty+1)*sw:][:sw]
			for tx := range s0 { // then A across
				u, v := o0[2*tx:2*tx+2:2*tx+2], o1[2*tx:2*tx+2:2*tx+2]
				a1, a2, c1, c2 := s1[tx], s2[tx], t1[tx], t2[tx]
				u[0], u[1] = s0[tx]+a1+a2+b, a1-a2-s3[tx]+b
				v[0], v[1] = t0[tx]+c1+c2+b, c1-c2-t3[tx]+b
			}
		}
		if !whole {
			out := y[p*plane:][:plane]
			for r := range ho {
				copy(out[r*wo:][:wo], s.stage[r*sw:])
			}
		}
	}
}

// outputTilesT is the adjoint of outputTiles (bias aside): it writes
// dM = A dY Aᵀ of every tile of planes [lo, hi) of dy into dm.
func (w *Winograd) outputTilesT(dm, dy []float32, lo, hi, T int, s *winoPlane) {
	n, tiles, sw := w.tilesX, w.tilesY*w.tilesX, 2*w.tilesX
	ho, wo := w.Ho(), w.Wo()
	plane, kt := ho*wo, w.Cout*T
	whole := ho == 2*w.tilesY && wo == sw
	if w.kernels16 {
		for p := lo; p < hi; p++ {
			base := p%w.Cout*T + p/w.Cout*tiles
			_ = dm[base+15*kt+tiles-1]
			wino.OutputT16(&dm[base], &dy[p*plane:][:plane][0], uintptr(kt))
		}
		return
	}
	if !whole {
		clear(s.stage) // outputs past the edge have no gradient
	}
	for p := lo; p < hi; p++ {
		img, k := p/w.Cout, p%w.Cout
		src := dy[p*plane:][:plane]
		if !whole {
			for r := range ho {
				copy(s.stage[r*sw:][:wo], src[r*wo:])
			}
			src = s.stage
		}
		for ty := range w.tilesY {
			base := k*T + img*tiles + ty*n
			in0, in1 := src[2*ty*sw:][:sw], src[(2*ty+1)*sw:][:sw]
			// A down the tile's two rows (a b; c d) gives the rows (a, b),
			// (a+c, b+d), (a−c, b−d), (−c, −d); Aᵀ across each row (u, v) gives
			// (u, u+v, u−v, −v).
			for i := range 4 {
				mi := dm[4*i*kt+base:]
				d0, d1, d2, d3 := mi[:n], mi[kt:kt+n], mi[2*kt:2*kt+n], mi[3*kt:3*kt+n]
				for tx := range d0 {
					r0, r1 := in0[2*tx:2*tx+2:2*tx+2], in1[2*tx:2*tx+2:2*tx+2]
					var u, v float32
					switch i {
					case 0:
						u, v = r0[0], r0[1]
					case 1:
						u, v = r0[0]+r1[0], r0[1]+r1[1]
					case 2:
						u, v = r0[0]-r1[0], r0[1]-r1[1]
					default:
						u, v = -r1[0], -r1[1]
					}
					d0[tx], d1[tx], d2[tx], d3[tx] = u, u+v, u-v, -v
				}
			}
		}
	}
}

// kernelTiles writes U = G g Gᵀ of every 3×3 kernel g of weight (Cout×Cin×3×3)
// into u, tap-major: u[ξ·Cout·Cin + k·Cin + c].
func (w *Winograd) kernelTiles(u, weight []float32) {
	n := w.Cout * w.Cin
	for kc := range n {
		g := weight[9*kc : 9*kc+9 : 9*kc+9]
		var t [4][3]float32 // G g
		for j := range 3 {
			a, b, c := g[j], g[3+j], g[6+j]
			t[0][j], t[1][j], t[2][j], t[3][j] = a, (a+b+c)*0.5, (a-b+c)*0.5, c
		}
		for i, r := range t { // then Gᵀ across
			u[(4*i)*n+kc] = r[0]
			u[(4*i+1)*n+kc] = (r[0] + r[1] + r[2]) * 0.5
			u[(4*i+2)*n+kc] = (r[0] - r[1] + r[2]) * 0.5
			u[(4*i+3)*n+kc] = r[2]
		}
	}
}

// kernelTilesT is the adjoint of kernelTiles: it ADDS Gᵀ dU G of every
// (output, input) channel pair of du into dWeight.
func (w *Winograd) kernelTilesT(dWeight, du []float32) {
	n := w.Cout * w.Cin
	for kc := range n {
		var t [4][3]float32 // dU G
		for i := range 4 {
			a, b, c, d := du[(4*i)*n+kc], du[(4*i+1)*n+kc], du[(4*i+2)*n+kc], du[(4*i+3)*n+kc]
			t[i] = [3]float32{a + (b+c)*0.5, (b - c) * 0.5, (b+c)*0.5 + d}
		}
		g := dWeight[9*kc : 9*kc+9 : 9*kc+9]
		for j := range 3 { // then Gᵀ down
			g[j] += t[0][j] + (t[1][j]+t[2][j])*0.5
			g[3+j] += (t[1][j] - t[2][j]) * 0.5
			g[6+j] += (t[1][j]+t[2][j])*0.5 + t[3][j]
		}
	}
}
