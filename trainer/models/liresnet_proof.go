package models

import (
	"fmt"
	"math"

	"certmix/trainer/nn"
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
// operator, identity included —, neck conv, neck linear; nn.ConvNormBound
// and nn.LinearNormBound) and K, their product rounded up. MinMax is
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
	ls := []layer{{"stem", func() (float64, error) { return nn.ConvNormBound(m.Stem.Op.ConvGeom, m.Stem.Weight.W) }}}
	for i, b := range m.Blocks {
		ls = append(ls, layer{fmt.Sprintf("block %d", i), func() (float64, error) { return nn.ConvNormBound(b.Op.ConvGeom, b.Kernel) }})
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
// head's rounding, |ρ_j(x′)| ≤ γ_{F+1}(|ŵ_j|·|ĥ_L(x′)| + |b_j|) ≤ head_j(x) +
// γ_{F+1}·‖ŵ_j‖·‖ĥ_L(x′) − ĥ_L(x)‖, and ‖ĥ_L(x′) − ĥ_L(x)‖ ≤ P·r + e(x′) +
// e(x) with e the propagated error bounded in RoundingBounds.
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
// Proof (u = 2⁻²⁴, γ_k = k·u/(1 − k·u); norms are ℓ2). The input ĥ_0 =
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
		head: make([]float64, n*C), gHead: nn.Gamma32(Features + 1)}
	for _, b := range m.Blocks {
		b.kernel()
	}
	// The layers: geometry of the abs pass, weight, bias, γ, N.
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
	var ls []layer
	convLayer := func(op *nn.ConvOp, w, bias []float32) layer {
		aw := absOf(w)
		g := op.ConvGeom
		return layer{abs: func(out, in []float32, k int) { op.Forward(out, in, aw, nil, k) }, bias: bias,
			outSz: g.OutLen(), spat: g.Ho() * g.Wo(), g: nn.Gamma32(g.Cin*g.K*g.K + 1), N: nn.ConvAbsNormBound(g, w)}
	}
	ls = append(ls, convLayer(m.Stem.Op, m.Stem.Weight.W, m.Stem.Bias.W))
	for _, b := range m.Blocks {
		ls = append(ls, convLayer(b.Op, b.Kernel, b.Bias.W))
	}
	ls = append(ls, convLayer(m.Neck.Op, m.Neck.Weight.W, m.Neck.Bias.W))
	afc := absOf(m.FC.Weight.W)
	ls = append(ls, layer{abs: func(out, in []float32, k int) { nn.LinearForward(out, in, afc, nil, k, m.FC.In, m.FC.Out) },
		bias: m.FC.Bias.W, outSz: m.FC.Out, spat: 1, g: nn.Gamma32(m.FC.In + 1), N: nn.LinearAbsNormBound(m.FC.Weight.W, m.FC.Out, m.FC.In)})
	P := make([]float64, len(ls)+1) // P[l] bounds the Lipschitz constant of h_l
	P[0] = 1
	for l, s := range layers {
		P[l+1] = nn.Up(P[l]*s, 1)
	}
	rb.p = P[len(ls)]

	// Head: ŵ as of the forward pass (set below by the first chunk).
	in := m.InputSize()
	abuf := make([]float32, m.maxBatch*max(m.Width*256, m.Channels*1024))
	obuf := make([]float32, m.maxBatch*max(m.Width*256, Features))
	const u = 0x1p-24
	Chunks(n, m.maxBatch, func(lo, k int) {
		copy(dst[lo*C:(lo+k)*C], m.forward(x[lo*in:(lo+k)*in], k, true))
		acts := [][]float32{m.x0}
		acts = append(acts, m.stemAct)
		acts = append(acts, m.blockAct...)
		acts = append(acts, m.neckAct)
		sizes := []int{in, m.Width * 256}
		for range m.Blocks {
			sizes = append(sizes, m.Width*256)
		}
		sizes = append(sizes, 32*m.Width)
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
		for l, L := range ls {
			act := acts[l][:k*sizes[l]]
			ab := abuf[:len(act)]
			for i, v := range act {
				ab[i] = float32(math.Abs(float64(v)))
			}
			out := obuf[:k*L.outSz]
			L.abs(out, ab, k)
			gN := nn.Up(L.g*L.N, 2)
			lip := layers[l] + gN
			for i := range k {
				var s float64
				for t, v := range out[i*L.outSz : (i+1)*L.outSz] {
					w := float64(v)*(1+L.g) + math.Abs(float64(L.bias[t/L.spat]))
					s += w * w
				}
				delta := nn.Up(L.g*math.Sqrt(nn.Up(nn.Up(s, 2*L.outSz), 1)), 4)
				eNew := nn.Up(layers[l]*e[i]+delta, 2)
				a[i] = nn.Up(lip*a[i]+delta+gN*e[i], 4)
				bs[i] = nn.Up(lip*bs[i]+gN*P[l], 2)
				e[i] = eNew
			}
		}
		hat, hb := m.headHat, m.HBias.W
		for i := range k {
			rb.eAt[lo+i], rb.eNear[lo+i], rb.eSlope[lo+i] = e[i], a[i], bs[i]
			h := m.fcAct[i*Features : (i+1)*Features]
			for j := range C {
				var s float64
				for t, v := range hat[j*Features : (j+1)*Features] {
					s += math.Abs(float64(v)) * math.Abs(float64(h[t]))
				}
				rb.head[(lo+i)*C+j] = nn.Up(rb.gHead*(nn.Up(s, 2*Features)+math.Abs(float64(hb[j]))), 3)
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

// HeadDistances returns ‖ŵ_c − ŵ_j‖₂ rounded up (classes × classes), for
// the margin Lipschitz constants K·‖ŵ_c − ŵ_j‖ of a proven certificate.
func (rb *RoundingBound) HeadDistances() []float64 { return rb.dist }
