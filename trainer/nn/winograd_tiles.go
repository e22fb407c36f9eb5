package nn

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
// Transformed values are stored "tap-major": entry ξ = 4·i + j (row i, column
// j of the 4×4 transformed tile) of every channel and tile is at
// ξ·rows·T + channel·T + tile, so that for each ξ the products over channels
// are one Gemm of rows × T matrices.

// winoPlane is one worker's scratch for the tile transforms of one plane.
type winoPlane struct {
	pad   []float32 // PH×PW input plane with its zero border (border stays zero)
	acc   []float32 // PH×PW accumulator of the input transform's adjoint
	col   []float32 // 4×PW: the column pass of one tile row, or its adjoint
	stage []float32 // 2tilesY×2tilesX: an output plane padded to whole tiles
}

func (w *Winograd) newPlane() *winoPlane {
	ph, pw := 2*w.tilesY+2, 2*w.tilesX+2
	return &winoPlane{pad: make([]float32, ph*pw), acc: make([]float32, ph*pw),
		col: make([]float32, 4*pw), stage: make([]float32, 4*w.tilesY*w.tilesX)}
}

// inputTiles writes V = Bᵀ d B of every 4×4 tile d of planes [lo, hi) of x
// (plane p = image·Cin + channel, H×W each) into v, T tiles per row of v.
func (w *Winograd) inputTiles(v, x []float32, lo, hi, T int, s *winoPlane) {
	tiles, pw := w.tilesY*w.tilesX, 2*w.tilesX+2
	plane, ct := w.H*w.W, w.Cin*T
	c0, c1, c2, c3 := s.col[:pw], s.col[pw:2*pw], s.col[2*pw:3*pw], s.col[3*pw:]
	for p := lo; p < hi; p++ {
		img, c := p/w.Cin, p%w.Cin
		src := x[p*plane:][:plane]
		for y := range w.H {
			copy(s.pad[(y+w.Pad)*pw+w.Pad:][:w.W], src[y*w.W:])
		}
		for ty := range w.tilesY {
			r := s.pad[2*ty*pw:][:4*pw]
			r0, r1, r2, r3 := r[:pw], r[pw:2*pw], r[2*pw:3*pw], r[3*pw:]
			for q := range c0 { // Bᵀ down the tile row's four rows
				a, b, e, f := r0[q], r1[q], r2[q], r3[q]
				c0[q], c1[q], c2[q], c3[q] = a-e, b+e, e-b, b-f
			}
			base := c*T + img*tiles + ty*w.tilesX
			for i, ci := range [4][]float32{c0, c1, c2, c3} { // B across each tile
				d0 := v[(4*i)*ct+base:][:w.tilesX]
				d1 := v[(4*i+1)*ct+base:][:len(d0)]
				d2 := v[(4*i+2)*ct+base:][:len(d0)]
				d3 := v[(4*i+3)*ct+base:][:len(d0)]
				for tx := range d0 {
					a := ci[2*tx : 2*tx+4 : 2*tx+4]
					d0[tx], d1[tx], d2[tx], d3[tx] = a[0]-a[2], a[1]+a[2], a[2]-a[1], a[1]-a[3]
				}
			}
		}
	}
}

// inputTilesT is the adjoint of inputTiles: it writes into planes [lo, hi) of
// dx the sum over tiles of B dV Bᵀ, each tile added where it was read.
func (w *Winograd) inputTilesT(dx, dv []float32, lo, hi, T int, s *winoPlane) {
	tiles, pw := w.tilesY*w.tilesX, 2*w.tilesX+2
	plane, ct := w.H*w.W, w.Cin*T
	c0, c1, c2, c3 := s.col[:pw], s.col[pw:2*pw], s.col[2*pw:3*pw], s.col[3*pw:]
	for p := lo; p < hi; p++ {
		img, c := p/w.Cin, p%w.Cin
		clear(s.acc)
		for ty := range w.tilesY {
			clear(s.col)
			base := c*T + img*tiles + ty*w.tilesX
			for i, ci := range [4][]float32{c0, c1, c2, c3} {
				e0 := dv[(4*i)*ct+base:][:w.tilesX]
				e1 := dv[(4*i+1)*ct+base:][:len(e0)]
				e2 := dv[(4*i+2)*ct+base:][:len(e0)]
				e3 := dv[(4*i+3)*ct+base:][:len(e0)]
				for tx := range e0 {
					a := ci[2*tx : 2*tx+4 : 2*tx+4]
					f0, f1, f2, f3 := e0[tx], e1[tx], e2[tx], e3[tx]
					a[0] += f0
					a[1] += f1 - f2 + f3
					a[2] += f1 + f2 - f0
					a[3] -= f3
				}
			}
			r := s.acc[2*ty*pw:][:4*pw]
			r0, r1, r2, r3 := r[:pw], r[pw:2*pw], r[2*pw:3*pw], r[3*pw:]
			for q := range c0 {
				a, b, e, f := c0[q], c1[q], c2[q], c3[q]
				r0[q] += a
				r1[q] += b - e + f
				r2[q] += b + e - a
				r3[q] -= f
			}
		}
		dst := dx[p*plane:][:plane]
		for y := range w.H {
			copy(dst[y*w.W:][:w.W], s.acc[(y+w.Pad)*pw+w.Pad:])
		}
	}
}

// outputTiles writes Y = Aᵀ M A of every tile of planes [lo, hi) of y (plane
// p = image·Cout + channel, Ho×Wo each), plus the channel's bias (nil: none),
// from the products m, T tiles per row of m.
func (w *Winograd) outputTiles(y, m, bias []float32, lo, hi, T int, s *winoPlane) {
	tiles, sw := w.tilesY*w.tilesX, 2*w.tilesX
	ho, wo := w.Ho(), w.Wo()
	plane, kt := ho*wo, w.Cout*T
	whole := ho == 2*w.tilesY && wo == sw
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
			base := k*T + img*tiles + ty*w.tilesX
			var mr [16][]float32
			for xi := range mr {
				mr[xi] = m[xi*kt+base:][:w.tilesX]
			}
			out := dst[2*ty*sw:][:2*sw]
			for tx := range w.tilesX {
				// Aᵀ down the columns, then A across.
				s0 := mr[0][tx] + mr[4][tx] + mr[8][tx]
				s1 := mr[1][tx] + mr[5][tx] + mr[9][tx]
				s2 := mr[2][tx] + mr[6][tx] + mr[10][tx]
				s3 := mr[3][tx] + mr[7][tx] + mr[11][tx]
				t0 := mr[4][tx] - mr[8][tx] - mr[12][tx]
				t1 := mr[5][tx] - mr[9][tx] - mr[13][tx]
				t2 := mr[6][tx] - mr[10][tx] - mr[14][tx]
				t3 := mr[7][tx] - mr[11][tx] - mr[15][tx]
				o := out[2*tx : 2*tx+sw+2 : 2*tx+sw+2]
				o[0], o[1] = s0+s1+s2+b, s1-s2-s3+b
				o[sw], o[sw+1] = t0+t1+t2+b, t1-t2-t3+b
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
	tiles, sw := w.tilesY*w.tilesX, 2*w.tilesX
	ho, wo := w.Ho(), w.Wo()
	plane, kt := ho*wo, w.Cout*T
	whole := ho == 2*w.tilesY && wo == sw
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
			base := k*T + img*tiles + ty*w.tilesX
			var mr [16][]float32
			for xi := range mr {
				mr[xi] = dm[xi*kt+base:][:w.tilesX]
			}
			in := src[2*ty*sw:][:2*sw]
			for tx := range w.tilesX {
				o := in[2*tx : 2*tx+sw+2 : 2*tx+sw+2]
				a, b, c, d := o[0], o[1], o[sw], o[sw+1]
				// A down the rows: (a, b), (a+c, b+d), (a−c, b−d), (−c, −d);
				// then Aᵀ across each row (u, v) ↦ (u, u+v, u−v, −v).
				for i, r := range [4][2]float32{{a, b}, {a + c, b + d}, {a - c, b - d}, {-c, -d}} {
					mr[4*i][tx] = r[0]
					mr[4*i+1][tx] = r[0] + r[1]
					mr[4*i+2][tx] = r[0] - r[1]
					mr[4*i+3][tx] = -r[1]
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
