// Command asm generates ../kernels_amd64.s and its Go declarations
// ../kernels_amd64.go: the AVX-512 kernels of the l_p-distance layers. Each
// kernel has a pure-Go twin in ../kernel.go that computes bit for bit the
// same result (TestKernelsAgree); the twins are the specification.
//
// Run it with `go generate ./trainer/nn/internal/distk` (it is a separate
// module so that avo stays out of certmix's own dependencies; the first run
// fetches avo from the module proxy).
//
// Layouts: the forward, bound and sort kernels vectorise over output units
// (16 per ZMM register, 32 per tile) and read the packed weight (panels of
// 32 units, each k x 32); the backward kernel vectorises over input
// coordinates and reads w (out x in).
// Every float32 operation is a separate rounded instruction (no FMA), in an
// order the Go twin repeats.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

var (
	absMask, signMask, oneInt Mem
	tiny, logOff, one, expLim Mem
	sortEps                   Mem
	logC, expC                [8]Mem
)

// Tile heights; they must match the Go side (kernel.go).
const (
	maxRowsA   = 6  // forward with arg-max (4 registers a row)
	maxRowsM   = 8  // max-only forward
	maxRowsP   = 4  // power-sum forward
	maxRowsB   = 4  // interval bounds
	gradRows   = 4  // backward tile: rows of x ...
	gradCols   = 4  // ... by units of w
	sortK      = 10 // the sort kernels' truncation (the authors' K)
	nLogCoeffs = 8
	nExpCoeffs = 6
)

// The polynomials of pow (see Pow in kernel.go): log2(1+t) = t*P(t) on
// [sqrt(1/2)-1, sqrt(2)-1] and 2^f = Q(f) on [-1/2, 1/2], near-minimax
// float32 coefficients (relative error 3e-7 and 2.4e-7 in float32).
var (
	logCoeffs = [nLogCoeffs]uint32{0x3fb8aa3b, 0xbf38aa94, 0x3ef63b92, 0xbeb87153, 0x3e92fea4, 0xbe7ed9c4, 0x3e6fa839, 0xbe154e4e}
	expCoeffs = [nExpCoeffs]uint32{0x3f800000, 0x3f317214, 0x3e75fc8c, 0x3d635b73, 0x3c1e8629, 0x3aae0466}
)

func main() {
	ConstraintExpr("amd64,!purego")
	absMask = ConstData("absmask", U32(0x7fffffff))
	signMask = ConstData("signmask", U32(0x80000000))
	oneInt = ConstData("oneint", U32(1))
	tiny = ConstData("tiny", U32(0x00800000))     // 2^-126, the smallest normal float32
	logOff = ConstData("logoff", U32(0x3f3504f3)) // sqrt(1/2)
	one = ConstData("one", U32(0x3f800000))
	expLim = ConstData("explim", U32(0xc2fa0000)) // -125
	sortEps = ConstData("sorteps", F32(1e-10))
	for i, c := range logCoeffs {
		logC[i] = ConstData(fmt.Sprintf("logc%d", i), U32(c))
	}
	for i, c := range expCoeffs {
		expC[i] = ConstData(fmt.Sprintf("expc%d", i), U32(c))
	}
	for r := 1; r <= maxRowsA; r++ {
		infArgmax(r)
	}
	for r := 1; r <= maxRowsM; r++ {
		infMax(r)
	}
	for r := 1; r <= maxRowsP; r++ {
		powSum(r)
	}
	for r := 1; r <= maxRowsB; r++ {
		infBounds(r)
	}
	sortTop()
	sortBounds()
	for r := 1; r <= gradRows; r++ {
		for c := 1; c <= gradCols; c++ {
			powGrad(r, c)
		}
	}
	Generate()
}

// pow emits res = r^p for 0 <= r <= 1 (up to rounding), p broadcast from
// pm, as powGo does, and returns res and the mask of lanes whose result is
// not flushed to zero. With zero set, res is 0 in the other lanes; otherwise
// they hold garbage and the caller masks them. r is overwritten.
func pow(r VecVirtual, pm Mem, zero bool) (VecVirtual, OpmaskVirtual) {
	VMAXPS_BCST(tiny, r, r)
	k, t := ZMM(), ZMM()
	VPSUBD_BCST(logOff, r, k)
	VPSRAD(U8(23), k, k)
	VPSLLD(U8(23), k, t)
	VPSUBD(t, r, t) // z in [sqrt(1/2), sqrt(2))
	VSUBPS_BCST(one, t, t)
	P := ZMM()
	VBROADCASTSS(logC[nLogCoeffs-1], P)
	for i := nLogCoeffs - 2; i >= 0; i-- {
		VMULPS(t, P, P)
		VADDPS_BCST(logC[i], P, P)
	}
	VMULPS(t, P, P)
	VCVTDQ2PS(k, k)
	VADDPS(k, P, P) // log2 r
	VMULPS_BCST(pm, P, P)
	keep := K()
	VCMPPS_BCST(U8(0x1d), expLim, P, keep) // y >= -125 (GE_OQ)
	n := ZMM()
	VCVTPS2DQ(P, n)
	VCVTDQ2PS(n, t)
	VSUBPS(t, P, P) // f in [-1/2, 1/2]
	Q := ZMM()
	VBROADCASTSS(expC[nExpCoeffs-1], Q)
	for i := nExpCoeffs - 2; i >= 0; i-- {
		VMULPS(P, Q, Q)
		VADDPS_BCST(expC[i], Q, Q)
	}
	VPSLLD(U8(23), n, n)
	if zero {
		VPADDD_Z(n, Q, keep, Q)
	} else {
		VPADDD(n, Q, Q)
	}
	return Q, keep
}

// tileArgs loads the arguments the forward tiles share and returns the row
// pointers of x, the weight pointer, the count k, ldw in bytes and the two
// column masks.
func tileArgs(rows int) (xr []GPVirtual, wp, n, ldw GPVirtual, k1, k2 OpmaskVirtual) {
	xp := Load(Param("x"), GP64()).(GPVirtual)
	wp = Load(Param("w"), GP64()).(GPVirtual)
	n = Load(Param("k"), GP64()).(GPVirtual)
	ldx := Load(Param("ldx"), GP64()).(GPVirtual)
	ldw = Load(Param("ldw"), GP64()).(GPVirtual)
	m := Load(Param("mask"), GP32()).(GPVirtual)
	SHLQ(U8(2), ldx)
	SHLQ(U8(2), ldw)
	k1, k2 = K(), K()
	KMOVW(m, k1)
	SHRL(U8(16), m)
	KMOVW(m, k2)
	xr = []GPVirtual{xp}
	for r := 1; r < rows; r++ {
		p := GP64()
		LEAQ(Mem{Base: xr[r-1], Index: ldx, Scale: 1}, p)
		xr = append(xr, p)
	}
	return
}

// infArgmax: for rows r < R and the (up to 32, by mask) columns c,
// y[r,c] = max_i |w[i,c] - x[r,i]| and idx[r,c] = the first i attaining it
// (0 when every difference is 0).
func infArgmax(rows int) {
	TEXT(fmt.Sprintf("infArgmax%d", rows), NOSPLIT, "func(y *float32, idx *int32, x, w *float32, k, ldx, ldw, ldy int, mask uint32)")
	Doc(fmt.Sprintf("infArgmax%d is the l_inf distance with arg-max of %d rows of x against up to 32 columns of w (see infArgmaxGo).", rows, rows))
	xr, wp, n, ldw, k1, k2 := tileArgs(rows)
	abs, ones, iv := ZMM(), ZMM(), ZMM()
	VPBROADCASTD(absMask, abs)
	VPBROADCASTD(oneInt, ones)
	VPXORD(iv, iv, iv)
	acc := make([][2]VecVirtual, rows)
	idx := make([][2]VecVirtual, rows)
	for r := range rows {
		for v := range 2 {
			acc[r][v], idx[r][v] = ZMM(), ZMM()
			VPXORD(acc[r][v], acc[r][v], acc[r][v])
			VPXORD(idx[r][v], idx[r][v], idx[r][v])
		}
	}
	TESTQ(n, n)
	JZ(LabelRef("store"))
	Label("loop")
	w := [2]VecVirtual{ZMM(), ZMM()}
	VMOVUPS_Z(Mem{Base: wp}, k1, w[0])
	VMOVUPS_Z(Mem{Base: wp, Disp: 64}, k2, w[1])
	for r := range rows {
		for v := range 2 {
			d := ZMM()
			VSUBPS_BCST(Mem{Base: xr[r]}, w[v], d)
			VPANDD(abs, d, d)
			km := K()
			VCMPPS(U8(0x1e), acc[r][v], d, km) // d > acc (GT_OQ)
			VMOVAPS(d, km, acc[r][v])
			VMOVDQA32(iv, km, idx[r][v])
		}
		ADDQ(U8(4), xr[r])
	}
	VPADDD(ones, iv, iv)
	ADDQ(ldw, wp)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("store")
	yp := Load(Param("y"), GP64())
	ip := Load(Param("idx"), GP64())
	ldy := Load(Param("ldy"), GP64())
	SHLQ(U8(2), ldy)
	for r := range rows {
		VMOVUPS(acc[r][0], k1, Mem{Base: yp})
		VMOVUPS(acc[r][1], k2, Mem{Base: yp, Disp: 64})
		VMOVDQU32(idx[r][0], k1, Mem{Base: ip})
		VMOVDQU32(idx[r][1], k2, Mem{Base: ip, Disp: 64})
		if r < rows-1 {
			ADDQ(ldy, yp)
			ADDQ(ldy, ip)
		}
	}
	VZEROUPPER()
	RET()
}

// infMax: y[r,c] = max_i |w[i,c] - x[r,i]| without the arg-max.
func infMax(rows int) {
	TEXT(fmt.Sprintf("infMax%d", rows), NOSPLIT, "func(y *float32, x, w *float32, k, ldx, ldw, ldy int, mask uint32)")
	Doc(fmt.Sprintf("infMax%d is the l_inf distance of %d rows of x against up to 32 columns of w (see infMaxGo).", rows, rows))
	xr, wp, n, ldw, k1, k2 := tileArgs(rows)
	abs := ZMM()
	VPBROADCASTD(absMask, abs)
	acc := make([][2]VecVirtual, rows)
	for r := range rows {
		for v := range 2 {
			acc[r][v] = ZMM()
			VPXORD(acc[r][v], acc[r][v], acc[r][v])
		}
	}
	TESTQ(n, n)
	JZ(LabelRef("store"))
	Label("loop")
	w := [2]VecVirtual{ZMM(), ZMM()}
	VMOVUPS_Z(Mem{Base: wp}, k1, w[0])
	VMOVUPS_Z(Mem{Base: wp, Disp: 64}, k2, w[1])
	for r := range rows {
		for v := range 2 {
			d := ZMM()
			VSUBPS_BCST(Mem{Base: xr[r]}, w[v], d)
			VPANDD(abs, d, d)
			VMAXPS(d, acc[r][v], acc[r][v])
		}
		ADDQ(U8(4), xr[r])
	}
	ADDQ(ldw, wp)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("store")
	yp := Load(Param("y"), GP64())
	ldy := Load(Param("ldy"), GP64())
	SHLQ(U8(2), ldy)
	for r := range rows {
		VMOVUPS(acc[r][0], k1, Mem{Base: yp})
		VMOVUPS(acc[r][1], k2, Mem{Base: yp, Disp: 64})
		if r < rows-1 {
			ADDQ(ldy, yp)
		}
	}
	VZEROUPPER()
	RET()
}

// powSum: s[r,c] = sum_i pow(|w[i,c] - x[r,i]| * inv[r,c], p), i ascending:
// the second pass of the finite-p forward (inv = 1/max).
func powSum(rows int) {
	TEXT(fmt.Sprintf("powSum%d", rows), NOSPLIT, "func(s, inv *float32, x, w *float32, k, ldx, ldw, ldy int, mask uint32, p float32)")
	Doc(fmt.Sprintf("powSum%d is the power sum of %d rows of x against up to 32 columns of w (see powSumGo).", rows, rows))
	xr, wp, n, ldw, k1, k2 := tileArgs(rows)
	ip := Load(Param("inv"), GP64())
	ldy := Load(Param("ldy"), GP64())
	SHLQ(U8(2), ldy)
	inv := make([][2]VecVirtual, rows)
	sum := make([][2]VecVirtual, rows)
	for r := range rows {
		for v := range 2 {
			inv[r][v], sum[r][v] = ZMM(), ZMM()
			VMOVUPS_Z(Mem{Base: ip, Disp: 64 * v}, []OpmaskVirtual{k1, k2}[v], inv[r][v])
			VPXORD(sum[r][v], sum[r][v], sum[r][v])
		}
		if r < rows-1 {
			ADDQ(ldy, ip)
		}
	}
	pm := paramMem("p")
	TESTQ(n, n)
	JZ(LabelRef("store"))
	Label("loop")
	w := [2]VecVirtual{ZMM(), ZMM()}
	VMOVUPS_Z(Mem{Base: wp}, k1, w[0])
	VMOVUPS_Z(Mem{Base: wp, Disp: 64}, k2, w[1])
	for r := range rows {
		for v := range 2 {
			d := ZMM()
			VSUBPS_BCST(Mem{Base: xr[r]}, w[v], d)
			VPANDD_BCST(absMask, d, d)
			VMULPS(inv[r][v], d, d)
			res, keep := pow(d, pm, false)
			VADDPS(res, sum[r][v], keep, sum[r][v])
		}
		ADDQ(U8(4), xr[r])
	}
	ADDQ(ldw, wp)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("store")
	sp := Load(Param("s"), GP64())
	for r := range rows {
		VMOVUPS(sum[r][0], k1, Mem{Base: sp})
		VMOVUPS(sum[r][1], k2, Mem{Base: sp, Disp: 64})
		if r < rows-1 {
			ADDQ(ldy, sp)
		}
	}
	VZEROUPPER()
	RET()
}

// powGrad: the finite-p backward of rows x units pairs, vectorised over the
// k inputs: t = g[r,c] * sign(x[r,i] - w[c,i]) * pow(|x[r,i] - w[c,i]| *
// inv[r,c], p-1); dx[r,i] += t (c ascending), dw[c,i] -= t (r ascending).
// x, dx, w and dw have rows of k values, ld apart; coef holds (inv, g) per
// pair, row-major.
func powGrad(rows, cols int) {
	TEXT(fmt.Sprintf("powGrad%dx%d", rows, cols), NOSPLIT, "func(dx, dw, x, w, coef *float32, k, ld int, p1 float32)")
	Doc(fmt.Sprintf("powGrad%dx%d is the finite-p backward of %d rows by %d units (see powGradGo).", rows, cols, rows, cols))
	dxp := Load(Param("dx"), GP64()).(GPVirtual)
	dwp := Load(Param("dw"), GP64()).(GPVirtual)
	xp := Load(Param("x"), GP64()).(GPVirtual)
	wp := Load(Param("w"), GP64()).(GPVirtual)
	cp := Load(Param("coef"), GP64()).(GPVirtual)
	n := Load(Param("k"), GP64()).(GPVirtual)
	s1 := Load(Param("ld"), GP64()).(GPVirtual)
	SHLQ(U8(2), s1)
	s3 := GP64()
	LEAQ(Mem{Base: s1, Index: s1, Scale: 2}, s3)
	row := func(base GPVirtual, r int) Mem {
		switch r {
		case 0:
			return Mem{Base: base}
		case 1:
			return Mem{Base: base, Index: s1, Scale: 1}
		case 2:
			return Mem{Base: base, Index: s1, Scale: 2}
		default:
			return Mem{Base: base, Index: s3, Scale: 1}
		}
	}
	pm := paramMem("p1")
	full := K()
	KXNORW(full, full, full)
	body := func(m OpmaskVirtual) {
		xv, dxv := make([]VecVirtual, rows), make([]VecVirtual, rows)
		wv, dwv := make([]VecVirtual, cols), make([]VecVirtual, cols)
		for r := range rows {
			xv[r], dxv[r] = ZMM(), ZMM()
			VMOVUPS_Z(row(xp, r), m, xv[r])
			VMOVUPS_Z(row(dxp, r), m, dxv[r])
		}
		for c := range cols {
			wv[c], dwv[c] = ZMM(), ZMM()
			VMOVUPS_Z(row(wp, c), m, wv[c])
			VMOVUPS_Z(row(dwp, c), m, dwv[c])
		}
		for r := range rows {
			for c := range cols {
				diff, a := ZMM(), ZMM()
				VSUBPS(wv[c], xv[r], diff)
				VPANDD_BCST(absMask, diff, a)
				VMULPS_BCST(Mem{Base: cp, Disp: 8 * (r*cols + c)}, a, a)
				res, _ := pow(a, pm, true)
				VMULPS_BCST(Mem{Base: cp, Disp: 8*(r*cols+c) + 4}, res, res)
				VPTERNLOGD_BCST(U8(0x78), signMask, diff, res) // res ^ (diff & sign)
				VADDPS(res, dxv[r], dxv[r])
				VSUBPS(res, dwv[c], dwv[c])
			}
		}
		for r := range rows {
			VMOVUPS(dxv[r], m, row(dxp, r))
		}
		for c := range cols {
			VMOVUPS(dwv[c], m, row(dwp, c))
		}
	}
	Label("loop")
	CMPQ(n, U8(16))
	JL(LabelRef("tail"))
	body(full)
	for _, p := range []GPVirtual{dxp, dwp, xp, wp} {
		ADDQ(U8(64), p)
	}
	SUBQ(U8(16), n)
	JMP(LabelRef("loop"))
	Label("tail")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	bits, tm := GP32(), K()
	MOVL(U32(1), bits)
	SHLXL(n.As32(), bits, bits)
	DECL(bits)
	KMOVW(bits, tm)
	body(tm)
	Label("done")
	VZEROUPPER()
	RET()
}

// paramMem is the stack address of a scalar argument, for broadcasts.
func paramMem(name string) Mem {
	b, err := Param(name).Resolve()
	if err != nil {
		panic(err)
	}
	return b.Addr
}

// infBounds: for the box [lo, hi] of each row, dhi[r,c] = max_i max(hi_i -
// w[i,c], w[i,c] - lo_i) and dlo[r,c] = max(0, max_i max(lo_i - w[i,c],
// w[i,c] - hi_i)) (see infBoundsGo). The lower candidate is computed as
// -min(hi - w, w - lo), equal in value; an accumulator only takes a strictly
// larger value, so signed zeros never reach it and the bits match Go's.
func infBounds(rows int) {
	TEXT(fmt.Sprintf("infBounds%d", rows), NOSPLIT, "func(dlo, dhi *float32, lo, hi, w *float32, k, ldx, ldw, ldy int, mask uint32)")
	Doc(fmt.Sprintf("infBounds%d bounds the l_inf distance of %d boxes against up to 32 columns of w (see infBoundsGo).", rows, rows))
	lp := Load(Param("lo"), GP64()).(GPVirtual)
	hp := Load(Param("hi"), GP64()).(GPVirtual)
	wp := Load(Param("w"), GP64()).(GPVirtual)
	n := Load(Param("k"), GP64()).(GPVirtual)
	ldx := Load(Param("ldx"), GP64()).(GPVirtual)
	ldw := Load(Param("ldw"), GP64()).(GPVirtual)
	m := Load(Param("mask"), GP32()).(GPVirtual)
	SHLQ(U8(2), ldx)
	SHLQ(U8(2), ldw)
	k1, k2 := K(), K()
	KMOVW(m, k1)
	SHRL(U8(16), m)
	KMOVW(m, k2)
	// Rows r of lo and hi are at lp + r·ldx and hp + r·ldx; hi is addressed
	// from lo through the constant difference hp - lp.
	SUBQ(lp, hp)
	accL := make([][2]VecVirtual, rows)
	accH := make([][2]VecVirtual, rows)
	for r := range rows {
		for v := range 2 {
			accL[r][v], accH[r][v] = ZMM(), ZMM()
			VPXORD(accL[r][v], accL[r][v], accL[r][v])
			VPXORD(accH[r][v], accH[r][v], accH[r][v])
		}
	}
	TESTQ(n, n)
	JZ(LabelRef("store"))
	row := GP64()
	Label("loop")
	w := [2]VecVirtual{ZMM(), ZMM()}
	VMOVUPS_Z(Mem{Base: wp}, k1, w[0])
	VMOVUPS_Z(Mem{Base: wp, Disp: 64}, k2, w[1])
	MOVQ(lp, row)
	for r := range rows {
		for v := range 2 {
			d1, d2 := ZMM(), ZMM()
			VSUBPS_BCST(Mem{Base: row, Index: hp, Scale: 1}, w[v], d1) // w - hi
			VPXORD_BCST(signMask, d1, d1)                              // hi - w
			VSUBPS_BCST(Mem{Base: row}, w[v], d2)                      // w - lo
			c := ZMM()
			VMAXPS(d2, d1, c)
			VMAXPS(accH[r][v], c, accH[r][v]) // c > acc ? c : acc
			VMINPS(d2, d1, c)
			VPXORD_BCST(signMask, c, c)
			VMAXPS(accL[r][v], c, accL[r][v])
		}
		if r < rows-1 {
			ADDQ(ldx, row)
		}
	}
	ADDQ(U8(4), lp)
	ADDQ(ldw, wp)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("store")
	lo := Load(Param("dlo"), GP64())
	hi := Load(Param("dhi"), GP64())
	ldy := Load(Param("ldy"), GP64())
	SHLQ(U8(2), ldy)
	for r := range rows {
		VMOVUPS(accL[r][0], k1, Mem{Base: lo})
		VMOVUPS(accL[r][1], k2, Mem{Base: lo, Disp: 64})
		VMOVUPS(accH[r][0], k1, Mem{Base: hi})
		VMOVUPS(accH[r][1], k2, Mem{Base: hi, Disp: 64})
		if r < rows-1 {
			ADDQ(ldy, lo)
			ADDQ(ldy, hi)
		}
	}
	VZEROUPPER()
	RET()
}

// insertSorted runs the sorting network that puts d into the descending
// list t (t[0] largest), in place: for each position, d' = min(t_q, d) and
// t_q = max(t_q, d), d' feeding the next. Lanes whose d is not above the
// last entry keep their values. d is clobbered.
func insertSorted(t []VecVirtual, d VecVirtual) {
	cur, next := d, ZMM()
	for q := range t {
		VMINPS(cur, t[q], next)
		VMAXPS(cur, t[q], t[q])
		cur, next = next, cur
	}
}

// sortValue emits y = (1e-10 + sum_q c_q·t_q) / norm in ascending q, c
// and norm broadcast from memory (see sortValue in bounds.go).
func sortValue(t []VecVirtual, cp GPVirtual, norm Mem) VecVirtual {
	acc := ZMM()
	VBROADCASTSS(sortEps, acc)
	for q, v := range t {
		m := ZMM()
		VMULPS_BCST(Mem{Base: cp, Disp: 4 * q}, v, m)
		VADDPS(m, acc, acc)
	}
	VDIVPS_BCST(norm, acc, acc)
	return acc
}

// sortTop: one row of x against up to 32 columns of w: the sort neuron of
// the 10 largest |w[i,c] - x_i| (see sortTopGo). A vector whose lanes all
// fall below their lists' last entry skips the network.
func sortTop() {
	TEXT("sortTop10", NOSPLIT, "func(y, x, w *float32, k, ldw int, mask uint32, c *float32, norm float32)")
	Doc("sortTop10 is the sort neuron (K = 10) of one row of x against up to 32 columns of w (see sortTopGo).")
	xp := Load(Param("x"), GP64()).(GPVirtual)
	wp := Load(Param("w"), GP64()).(GPVirtual)
	n := Load(Param("k"), GP64()).(GPVirtual)
	ldw := Load(Param("ldw"), GP64()).(GPVirtual)
	m := Load(Param("mask"), GP32()).(GPVirtual)
	SHLQ(U8(2), ldw)
	k1, k2 := K(), K()
	KMOVW(m, k1)
	SHRL(U8(16), m)
	KMOVW(m, k2)
	var t [2][]VecVirtual
	for v := range 2 {
		for range sortK {
			r := ZMM()
			VPXORD(r, r, r)
			t[v] = append(t[v], r)
		}
	}
	TESTQ(n, n)
	JZ(LabelRef("store"))
	Label("loop")
	for v, km := range []OpmaskVirtual{k1, k2} {
		w, d := ZMM(), ZMM()
		VMOVUPS_Z(Mem{Base: wp, Disp: 64 * v}, km, w)
		VSUBPS_BCST(Mem{Base: xp}, w, d)
		VPANDD_BCST(absMask, d, d)
		in := K()
		VCMPPS(U8(0x1e), t[v][sortK-1], d, in) // d > last (GT_OQ)
		KORTESTW(in, in)
		JZ(LabelRef(fmt.Sprintf("skip%d", v)))
		insertSorted(t[v], d)
		Label(fmt.Sprintf("skip%d", v))
	}
	ADDQ(U8(4), xp)
	ADDQ(ldw, wp)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("store")
	cp := Load(Param("c"), GP64()).(GPVirtual)
	yp := Load(Param("y"), GP64())
	norm := paramMem("norm")
	for v, km := range []OpmaskVirtual{k1, k2} {
		VMOVUPS(sortValue(t[v], cp, norm), km, Mem{Base: yp, Disp: 64 * v})
	}
	VZEROUPPER()
	RET()
}

// sortBounds: the sort neuron's interval bounds (K = 10) of one box against
// up to 16 columns of w (see sortBoundsGo): the lists of per-coordinate
// upper bounds max(hi - w, w - lo) and lower bounds max(lo - w, w - hi, 0).
func sortBounds() {
	TEXT("sortBounds10", NOSPLIT, "func(dlo, dhi, lo, hi, w *float32, k, ldw int, mask uint32, c *float32, norm float32)")
	Doc("sortBounds10 bounds the sort neuron (K = 10) of one box against up to 16 columns of w (see sortBoundsGo).")
	lp := Load(Param("lo"), GP64()).(GPVirtual)
	hp := Load(Param("hi"), GP64()).(GPVirtual)
	wp := Load(Param("w"), GP64()).(GPVirtual)
	n := Load(Param("k"), GP64()).(GPVirtual)
	ldw := Load(Param("ldw"), GP64()).(GPVirtual)
	m := Load(Param("mask"), GP32()).(GPVirtual)
	SHLQ(U8(2), ldw)
	km := K()
	KMOVW(m, km)
	var tl, th []VecVirtual
	for range sortK {
		a, b := ZMM(), ZMM()
		VPXORD(a, a, a)
		VPXORD(b, b, b)
		tl, th = append(tl, a), append(th, b)
	}
	zero := ZMM()
	VPXORD(zero, zero, zero)
	TESTQ(n, n)
	JZ(LabelRef("store"))
	Label("loop")
	w, d1, d2 := ZMM(), ZMM(), ZMM()
	VMOVUPS_Z(Mem{Base: wp}, km, w)
	VSUBPS_BCST(Mem{Base: hp}, w, d1) // w - hi
	VPXORD_BCST(signMask, d1, d1)     // hi - w
	VSUBPS_BCST(Mem{Base: lp}, w, d2) // w - lo
	for h, list := range [][]VecVirtual{th, tl} {
		c := ZMM()
		if h == 0 {
			VMAXPS(d2, d1, c)
		} else {
			VMINPS(d2, d1, c)
			VPXORD_BCST(signMask, c, c)
			VMAXPS(zero, c, c) // c > 0 ? c : +0
		}
		in := K()
		VCMPPS(U8(0x1e), list[sortK-1], c, in)
		KORTESTW(in, in)
		JZ(LabelRef(fmt.Sprintf("skip%d", h)))
		insertSorted(list, c)
		Label(fmt.Sprintf("skip%d", h))
	}
	ADDQ(U8(4), lp)
	ADDQ(U8(4), hp)
	ADDQ(ldw, wp)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("store")
	cp := Load(Param("c"), GP64()).(GPVirtual)
	norm := paramMem("norm")
	dl := Load(Param("dlo"), GP64())
	VMOVUPS(sortValue(tl, cp, norm), km, Mem{Base: dl})
	dh := Load(Param("dhi"), GP64())
	VMOVUPS(sortValue(th, cp, norm), km, Mem{Base: dh})
	VZEROUPPER()
	RET()
}
