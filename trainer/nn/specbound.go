package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// This file proves upper bounds on spectral norms for certificates. Power
// iteration (lipschitz.go) approaches a norm from below and bounds nothing;
// here a candidate bound s for ‖B‖₂² is checked by a Cholesky factorisation
// of s·I − BᵀB in float64, and the rounding of that check is bounded
// explicitly, so that the returned value is ≥ the exact norm of the exact
// (real-number) operator whatever the rounding did. Notation: u = 2⁻⁵³ is the
// float64 unit roundoff, γ_k = k·u/(1 − k·u) (Higham, "Accuracy and
// Stability of Numerical Algorithms", §3.1). Underflow is covered by an
// absolute term tinyAbs per rounded operation, far below any bound in use.

const (
	u64     = 0x1p-53
	tinyAbs = 0x1p-1000 // ≥ the absolute error of any underflowing operation here, times the number of them
	// twiddleErr bounds |fl(cos(2πp/M)) − cos(2πp/M)| (and the same for
	// sin) for the float64 evaluation cos(2π·p/M) with integers 0 ≤ p < M ≤
	// 2²⁰: the argument 2π·p/M carries at most 3 roundings of a value below
	// 2π (relative error ≤ 3u, absolute ≤ 6πu < 2.1e-15), cos and sin are
	// 1-Lipschitz, and Go's math.Cos/Sin add at most a few ulp of a value at
	// most 1 (< 1e-15). 1e-14 leaves a factor of three.
	twiddleErr = 1e-14
)

// gamma64 is γ_k for float64.
func gamma64(k int) float64 { return float64(k) * u64 / (1 - float64(k)*u64) }

// Gamma32 is γ_k = k·u/(1 − k·u) for float32 (u = 2⁻²⁴): the relative error
// bound of a float32 dot product of length k, |fl(xᵀy) − xᵀy| ≤ γ_k·|x|ᵀ|y|,
// in any order of summation and with or without fused multiply-adds.
func Gamma32(k int) float64 {
	const u = 0x1p-24
	return float64(k) * u / (1 - float64(k)*u)
}

// Up returns an upper bound on the exact value of a non-negative quantity x
// computed in float64 by at most ops roundings of non-negative sums,
// products, quotients and square roots: each rounding changes a value by a
// factor in [1 − u, 1 + u], so the exact value is at most x/(1 − u)^ops ≤
// x·(1 + 2γ_ops). The result's own rounding is inside the factor two.
func Up(x float64, ops int) float64 { return x*(1+2*gamma64(ops+2)) + tinyAbs }

// SquaredNormBound proves λ_max(BᵀB) = ‖B‖₂² ≤ the returned value for the
// rows×cols matrix b (row-major float64, taken as exact values), given a
// candidate s (a little above ‖B‖₂², e.g. from power iteration); ok is false
// when the check fails at s (try a larger s).
//
// Proof. Let G = BᵀB (or BBᵀ, the smaller; same λ_max) in exact arithmetic,
// of order p with inner length q, and G̃ its float64 product: |G̃ − G| ≤
// γ_q·|B|ᵀ|B| elementwise. Let Ã be the float64 matrix s·I − G̃ as formed (the
// diagonal rounded once: |Ã_ii − (s − G̃_ii)| ≤ u·|Ã_ii|). Then E = (s·I − G) −
// Ã has ‖E‖₂ ≤ ‖E‖_∞ (E is symmetric) ≤ γ_q·max_i (|B|ᵀ|B|·1)_i + u·max_i
// |Ã_ii| =: e. If the Cholesky factorisation of Ã runs to completion in
// floating point (every pivot > 0), its computed factor R̃ satisfies R̃ᵀR̃ =
// Ã + ΔA with |ΔA| ≤ γ_{p+1}·|R̃ᵀ||R̃| (Higham, Theorem 10.3; its proof does
// not use definiteness, only completion: Rump, BIT 46, 2006), so ‖ΔA‖₂ ≤
// ‖ΔA‖_F ≤ γ_{p+1}·‖R̃‖_F² =: d. Hence s·I − G = R̃ᵀR̃ − ΔA + E ⪰ −(d + e)·I,
// i.e. λ_max(G) ≤ s + d + e, which is returned rounded upwards.
func SquaredNormBound(b []float64, rows, cols int, s float64) (bound float64, ok bool) {
	if len(b) != rows*cols || rows < 1 || cols < 1 || !(s > 0) || math.IsInf(s, 0) {
		return 0, false
	}
	bm := blas64.General{Rows: rows, Cols: cols, Stride: cols, Data: b}
	tA, tB, p, q := blas.Trans, blas.NoTrans, cols, rows // G = BᵀB
	if rows < cols {
		tA, tB, p, q = blas.NoTrans, blas.Trans, rows, cols // G = BBᵀ
	}
	g := blas64.General{Rows: p, Cols: p, Stride: p, Data: make([]float64, p*p)}
	blas64.Gemm(tA, tB, 1, bm, bm, 0, g)
	// e: the row sums of |B|ᵀ|B| (for G = BᵀB; the transpose for BBᵀ) are
	// |B|ᵀ(|B|·1), all non-negative, so bounded above by Up.
	var absRow float64
	if p == cols {
		rho := make([]float64, rows) // |B|·1
		for r := range rows {
			for _, v := range b[r*cols : (r+1)*cols] {
				rho[r] += math.Abs(v)
			}
		}
		col := make([]float64, cols) // |B|ᵀρ
		for r := range rows {
			for c, v := range b[r*cols : (r+1)*cols] {
				col[c] += math.Abs(v) * rho[r]
			}
		}
		for _, v := range col {
			absRow = max(absRow, v)
		}
	} else {
		kappa := make([]float64, cols) // |B|ᵀ·1
		for r := range rows {
			for c, v := range b[r*cols : (r+1)*cols] {
				kappa[c] += math.Abs(v)
			}
		}
		for r := range rows {
			var t float64
			for c, v := range b[r*cols : (r+1)*cols] {
				t += math.Abs(v) * kappa[c]
			}
			absRow = max(absRow, t)
		}
	}
	absRow = Up(absRow, 2*(rows+cols)+2)
	a := g.Data
	for i := range a {
		a[i] = -a[i]
	}
	var maxDiag float64
	for i := range p {
		a[i*p+i] += s
		maxDiag = max(maxDiag, math.Abs(a[i*p+i]))
	}
	e := Up(gamma64(q)*absRow+u64*maxDiag, 4)
	if !cholesky(a, p) {
		return 0, false
	}
	var fro float64 // ‖R̃‖_F², the upper triangle of a
	for i := range p {
		for _, v := range a[i*p+i : (i+1)*p] {
			fro += v * v
		}
	}
	d := Up(gamma64(p+1)*Up(fro, 2*p*p), 2)
	return Up(s+d+e, 3), true
}

// cholesky factorises the symmetric p×p matrix a (row-major, upper triangle
// read) in place into the upper triangular R with RᵀR = a, by the
// right-looking outer-product algorithm (every entry of R is a_ij minus an
// inner product, then divided by a square root: the computation Higham's
// Theorem 10.3 analyses). It reports false when a pivot is not positive
// (or NaN), i.e. when the factorisation does not run to completion.
func cholesky(a []float64, p int) bool {
	for k := range p {
		piv := a[k*p+k]
		if !(piv > 0) || math.IsInf(piv, 0) {
			return false
		}
		rk := math.Sqrt(piv)
		a[k*p+k] = rk
		row := a[k*p+k+1 : (k+1)*p]
		for j := range row {
			row[j] /= rk
		}
		for i := k + 1; i < p; i++ {
			f := a[k*p+i]
			if f == 0 {
				continue
			}
			ri := a[i*p+i : (i+1)*p]
			for j := range ri {
				ri[j] -= f * row[i-k-1+j]
			}
		}
	}
	return true
}

// estimateSquaredNorm returns a power-iteration estimate of ‖B‖₂² (from
// below, usually very close): the candidate that SquaredNormBound proves.
func estimateSquaredNorm(b []float64, rows, cols, iters int, rng *rand.Rand) float64 {
	v, w := make([]float64, cols), make([]float64, rows)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	var lam float64
	for range iters {
		var nv float64
		for _, x := range v {
			nv += x * x
		}
		if nv == 0 {
			return 0
		}
		nv = math.Sqrt(nv)
		for i := range v {
			v[i] /= nv
		}
		for r := range rows {
			var t float64
			for c, x := range b[r*cols : (r+1)*cols] {
				t += x * v[c]
			}
			w[r] = t
		}
		lam = 0
		for _, x := range w {
			lam += x * x
		}
		clear(v)
		for r := range rows {
			for c, x := range b[r*cols : (r+1)*cols] {
				v[c] += x * w[r]
			}
		}
	}
	return lam
}

// proveMax proves a common bound on ‖B_i‖₂² for every matrix of mats (each
// rows×cols, row-major): it estimates each norm, takes the largest estimate
// times 1 + 2⁻²⁰ as the candidate, proves it for every matrix and, where a
// check fails, raises it along the ladder 1 + 2⁻¹⁸, 1 + 2⁻¹⁶, … (times the
// largest estimate, up to a factor 2) and bisects back towards the failure;
// it returns the largest proven value.
// matrix is a rows×cols row-major float64 matrix.
type matrix struct {
	b          []float64
	rows, cols int
}

func proveMax(mats func(yield func(matrix) bool), iters int) (float64, error) {
	rng := rand.New(rand.NewPCG(0x73706563, 0x626f756e64))
	var est float64
	for a := range mats {
		est = max(est, estimateSquaredNorm(a.b, a.rows, a.cols, iters, rng))
	}
	if math.IsNaN(est) || math.IsInf(est, 0) {
		return 0, fmt.Errorf("spectral bound: the norm estimate is %v", est)
	}
	if est == 0 {
		est = 0x1p-100 // a zero operator: any positive candidate passes
	}
	// s is the current candidate: every matrix so far is proven at s or
	// below. A failing matrix raises it along the ladder, then bisection
	// between the last failure and the first success brings it back down
	// to within 2⁻²⁴ (relative) of the smallest passing ladder value.
	s := est * (1 + 0x1p-20)
	worst := 0.0
	i := 0
	for a := range mats {
		bound, ok := SquaredNormBound(a.b, a.rows, a.cols, s)
		if !ok {
			lo := s
			hi := 0.0
			for step := 0x1p-18; step <= 1; step *= 4 {
				t := est * (1 + step)
				if t <= lo {
					continue
				}
				if b, ok := SquaredNormBound(a.b, a.rows, a.cols, t); ok {
					hi, bound = t, b
					break
				}
				lo = t
			}
			if hi == 0 {
				return 0, fmt.Errorf("spectral bound: matrix %d (%dx%d): no Cholesky check passed up to twice the estimate %g", i, a.rows, a.cols, est)
			}
			for range 12 {
				if hi-lo <= 0x1p-24*hi {
					break
				}
				mid := lo + (hi-lo)/2
				if b, ok := SquaredNormBound(a.b, a.rows, a.cols, mid); ok {
					hi, bound = mid, b
				} else {
					lo = mid
				}
			}
			s = hi
		}
		worst = max(worst, bound)
		i++
	}
	return worst, nil
}

// LinearNormBound returns a proven upper bound on the spectral norm of the
// out×in matrix w (PyTorch layout, float32 values taken exactly): the
// Cholesky check of SquaredNormBound on its Gram matrix.
func LinearNormBound(w []float32, out, in int) (float64, error) {
	if len(w) != out*in {
		return 0, fmt.Errorf("linear norm bound: %d weights for %dx%d", len(w), out, in)
	}
	b := make([]float64, len(w))
	for i, v := range w {
		b[i] = float64(v)
	}
	s, err := proveMax(func(yield func(matrix) bool) { yield(matrix{b, out, in}) }, 100)
	if err != nil {
		return 0, fmt.Errorf("linear %dx%d: %w", out, in, err)
	}
	return Up(math.Sqrt(s), 1), nil
}

// ConvNormBound returns a proven upper bound on the ℓ2 operator norm of the
// convolution of geometry g (zero padding, stride) with the float32 kernel w
// (Cout×Cin×K×K, values taken exactly), on inputs of g's size.
//
// Proof. (1) Stride: a convolution of stride S is a stride-1 convolution
// after space-to-depth: pad the input to (H+2P)×(W+2P), split it into its S²
// phases (x_pad[S·i + a, S·j + b] goes to channel (c, a, b) at (i, j), on a
// grid of ⌈(H+2P)/S⌉ × ⌈(W+2P)/S⌉), and use the kernel K'[o, (c,a,b), i', j'] =
// K[o, c, S·i' + a, S·j' + b] (0 beyond K) of size ⌈K/S⌉. The padding and
// rearrangement is an isometric embedding of the real input, and the
// original outputs are a subset of the stride-1 "valid" outputs, so the
// original norm is at most that of the stride-1 map on the phase grid
// (stride 1: the padded input itself, or equally the unpadded one, since
// padding is zero and the outputs are a subset of the full convolution's).
// (2) A linear (full) convolution of an n-grid with a k-kernel embeds
// exactly in the circular convolution on an N-grid for N ≥ n + k − 1 (no
// wrap-around), which is a compression of it, so its norm is at most the
// circular one's. (3) The circular convolution is block-diagonalised by the
// 2-D DFT: its norm is max over the N_h×N_w frequencies ω of ‖K̂(ω)‖₂, K̂(ω)
// = Σ_{a,b} K'[:, :, a, b]·e^{−2πi(ω_h·a/N_h + ω_w·b/N_w)}; ω and −ω have
// conjugate K̂ and the same norm, so half the grid suffices. A 1×1 kernel'
// gives a block-diagonal operator of norm ‖K'‖ itself (one frequency).
// (4) Each K̂(ω) is computed in float64 with twiddles off by at most
// twiddleErr and sums of k'² terms: each real and imaginary part is off by
// at most c·S_oc, c = γ_{k'²}(1 + twiddleErr) + twiddleErr, S_oc = Σ|K'_oc|,
// so ‖K̂ − K̂̃‖₂ ≤ ‖K̂ − K̂̃‖_F ≤ √2·c·‖S‖_F =: δ for every ω. (5) ‖K̂̃(ω)‖₂ is
// proven by SquaredNormBound on its real embedding [[Re, −Im], [Im, Re]]
// (same singular values, each twice), and ‖K̂(ω)‖₂ ≤ ‖K̂̃(ω)‖₂ + δ.
func ConvNormBound(g ConvGeom, w []float32) (float64, error) {
	if !g.valid() || len(w) != g.WeightLen() {
		return 0, fmt.Errorf("conv norm bound: geometry %+v with %d weights", g, len(w))
	}
	s := g.Stride
	k2 := (g.K + s - 1) / s
	ci2 := g.Cin * s * s
	co := g.Cout
	// Space-to-depth kernel, Cout × (Cin·S·S) × k2 × k2, in float64.
	kk := make([]float64, co*ci2*k2*k2)
	for o := range co {
		for c := range g.Cin {
			for y := range g.K {
				for x := range g.K {
					c2 := (c*s+y%s)*s + x%s
					kk[((o*ci2+c2)*k2+y/s)*k2+x/s] = float64(w[((o*g.Cin+c)*g.K+y)*g.K+x])
				}
			}
		}
	}
	nh, nw := 1, 1
	if k2 > 1 {
		if s == 1 {
			nh, nw = g.H+k2-1, g.W+k2-1
		} else {
			nh, nw = (g.H+2*g.Pad+s-1)/s+k2-1, (g.W+2*g.Pad+s-1)/s+k2-1
		}
	}
	taps := k2 * k2
	c := gamma64(taps)*(1+twiddleErr) + twiddleErr
	var sumS2 float64
	for oc := range co * ci2 {
		var so float64
		for _, v := range kk[oc*taps : (oc+1)*taps] {
			so += math.Abs(v)
		}
		so = Up(so, taps)
		sumS2 += so * so
	}
	delta := Up(math.Sqrt2*c*math.Sqrt(Up(sumS2, co*ci2+1)), 4)
	// Twiddle tables: e^{−2πi·p/M} for p = (ω_h·a·N_w + ω_w·b·N_h) mod M, M = N_h·N_w.
	m := nh * nw
	cosT, sinT := make([]float64, m), make([]float64, m)
	for p := range m {
		th := 2 * math.Pi * float64(p) / float64(m)
		cosT[p], sinT[p] = math.Cos(th), -math.Sin(th)
	}
	oc := co * ci2
	emb := make([]float64, 4*oc)
	re := make([]float64, oc)
	mats := func(yield func(matrix) bool) {
		for wh := range nh {
			for ww := range nw {
				ch, cw := (nh-wh)%nh, (nw-ww)%nw
				if ch*nw+cw < wh*nw+ww {
					continue // the conjugate frequency (same norm) is taken instead
				}
				selfConj := ch == wh && cw == ww
				for i := range oc {
					var sr, si float64
					for a := range k2 {
						for b := range k2 {
							p := (wh*a*nw + ww*b*nh) % m
							v := kk[i*taps+a*k2+b]
							sr += v * cosT[p]
							si += v * sinT[p]
						}
					}
					if selfConj {
						re[i] = sr
						continue
					}
					o, cc := i/ci2, i%ci2
					ld := 2 * ci2
					emb[o*ld+cc], emb[o*ld+ci2+cc] = sr, -si
					emb[(co+o)*ld+cc], emb[(co+o)*ld+ci2+cc] = si, sr
				}
				var ok bool
				if selfConj {
					ok = yield(matrix{re, co, ci2})
				} else {
					ok = yield(matrix{emb, 2 * co, 2 * ci2})
				}
				if !ok {
					return
				}
			}
		}
	}
	sq, err := proveMax(mats, 60)
	if err != nil {
		return 0, fmt.Errorf("conv %dx%d k%d s%d p%d on %dx%d: %w", g.Cout, g.Cin, g.K, g.Stride, g.Pad, g.H, g.W, err)
	}
	return Up(Up(math.Sqrt(sq), 1)+delta, 1), nil
}

// ConvAbsNormBound returns an upper bound on ‖|A|‖₂ for the convolution A of
// geometry g with kernel w, |A| being the convolution with the kernel |w|
// (what the rounding error of A·x is proportional to). ‖M‖₂ ≤
// √(‖M‖₁·‖M‖_∞): a row of |A| (one output) sums at most Σ_{c,a,b}|w_o,c,a,b|
// (fewer at the border), a column (one input pixel of channel c) at most
// Σ_{o,a,b}|w_o,c,a,b|, since each tap reaches a pixel from at most one output.
func ConvAbsNormBound(g ConvGeom, w []float32) float64 {
	kk := g.K * g.K
	row, col := make([]float64, g.Cout), make([]float64, g.Cin)
	for o := range g.Cout {
		for c := range g.Cin {
			var s float64
			for _, v := range w[(o*g.Cin+c)*kk : (o*g.Cin+c+1)*kk] {
				s += math.Abs(float64(v))
			}
			row[o] += s
			col[c] += s
		}
	}
	return absNorm(row, col, g.Cin*kk+g.Cout*kk)
}

// LinearAbsNormBound is ConvAbsNormBound for the out×in matrix w.
func LinearAbsNormBound(w []float32, out, in int) float64 {
	row, col := make([]float64, out), make([]float64, in)
	for o := range out {
		for i, v := range w[o*in : (o+1)*in] {
			a := math.Abs(float64(v))
			row[o] += a
			col[i] += a
		}
	}
	return absNorm(row, col, out+in)
}

func absNorm(row, col []float64, ops int) float64 {
	var r, c float64
	for _, v := range row {
		r = max(r, v)
	}
	for _, v := range col {
		c = max(c, v)
	}
	return Up(math.Sqrt(Up(r, ops)*Up(c, ops)), 2)
}

// bandedBudget caps the work (order × bandwidth², flops) of the exact banded
// check of a convolution; larger operators get only the DFT bound.
const bandedBudget = 3e9

// ConvNormBoundFrom is ConvNormBound that, when affordable, also proves the
// norm of the operator itself (BandedConvNormBound, tight where the DFT
// bound over-estimates a zero-padded convolution on a small grid), starting
// its candidate search from start (an approximate top right singular vector
// of InLen values, e.g. a power iteration's; nil: random), and returns the
// smaller of the two proven bounds.
func ConvNormBoundFrom(g ConvGeom, w, start []float32) (float64, error) {
	dft, err := ConvNormBound(g, w)
	if err != nil {
		return 0, err
	}
	bw := g.Cin*((g.K-1)*(g.W+1)+1) - 1
	if float64(g.InLen())*float64(bw+1)*float64(bw+1) > bandedBudget {
		return dft, nil
	}
	band, err := BandedConvNormBound(g, w, start)
	if err != nil {
		return dft, nil // the DFT bound stands on its own
	}
	return min(dft, band), nil
}

// BandedConvNormBound proves a bound on the norm of the convolution A
// (geometry g, kernel w) by the Cholesky check of s·I − AᵀA on the Gram
// matrix itself. Ordering the inputs pixel-major, (y, x, c) ↦ (y·W + x)·Cin
// + c, two inputs share an output only if they are fewer than K rows and
// columns apart, so G = AᵀA is banded with bandwidth Cin·((K−1)(W+1)+1) − 1,
// and so is its Cholesky factor (entries outside the band are never
// touched; LAPACK's banded Cholesky, whose blocked updates compute the same
// entries as inner products in another order, to which Higham's Theorem 10.3
// applies alike). The proof is SquaredNormBound's: G̃ sums at most q = Cout·K²
// products per entry (|G̃ − G| ≤ γ_q·|A|ᵀ|A|), the row sums of |A|ᵀ|A| bound
// that error's norm, and the factorisation's backward error is bounded by
// γ_{p+1}·‖R̃‖_F². The candidate s comes from a float64 power iteration on
// G started at start (Lanczos), raised along a ladder until the
// check passes and then bisected down towards the last failure.
func BandedConvNormBound(g ConvGeom, w, start []float32) (float64, error) {
	if !g.valid() || len(w) != g.WeightLen() {
		return 0, fmt.Errorf("banded conv norm bound: geometry %+v with %d weights", g, len(w))
	}
	n := g.InLen()
	bw := g.Cin*((g.K-1)*(g.W+1)+1) - 1
	bw = min(bw, n-1)
	ld := bw + 1
	G := make([]float64, n*ld) // G[a*ld + (b−a)] for a ≤ b ≤ a+bw
	absRow := make([]float64, n)
	ho, wo := g.Ho(), g.Wo()
	idx := make([]int, 0, g.Cin*g.K*g.K)
	tap := make([]int, 0, g.Cin*g.K*g.K)
	kk := g.K * g.K
	for i := range ho {
		for j := range wo {
			idx, tap = idx[:0], tap[:0]
			for ky := range g.K {
				y := i*g.Stride - g.Pad + ky
				if y < 0 || y >= g.H {
					continue
				}
				for kx := range g.K {
					x := j*g.Stride - g.Pad + kx
					if x < 0 || x >= g.W {
						continue
					}
					for c := range g.Cin {
						idx = append(idx, (y*g.W+x)*g.Cin+c)
						tap = append(tap, c*kk+ky*g.K+kx)
					}
				}
			}
			// idx is increasing: y, then x, then c.
			for o := range g.Cout {
				wr := w[o*g.Cin*kk : (o+1)*g.Cin*kk]
				var rho float64
				for _, t := range tap {
					rho += math.Abs(float64(wr[t]))
				}
				for p, a := range idx {
					wa := float64(wr[tap[p]])
					absRow[a] += math.Abs(wa) * rho
					row := G[a*ld-a:]
					for q := p; q < len(idx); q++ {
						row[idx[q]] += wa * float64(wr[tap[q]])
					}
				}
			}
		}
	}
	var maxAbs float64
	for _, v := range absRow {
		maxAbs = max(maxAbs, v)
	}
	q := g.Cout * kk
	maxAbs = Up(maxAbs, 3*q+2)

	// Candidate: power iteration on G with Rayleigh quotients.
	v := make([]float64, n)
	if len(start) == n {
		for i, x := range start {
			v[i] = float64(x)
		}
	}
	// start is in the operator's (c, y, x) order; permute to (y, x, c).
	if len(start) == n {
		p := make([]float64, n)
		for c := range g.Cin {
			for y := range g.H {
				for x := range g.W {
					p[(y*g.W+x)*g.Cin+c] = v[(c*g.H+y)*g.W+x]
				}
			}
		}
		v = p
	} else {
		rng := rand.New(rand.NewPCG(0x62616e64, uint64(n)))
		for i := range v {
			v[i] = rng.NormFloat64()
		}
	}
	lam := lanczosMax(func(y, x []float64) { bandMul(y, G, x, n, ld) }, v, 60)
	if !(lam > 0) || math.IsInf(lam, 0) {
		return 0, fmt.Errorf("banded conv norm bound: estimate %v", lam)
	}
	work := make([]float64, len(G))
	check := func(s float64) (float64, bool) {
		copy(work, G)
		var maxDiag float64
		for i := range work {
			work[i] = -work[i]
		}
		for a := range n {
			work[a*ld] += s
			maxDiag = max(maxDiag, math.Abs(work[a*ld]))
		}
		if !bandCholesky(n, bw, work, ld) {
			return 0, false
		}
		var fro float64
		for _, x := range work {
			fro += x * x
		}
		e := Up(gamma64(q)*maxAbs+u64*maxDiag, 4)
		d := Up(gamma64(n+1)*Up(fro, 2*len(work)), 2)
		return Up(s+d+e, 3), true
	}
	lo := lam * (1 - 0x1p-30)
	var hi, best float64
	for step := 0x1p-20; step <= 1; step *= 4 {
		s := lam * (1 + step)
		if b, ok := check(s); ok {
			hi, best = s, b
			break
		}
		lo = s
	}
	if hi == 0 {
		return 0, fmt.Errorf("banded conv norm bound: no Cholesky check passed up to twice the estimate %g", lam)
	}
	for range 8 {
		if hi-lo <= 0x1p-19*hi {
			break
		}
		mid := lo + (hi-lo)/2
		if b, ok := check(mid); ok {
			hi, best = mid, b
		} else {
			lo = mid
		}
	}
	return Up(math.Sqrt(best), 1), nil
}

// bandMul writes y = G·x for the symmetric banded G (upper band, ld = bw+1).
func bandMul(y, G, x []float64, n, ld int) {
	gemm64.Dsbmv(blas.Upper, n, ld-1, 1, G, ld, x, 1, 0, y, 1)
}

// lanczosMax estimates the largest eigenvalue of the symmetric positive
// semi-definite operator mul (y = G·x) by at most steps Lanczos iterations
// with full reorthogonalisation, started at v (overwritten): the largest
// Ritz value, which converges much faster than power iteration when the top
// eigenvalues cluster. It is only a candidate for the Cholesky check.
func lanczosMax(mul func(y, x []float64), v []float64, steps int) float64 {
	n := len(v)
	steps = min(steps, n)
	nrm := func(x []float64) float64 {
		var s float64
		for _, t := range x {
			s += t * t
		}
		return math.Sqrt(s)
	}
	b0 := nrm(v)
	if b0 == 0 {
		return 0
	}
	basis := make([][]float64, 0, steps)
	q := make([]float64, n)
	for i := range v {
		q[i] = v[i] / b0
	}
	var alpha, beta []float64
	w := make([]float64, n)
	for k := range steps {
		basis = append(basis, q)
		mul(w, q)
		var a float64
		for i := range w {
			a += w[i] * q[i]
		}
		alpha = append(alpha, a)
		for range 2 { // full reorthogonalisation, twice
			for _, b := range basis {
				var d float64
				for i := range w {
					d += w[i] * b[i]
				}
				for i := range w {
					w[i] -= d * b[i]
				}
			}
		}
		bk := nrm(w)
		if k == steps-1 || bk <= 1e-12*math.Abs(a) {
			break
		}
		beta = append(beta, bk)
		next := make([]float64, n)
		for i := range w {
			next[i] = w[i] / bk
		}
		q = next
	}
	m := len(alpha)
	t := mat.NewSymDense(m, nil)
	for i := range m {
		t.SetSym(i, i, alpha[i])
		if i+1 < m {
			t.SetSym(i, i+1, beta[i])
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(t, false) {
		return 0
	}
	top := 0.0
	for _, e := range eig.Values(nil) {
		top = max(top, e)
	}
	return top
}
