package nn

import (
	"fmt"
	"math"
	"unsafe"

	"gonum.org/v1/gonum/blas"
)

// LOT64 evaluates a LOT layer's map in float64, with a proven bound on the
// rounding error of that evaluation: the certified forward pass of a LOT
// network (models.LipConvnet.ProvenLogits) runs it instead of the float32
// Forward.
//
// The exact map. For the M_orth the layer holds (float32 complex values
// per half-spectrum frequency f = u·Half + v, l.mo, the matrices
// LipschitzBound proves), the layer is the real-linear map
//
//	T x = crop(IDFT_n(M̃ · DFT_n(pad(S x)))) + b
//
// with S the space-to-depth permutation (stride 2; else the identity),
// pad the zero padding of N×N planes by ⌊K/2⌋ to n×n, DFT_n the exact 2-D DFT
// (twiddles e^{∓2πi·k/n} in real numbers), M̃(u, v) the stored matrix at the
// half-spectrum frequencies v < Half and M̃(u, v) = conj M̃(−u, −v) at the
// others (the Hermitian extension: in the columns v = 0 and n/2, which hold
// both members of a pair, the stored matrices are already conjugate, by
// construction in Orthogonalize), crop the N×N interior and b the float32
// bias of each channel. Because M̃ is Hermitian, so is M̃·X̂ for a real x, and
// the inverse of its half spectrum — the real part of the synthesis with
// weights c_v/n² (RealDFT2.Inverse) — is IDFT_n of its Hermitian extension.
// Its ℓ2 operator norm: S and pad are isometries, DFT_n/n is unitary, the
// block-diagonal product has norm max_{u,v} ‖M̃(u,v)‖₂ = max over the stored
// unique matrices (a conjugate has the same singular values) and crop is a
// projection, so ‖T − b‖ ≤ LipschitzBound(): the proven norm applies.
//
// The computation, five linear stages S₁…S₅ and the bias: along x a real
// product with the computed twiddles (cos, −sin)(2π v(x+Pad)/n), N×2·Half
// (S₁, inner length N); along y a complex product with e^{−2πi u(y+Pad)/n},
// n×N (S₂, length N); the per-frequency complex products M̃·X̂ (S₃, length
// Cin); along u the complex product with e^{+2πi u(y+Pad)/n} for the N
// interior rows (S₄, length n); along v, taking the real part, a real product
// with c_v/n²·(cos, −sin), 2·Half×N (S₅, length 2·Half); then + b. Transposes
// and space-to-depth move values and are exact.
//
// The bound (Forward's error). Let u = 2⁻⁵³, γ_k = k·u/(1 − k·u). A real inner
// product of length k computed in float64 in any order, with or without fused
// multiply-adds, is off by at most γ_k·Σ|a_i||x_i|; a complex one is two real
// ones of length 2k per component (Re = Σ ar·xr − ai·xi, Im likewise), so its
// modulus is off by at most √2·γ_{2k}·Σ|a_i||x_i| (|ar||xr| + |ai||xi| ≤
// |a||x|); we use √2·γ_{2k+2}, which also covers the classical
// multiply-then-add scheme (√2·γ_{k+1}, Higham, Accuracy and Stability,
// §3.6). Hence for a stage with exact matrix A, computed matrix Â and
// computed input ŷ, ‖fl(Â ŷ) − A ŷ‖₂ ≤ (‖Â − A‖_F + g·‖Â‖_F)·‖ŷ‖₂ =: η·‖ŷ‖₂
// (‖|Â||ŷ|‖₂ ≤ ‖Â‖_F‖ŷ‖₂; a stage applies the same matrix to many vectors,
// which adds squared norms on both sides). The twiddles come from unitRoot
// (math.Cos and math.Sin of fl(2π·m/n), exact at quarter turns): each real
// entry is within τ = 32u of the exact cos or sin (the argument's three
// roundings move it by at most 2π·γ₃ < 19u, and the functions themselves are
// within 2 ulp ≤ 2u on [−1, 1]; TestTwiddleError checks every m < n ≤ 128
// against a 200-bit reference, and Float64 refuses n > 128), so a complex
// entry is within √2·τ and an entry of S₅, fl(fl(c_v/n²)·c̃), within
// (c_v/n²)·(τ + 3u). With s_k the exact stages' norms (√n for S₁, S₂, S₄ —
// restrictions of √n times a unitary map —, the proven L for S₃ and the
// Frobenius norm √(N·Σ_v (c_v/n²)²) for S₅), induction over the stages gives
// ‖ŷ_k‖ ≤ (s_k + η_k)·‖ŷ_{k−1}‖ and ‖ŷ₅ − S₅⋯S₁ x̂‖ ≤ ρ·‖x̂‖ with
// ρ = Σ_k s₅⋯s_{k+1}·η_k·(s_{k−1}+η_{k−1})⋯(s₁+η₁), and with Q = ∏(s_k + η_k)
// the bias addition adds u·‖ŷ₅ + b‖ ≤ u·(Q‖x̂‖ + ‖b‖·N). So
//
//	‖Forward(x̂) − T x̂‖₂ ≤ Alpha·‖x̂‖₂ + Beta,  Alpha = ρ + u·Q,  Beta = u·‖b‖·N + 2⁻¹⁰⁰⁰,
//
// the last term covering underflow (absolute errors below 2⁻¹⁰⁷⁴ per
// operation). Every float64 quantity of the bound is rounded up (Up).
type LOT64 struct {
	InC, Size, Cin, Cout, Stride, N int
	Lip                             float64 // proven ‖T − b‖₂ (LOT.LipschitzBound)
	Alpha, Beta                     float64 // ‖Forward(x̂) − T x̂‖₂ ≤ Alpha·‖x̂‖₂ + Beta per image
	BiasNorm                        float64 // ‖b‖₂·N, the norm of the bias over the N² positions, rounded up

	n, h, pad, maxBatch int
	fx, gx              []float64    // N×2h (cos, −sin); 2h×N the same times c_v/n²
	fy, ey              []complex128 // n×N e^{−2πi u(y+Pad)/n}; N×n e^{+2πi u(y+Pad)/n}
	mo                  []complex128
	bias                []float64
	// Scratch holds Forward's buffers; layers run one after another may
	// share one (nil: Forward makes its own).
	Scratch *Scratch64
}

// Scratch64 is LOT64.Forward's scratch, grown on demand, for layers that
// run one at a time to share.
type Scratch64 struct {
	xs               []float64
	bufA, bufB, bufC []complex128
}

func growTo[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// rootErr is τ, the bound on |computed twiddle − exact| of unitRoot's
// cos and sin for transform lengths up to maxLen64 (TestTwiddleError).
const (
	rootErr  = 32 * u64
	maxLen64 = 128
)

// Float64 prepares the layer's float64 evaluation for batches of up to
// maxBatch images from the M_orth it holds (orthogonalising first if the
// weights changed) and proves its bounds. It fails when the layer's norm or
// the rounding bound cannot be established (non-finite weights or bias).
func (l *LOT) Float64(maxBatch int) (*LOT64, error) {
	L := l.LipschitzBound()
	if math.IsInf(L, 0) || math.IsNaN(L) {
		return nil, fmt.Errorf("LOT layer %s: the norm of its orthogonalised kernel could not be proven (non-finite weights?)", l.Weight.Name)
	}
	n, h, N, pad := l.dft.Len, l.dft.Half, l.N, l.dft.Pad
	if n > maxLen64 {
		return nil, fmt.Errorf("LOT layer %s: transform length %d, the float64 twiddle bound is verified up to %d", l.Weight.Name, n, maxLen64)
	}
	ci, co := l.Cin, l.Cout
	p := &LOT64{InC: l.InC, Size: l.Size, Cin: ci, Cout: co, Stride: l.Stride, N: N, Lip: L,
		n: n, h: h, pad: pad, maxBatch: maxBatch}
	p.fx, p.gx = make([]float64, N*2*h), make([]float64, 2*h*N)
	maxC, sumC2 := 0.0, 0.0
	for v := range h {
		c := HalfWeight(v, n)
		maxC, sumC2 = max(maxC, c), sumC2+c*c
		w := c / float64(n*n)
		for x := range N {
			cs, sn := unitRoot(v*(x+pad), n)
			p.fx[x*2*h+2*v], p.fx[x*2*h+2*v+1] = cs, -sn
			p.gx[2*v*N+x], p.gx[(2*v+1)*N+x] = w*cs, -w*sn
		}
	}
	p.fy, p.ey = make([]complex128, n*N), make([]complex128, N*n)
	for u := range n {
		for y := range N {
			cs, sn := unitRoot(u*(y+pad), n)
			p.fy[u*N+y], p.ey[y*n+u] = complex(cs, -sn), complex(cs, sn)
		}
	}
	p.mo = make([]complex128, len(l.mo))
	for i, v := range l.mo {
		p.mo[i] = complex128(v)
	}
	p.bias = make([]float64, co)
	var sb float64
	for i, v := range l.Bias.W {
		p.bias[i] = float64(v)
		sb += p.bias[i] * p.bias[i]
	}
	p.BiasNorm = Up(math.Sqrt(Up(sb, 2*co))*float64(N), 2)

	// The stages' norms s_k and errors η_k.
	frob := func(a []float64) float64 {
		var s float64
		for _, v := range a {
			s += v * v
		}
		return Up(math.Sqrt(Up(s, 2*len(a))), 1)
	}
	frobC := func(a []complex128) float64 {
		var s float64
		for _, v := range a {
			s += real(v)*real(v) + imag(v)*imag(v)
		}
		return Up(math.Sqrt(Up(s, 4*len(a))), 1)
	}
	sq := func(k int) float64 { return Up(math.Sqrt(float64(k)), 1) }
	cg := func(k int) float64 { return Up(math.Sqrt2*gamma64(2*k+2), 1) }
	sqn := sq(n)
	tauC := Up(math.Sqrt2*rootErr, 1)
	var moF float64
	for f := range n * h {
		moF = max(moF, frobC(p.mo[f*co*ci:][:co*ci]))
	}
	w5 := Up(maxC/float64(n*n), 1) // the largest c_v/n²
	stages := []struct{ s, eta float64 }{
		{sqn, Up(sq(2*h*N)*rootErr+gamma64(N)*frob(p.fx), 3)},
		{sqn, Up(sq(n*N)*tauC+cg(N)*frobC(p.fy), 3)},
		{L, Up(cg(ci)*moF, 1)},
		{sqn, Up(sq(n*N)*tauC+cg(n)*frobC(p.ey), 3)},
		{Up(math.Sqrt(Up(float64(N)*sumC2/float64(n*n)/float64(n*n), 3)), 1),
			Up(sq(2*h*N)*w5*(rootErr+3*u64)+gamma64(2*h)*frob(p.gx), 5)},
	}
	rho, q := 0.0, 1.0
	for _, st := range stages {
		rho = Up(st.s*rho+st.eta*q, 3)
		q = Up((st.s+st.eta)*q, 2)
	}
	p.Alpha = Up(rho+u64*q, 2)
	p.Beta = Up(u64*p.BiasNorm, 1) + 0x1p-1000
	if math.IsInf(p.Alpha+p.Beta, 0) || math.IsNaN(p.Alpha+p.Beta) {
		return nil, fmt.Errorf("LOT layer %s: rounding bound (%v, %v) is not finite (non-finite bias?)", l.Weight.Name, p.Alpha, p.Beta)
	}
	return p, nil
}

// InLen is the length of one input image, InC·Size·Size.
func (p *LOT64) InLen() int { return p.InC * p.Size * p.Size }

// OutLen is the length of one output image, Cout·N·N.
func (p *LOT64) OutLen() int { return p.Cout * p.N * p.N }

// Forward computes out (b × Cout×N×N) from in (b × InC×Size×Size) in
// float64, as LOT.Forward does in float32 (see LOT64 for the stages).
func (p *LOT64) Forward(out, in []float64, b int) {
	if b > p.maxBatch || len(in) < b*p.InLen() || len(out) < b*p.OutLen() {
		panic("nn: LOT64.Forward: bad slice length or batch")
	}
	N, h, n, ci, co := p.N, p.h, p.n, p.Cin, p.Cout
	if p.Scratch == nil {
		p.Scratch = &Scratch64{}
	}
	sc, mx := p.Scratch, max(ci, co)
	sc.bufA = growTo(sc.bufA, b*mx*N*h)
	sc.bufB = growTo(sc.bufB, b*mx*n*h)
	sc.bufC = growTo(sc.bufC, b*mx*n*h)
	xs := in
	if p.Stride > 1 {
		sc.xs = growTo(sc.xs, b*ci*N*N)
		xs = sc.xs
		spaceToDepth(xs, in, b, p.InC, p.Size, p.Stride)
	}
	P := b * ci
	t1 := sc.bufA[:P*N*h] // [b][c][y][v]
	gemm64.Dgemm(blas.NoTrans, blas.NoTrans, P*N, 2*h, N, 1, xs, N, p.fx, 2*h, 0, reals(t1), 2*h)
	t2 := sc.bufC[:P*N*h] // [y][v][c][b]
	for c := range ci {
		transpose(t2[c*b:], ci*b, t1[c*N*h:], ci*N*h, b, N*h)
	}
	xhat := sc.bufB[:n*h*P] // [u][v][c][b]
	gemm64.Zgemm(blas.NoTrans, blas.NoTrans, n, h*P, N, 1, p.fy, N, t2, h*P, 0, xhat, h*P)
	zhat := sc.bufC[:n*h*co*b] // [u][v][o][b]
	for f := range n * h {
		gemm64.Zgemm(blas.NoTrans, blas.NoTrans, co, b, ci, 1, p.mo[f*co*ci:], ci, xhat[f*ci*b:], b, 0, zhat[f*co*b:], b)
	}
	t3 := sc.bufA[:N*h*co*b] // [y][v][o][b]
	gemm64.Zgemm(blas.NoTrans, blas.NoTrans, N, h*co*b, n, 1, p.ey, n, zhat, h*co*b, 0, t3, h*co*b)
	t4 := sc.bufB[:N*h*co*b] // [b][o][y][v]
	for c := range co {
		transpose(t4[c*N*h:], co*N*h, t3[c*b:], co*b, N*h, b)
	}
	gemm64.Dgemm(blas.NoTrans, blas.NoTrans, b*co*N, N, 2*h, 1, reals(t4), 2*h, p.gx, N, 0, out, N)
	q := N * N
	for i := range b * co {
		bv, row := p.bias[i%co], out[i*q:][:q]
		for j := range row {
			row[j] += bv
		}
	}
}

// reals views complex128 values as interleaved (real, imaginary) float64 pairs.
func reals(c []complex128) []float64 {
	if len(c) == 0 {
		return nil
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(&c[0])), 2*len(c))
}

// Spectrum returns a copy of the M_orth the layer multiplies with
// (orthogonalising first if the weights changed): Cout×Cin complex
// matrices at the half-spectrum frequencies f = u·Half + v, u < n, v < Half,
// of the n×n padded grid (n = N + 2·Pad, Half = ⌊n/2⌋ + 1). Tests use it to
// build the layer's exact map independently of the DFT code.
func (l *LOT) Spectrum() (mo []complex64, n, half, pad int) {
	l.Orthogonalize(false)
	return append([]complex64(nil), l.mo...), l.dft.Len, l.dft.Half, l.dft.Pad
}
