package models

import (
	"fmt"
	"math"

	"certmix/trainer/nn"

	"gonum.org/v1/gonum/blas"
)

// The proven certificate of a LiResNet. The network that Logits computes
// (im2col convolutions and linear layers in float32, MinMax, the
// row-normalised head) is compared with the same network in exact
// arithmetic with the same float32 weights (the blocks' effective kernels
// I + A⊙V/√D and the normalised head rows ŵ as float32 values): the latter
// is K-Lipschitz from the image to the head's input with K the product of
// the proven layer norms (ProvenLipschitz), and the former differs from it
// by a proven bound (MarginRounding).

// ProvenLipschitz returns proven upper bounds on the ℓ2 operator norms of the
// sub-network's layers in order (stem, blocks — each the whole block
// operator, identity included —, neck conv, neck linear; nn.ConvNormBoundFrom,
// started at the power iterations' vectors, and nn.LinearNormBound) and K, their product rounded up. MinMax is
// 1-Lipschitz and biases do not change a Lipschitz constant, so K bounds the
// exact map from image to the head's input. It fails when a bound cannot be
// established.
func (m *LiResNet) ProvenLipschitz() (k float64, layers []float64, err error) {
	for _, b := range m.Blocks {
		b.kernel()
	}
	type layer struct {
		name string
		f    func() (float64, error)
	}
	ls := []layer{{"stem", func() (float64, error) { return nn.ConvNormBoundFrom(m.Stem.Op.ConvGeom, m.Stem.Weight.W, m.PIStem.V) }}}
	for i, b := range m.Blocks {
		ls = append(ls, layer{fmt.Sprintf("block %d", i), func() (float64, error) { return nn.ConvNormBoundFrom(b.Op.ConvGeom, b.Kernel, m.PIBlocks[i].V) }})
	}
	ls = append(ls, layer{"neck conv", func() (float64, error) { return nn.ConvNormBound(m.Neck.Op.ConvGeom, m.Neck.Weight.W) }},
		layer{"neck linear", func() (float64, error) { return nn.LinearNormBound(m.FC.Weight.W, m.FC.Out, m.FC.In) }})
	k = 1
	for _, l := range ls {
		s, err := l.f()
		if err != nil {
			return 0, nil, fmt.Errorf("LiResNet %s: %w", l.name, err)
		}
		layers = append(layers, s)
		k *= s
	}
	return nn.Up(k, len(ls)), layers, nil
}

// RoundingBound holds, for n images, what bounds the rounding error of
// Logits' margins (see MarginRounding).
type RoundingBound struct {
	classes int
	// Per image: eAt bounds ‖ĥ_L(x) − h_L(x)‖₂ (the head's input as computed
	// and exactly), and ‖ĥ_L(x′) − h_L(x′)‖₂ ≤ eNear + r·eSlope within
	// radius r; head[i*classes+j] bounds the head's own rounding of logit j
	// at x.
	eAt, eNear, eSlope []float64
	head               []float64
	// The model's: P bounds the exact Lipschitz constant of h_L (K), rowNorm
	// the ‖ŵ_j‖₂, dist the ‖ŵ_c − ŵ_j‖₂ (all rounded up) and gHead γ_{F+1}.
	p, gHead      float64
	rowNorm, dist []float64
}

// MarginRounding returns, for image i, classes c and j, bounds (at, near,
// slope) with |m̂_cj(x) − m_cj(x)| ≤ at and |m̂_cj(x′) − m_cj(x′)| ≤ near +
// r·slope whenever ‖x′ − x‖ ≤ r (m̂ computed by Logits, m exact).
//
// Proof. m̂_cj − m_cj = (ŵ_c − ŵ_j)·(ĥ_L − h_L) + ρ_c − ρ_j where ρ_j is the
// head's rounding: the float64 product (γ_{F+1}·(|ŵ_j|·|ĥ_L| + |b_j|), F =
// 512) and the final rounding to float32 (u·|ŷ_j|, u = 2⁻²⁴). At x′, |ĥ_L(x′)|
// ≤ |ĥ_L(x)| + |ĥ_L(x′) − ĥ_L(x)| and |ŷ_j(x′)| ≤ |ŷ_j(x)| + ‖ŵ_j‖·‖ĥ_L(x′) −
// ĥ_L(x)‖ + (the head's float64 rounding, folded in twice), with ‖ĥ_L(x′) −
// ĥ_L(x)‖ ≤ P·r + e(x′) + e(x), e the propagated error bounded in
// RoundingBounds; so |ρ_j(x′)| ≤ head_j(x) + gHead·‖ŵ_j‖·(P·r + e(x′) + e(x))
// with gHead = γ_{F+1} + 2u.
func (rb *RoundingBound) MarginRounding(i, c, j int) (at, near, slope float64) {
	C := rb.classes
	d := rb.dist[c*C+j]
	hc, hj := rb.head[i*C+c], rb.head[i*C+j]
	gn := rb.gHead * (rb.rowNorm[c] + rb.rowNorm[j])
	at = nn.Up(d*rb.eAt[i]+hc+hj, 4)
	near = nn.Up(d*rb.eNear[i]+hc+hj+gn*(rb.eNear[i]+rb.eAt[i]), 8)
	slope = nn.Up(d*rb.eSlope[i]+gn*(rb.p+rb.eSlope[i]), 6)
	return at, near, slope
}

// RoundingBounds runs Logits' computation on n images (x as for Logits) and
// returns the proven bounds on its rounding error, given the proven layer
// norms of ProvenLipschitz, together with the logits themselves.
//
// Proof (u = 2⁻²⁴, γ_k = k·u/(1 − k·u); norms are ℓ2; the neck conv and the
// linear layer run in float64 (tail64) with the same argument, u = 2⁻⁵³,
// and δ_l bounded by the norm form γ_{k+1}·(N_l·‖ĥ_{l−1}‖ + ‖b‖·√(positions))).
// The input ĥ_0 =
// fl(x − 0.5) has |ĥ_0 − h_0| ≤ u·|h_0|, so e_0(x′) ≤ u·(‖h_0(x)‖ + r). A
// layer l computes ẑ = fl(W·ĥ + b) by inner products of length k_l (Cin·K²,
// or In) and one bias addition: |ẑ − (W·ĥ + b)| ≤ γ_{k+1}·(|W|·|ĥ| + |b|)
// elementwise in any order of summation, so its ℓ2 norm is at most δ_l(x) =
// γ_{k+1}·‖|W|·|ĥ_{l−1}(x)| + |b|‖, computed from the image's activations
// (|W|·|ĥ| by the same float32 convolution on absolute values: a sum of k
// non-negative terms computed in float32 is at least its exact value times
// 1 − γ_k). MinMax is exact and 1-Lipschitz, so with L_l the proven norm of
// W_l, e_l(x) = ‖ĥ_l(x) − h_l(x)‖ ≤ L_l·e_{l−1}(x) + δ_l(x). At x′ within r
// of x, |ĥ(x′)| ≤ |ĥ(x)| + |ĥ(x′) − ĥ(x)| gives δ_l(x′) ≤ δ_l(x) +
// γ_{k+1}·N_l·(P_{l−1}·r + e_{l−1}(x′) + e_{l−1}(x)), where N_l ≥ ‖|W_l|‖₂
// (nn.ConvAbsNormBound) and P_{l−1} = L_1⋯L_{l−1} bounds the exact map's
// Lipschitz constant; hence e_l(x′) ≤ a_l + b_l·r with a_l = (L_l + γN_l)·a_{l−1}
// + δ_l(x) + γN_l·e_{l−1}(x) and b_l = (L_l + γN_l)·b_{l−1} + γN_l·P_{l−1}.
// Every float64 quantity is rounded up by nn.Up.
func (m *LiResNet) RoundingBounds(dst, x []float32, n int, layers []float64) (*RoundingBound, error) {
	if len(layers) != m.Depth+3 {
		return nil, fmt.Errorf("rounding bounds: %d layer norms, want %d", len(layers), m.Depth+3)
	}
	C := m.Classes
	rb := &RoundingBound{classes: C, eAt: make([]float64, n), eNear: make([]float64, n), eSlope: make([]float64, n),
		head: make([]float64, n*C), gHead: gamma64(Features+1) + 0x1p-23}
	for _, b := range m.Blocks {
		b.kernel()
	}
	// The float32 layers (stem, blocks): their abs pass, bias, γ and N.
	type layer struct {
		abs   func(out, in []float32, k int)
		bias  []float32
		outSz int // values per image of the layer's output
		spat  int // spatial positions per output channel
		g, N  float64
	}
	absOf := func(w []float32) []float32 {
		a := make([]float32, len(w))
		for i, v := range w {
			a[i] = float32(math.Abs(float64(v)))
		}
		return a
	}
	convLayer := func(op *nn.ConvOp, w, bias []float32) layer {
		aw := absOf(w)
		g := op.ConvGeom
		return layer{abs: func(out, in []float32, k int) { op.Forward(out, in, aw, nil, k) }, bias: bias,
			outSz: g.OutLen(), spat: g.Ho() * g.Wo(), g: nn.Gamma32(g.Cin*g.K*g.K + 1), N: nn.ConvAbsNormBound(g, w)}
	}
	ls := []layer{convLayer(m.Stem.Op, m.Stem.Weight.W, m.Stem.Bias.W)}
	for _, b := range m.Blocks {
		ls = append(ls, convLayer(b.Op, b.Kernel, b.Bias.W))
	}
	// The float64 layers (tail64: neck conv, linear): γ, N and ‖b‖ times
	// the square root of the bias's repetitions.
	ng := m.Neck.Op.ConvGeom
	type layer64 struct{ g, N, b float64 }
	biasNorm := func(b []float32, rep int) float64 {
		var s float64
		for _, v := range b {
			s += float64(v) * float64(v)
		}
		return nn.Up(math.Sqrt(nn.Up(s, len(b)+1)*float64(rep)), 3)
	}
	l64 := []layer64{
		{g: gamma64(ng.Cin*ng.K*ng.K + 1), N: nn.ConvAbsNormBound(ng, m.Neck.Weight.W), b: biasNorm(m.Neck.Bias.W, ng.Ho()*ng.Wo())},
		{g: gamma64(m.FC.In + 1), N: nn.LinearAbsNormBound(m.FC.Weight.W, m.FC.Out, m.FC.In), b: biasNorm(m.FC.Bias.W, 1)},
	}
	nl := len(ls) + len(l64)
	P := make([]float64, nl+1) // P[l] bounds the Lipschitz constant of h_l
	P[0] = 1
	for l, s := range layers {
		P[l+1] = nn.Up(P[l]*s, 1)
	}
	rb.p = P[nl]

	in := m.InputSize()
	actLen := m.Stem.Op.OutLen() // values of one image after the stem and after every block
	abuf := make([]float32, m.maxBatch*max(actLen, in))
	obuf := make([]float32, m.maxBatch*actLen)
	const u = 0x1p-24
	Chunks(n, m.maxBatch, func(lo, k int) {
		copy(dst[lo*C:(lo+k)*C], m.forward(x[lo*in:(lo+k)*in], k, true))
		acts := append([][]float32{m.x0, m.stemAct}, m.blockAct...)
		sizes := []int{in}
		for range len(ls) {
			sizes = append(sizes, actLen)
		}
		e, a, bs := make([]float64, k), make([]float64, k), make([]float64, k)
		for i := range k {
			var s float64
			for _, v := range x[(lo+i)*in : (lo+i+1)*in] {
				d := float64(v) - 0.5
				s += d * d
			}
			e[i] = nn.Up(u*math.Sqrt(nn.Up(s, in+1)), 3)
			a[i], bs[i] = e[i], u
		}
		// step carries e, a, b through layer l with the image's δ.
		step := func(l, i int, g, N, delta float64) {
			gN := nn.Up(g*N, 2)
			lip := layers[l] + gN
			eNew := nn.Up(layers[l]*e[i]+delta, 2)
			a[i] = nn.Up(lip*a[i]+delta+gN*e[i], 4)
			bs[i] = nn.Up(lip*bs[i]+gN*P[l], 2)
			e[i] = eNew
		}
		for l, L := range ls {
			act := acts[l][:k*sizes[l]]
			ab := abuf[:len(act)]
			for i, v := range act {
				ab[i] = float32(math.Abs(float64(v)))
			}
			out := obuf[:k*L.outSz]
			L.abs(out, ab, k)
			for i := range k {
				var s float64
				for t, v := range out[i*L.outSz : (i+1)*L.outSz] {
					w := float64(v)*(1+L.g) + math.Abs(float64(L.bias[t/L.spat]))
					s += w * w
				}
				step(l, i, L.g, L.N, nn.Up(L.g*math.Sqrt(nn.Up(nn.Up(s, 2*L.outSz), 1)), 4))
			}
		}
		// Float64 layers: δ ≤ γ·(N·‖ĥ‖ + ‖b‖·√rep) (norm form: γ is tiny).
		last := acts[len(ls)]
		nIn := actLen
		for i := range k {
			var s float64
			for _, v := range last[i*nIn : (i+1)*nIn] {
				s += float64(v) * float64(v)
			}
			L := l64[0]
			step(len(ls), i, L.g, L.N, nn.Up(L.g*(L.N*math.Sqrt(nn.Up(s, nIn+1))+L.b), 4))
			s = 0
			for _, v := range m.t64.neck[i*m.FC.In : (i+1)*m.FC.In] {
				s += v * v
			}
			L = l64[1]
			step(len(ls)+1, i, L.g, L.N, nn.Up(L.g*(L.N*math.Sqrt(nn.Up(s, m.FC.In+1))+L.b), 4))
		}
		hat, hb := m.headHat, m.HBias.W
		gF := gamma64(Features + 1)
		for i := range k {
			rb.eAt[lo+i], rb.eNear[lo+i], rb.eSlope[lo+i] = e[i], a[i], bs[i]
			h := m.t64.fc[i*Features : (i+1)*Features]
			for j := range C {
				var s float64
				for t, v := range hat[j*Features : (j+1)*Features] {
					s += math.Abs(float64(v)) * math.Abs(h[t])
				}
				r64 := gF * (nn.Up(s, 2*Features) + math.Abs(float64(hb[j])))
				rb.head[(lo+i)*C+j] = nn.Up(2*r64*(1+u)+u*(1+2*u)*math.Abs(float64(dst[(lo+i)*C+j])), 6)
			}
		}
	})
	hat := m.headHat
	rb.rowNorm, rb.dist = make([]float64, C), make([]float64, C*C)
	for c := range C {
		var s float64
		for _, v := range hat[c*Features : (c+1)*Features] {
			s += float64(v) * float64(v)
		}
		rb.rowNorm[c] = nn.Up(math.Sqrt(nn.Up(s, Features+1)), 1)
		for j := range C {
			var d float64
			for t := range Features {
				v := float64(hat[c*Features+t]) - float64(hat[j*Features+t])
				d += v * v
			}
			rb.dist[c*C+j] = nn.Up(math.Sqrt(nn.Up(d, 2*Features+1)), 1)
		}
	}
	return rb, nil
}

// tail64 runs the neck conv, its MinMax, the linear layer, its MinMax and
// the head in float64 on the float32 block output in (n images), then rounds
// the logits to float32 into m.logits. It also fills the float32 activation
// buffers (rounded) that Backward reads, and keeps the float64 head input
// for RoundingBounds. Long float32 inner products (Cin·16 and 32·Width
// terms) carry a worst-case rounding bound large enough to cost certified
// radius; in float64 it is negligible.
func (m *LiResNet) tail64(in []float32, n int) {
	g := m.Neck.Op.ConvGeom
	ho, wo := g.Ho(), g.Wo()
	p, r := ho*wo, g.Cin*g.K*g.K
	co := g.Cout
	need := func(b []float64, k int) []float64 {
		if cap(b) < k {
			return make([]float64, k)
		}
		return b[:k]
	}
	t := &m.t64
	t.col = need(t.col, n*p*r)
	for i := range n {
		img := in[i*g.InLen():]
		for q := range p {
			oy, ox := q/wo, q%wo
			row := t.col[(i*p+q)*r:][:r]
			for c := range g.Cin {
				for ky := range g.K {
					y := oy*g.Stride - g.Pad + ky
					for kx := range g.K {
						x := ox*g.Stride - g.Pad + kx
						v := 0.0
						if y >= 0 && y < g.H && x >= 0 && x < g.W {
							v = float64(img[(c*g.H+y)*g.W+x])
						}
						row[(c*g.K+ky)*g.K+kx] = v
					}
				}
			}
		}
	}
	t.wNeck = need(t.wNeck, co*r)
	for i, v := range m.Neck.Weight.W {
		t.wNeck[i] = float64(v)
	}
	z := need(t.z, n*p*co)
	t.z = z
	nn.Dgemm(blas.NoTrans, blas.Trans, n*p, co, r, 1, t.col, r, t.wNeck, r, 0, z, co)
	// z is (image, position) × channel; the activations are image × channel × position.
	t.neck = need(t.neck, n*co*p)
	for i := range n {
		for o := range co {
			for q := range p {
				t.neck[(i*co+o)*p+q] = z[(i*p+q)*co+o] + float64(m.Neck.Bias.W[o])
			}
		}
	}
	for i, v := range t.neck {
		m.neckOut[i] = float32(v)
	}
	minMax64(t.neck, n, co, p)
	for i, v := range t.neck {
		m.neckAct[i] = float32(v)
	}
	fi, fo := m.FC.In, m.FC.Out
	t.wFC = need(t.wFC, fi*fo)
	for i, v := range m.FC.Weight.W {
		t.wFC[i] = float64(v)
	}
	t.fc = need(t.fc, n*fo)
	nn.Dgemm(blas.NoTrans, blas.Trans, n, fo, fi, 1, t.neck, fi, t.wFC, fi, 0, t.fc, fo)
	for i := range n {
		for j, b := range m.FC.Bias.W {
			t.fc[i*fo+j] += float64(b)
		}
	}
	for i, v := range t.fc {
		m.fcOut[i] = float32(v)
	}
	minMax64(t.fc, n, fo, 1)
	for i, v := range t.fc {
		m.fcAct[i] = float32(v)
	}
	m.normHead()
	C := m.Classes
	t.head = need(t.head, C*Features)
	for i, v := range m.headHat {
		t.head[i] = float64(v)
	}
	t.logits = need(t.logits, n*C)
	nn.Dgemm(blas.NoTrans, blas.Trans, n, C, Features, 1, t.fc, Features, t.head, Features, 0, t.logits, C)
	for i := range n {
		for j, b := range m.HBias.W {
			m.logits[i*C+j] = float32(t.logits[i*C+j] + float64(b))
		}
	}
}

// tail64Buffers is tail64's float64 scratch; neck and fc hold the last
// call's activations after MinMax (the head's input is fc).
type tail64Buffers struct {
	col, wNeck, z, neck, wFC, fc, head, logits []float64
}

// minMax64 is nn.MinMax in float64 on n samples of c channels × spatial.
func minMax64(x []float64, n, c, spatial int) {
	h := c / 2 * spatial
	for i := range n {
		a, b := x[i*2*h:][:h], x[i*2*h+h:][:h]
		for j, av := range a {
			if bv := b[j]; bv > av {
				a[j], b[j] = bv, av
			}
		}
	}
}

// gamma64 is γ_k for float64 (u = 2⁻⁵³).
func gamma64(k int) float64 { return float64(k) * 0x1p-53 / (1 - float64(k)*0x1p-53) }
