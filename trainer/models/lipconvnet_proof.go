package models

import (
	"fmt"
	"math"

	"certmix/trainer/nn"
)

// The proven certificate of a LipConvnet. The certificate is about the
// program ProvenLogits runs — the network evaluated in float64 — and
// compares it with the exact network: the same network in real arithmetic
// with the same float32 values the program multiplies with, namely
//
//   - the input normalisation (x − μ_c)·s with the float32 μ_c and the
//     float32 s = 1/std that Forward uses (Lipschitz constant s);
//   - each LOT layer's map T x = crop(IDFT(M̃·DFT(pad(space-to-depth x)))) + b
//     with the float32 M_orth the layer holds (nn.LOT64 defines T and shows
//     that LipschitzBound bounds its norm, the half-spectrum and conjugate
//     handling included);
//   - MaxMin (exact, 1-Lipschitz);
//   - a residual block's λ·x + κ·MaxMin(T x) with the float32 λ and κ = Keep
//     that Forward multiplies with (Lipschitz λ + κ·L_T);
//   - the head: the last 1×1 LOT layer (the same T, with n = 1), or with LLN
//     ŷ_j = ŵ_j·h + b_j with the normalised rows ŵ_j as the float32 values
//     Forward computes (normHead).
//
// Its Lipschitz constants are those LipschitzBound proves (P below; the
// product is rounded up). The float64 program differs from it by at most
// the bound MarginRounding returns, so certifier.CertifyMarginsRounded
// certifies the float64 program's prediction. The float32 Forward (training
// and evaluation) is not what is certified; its logits agree with
// ProvenLogits' to float32 accuracy.

// LOTRounding holds, for n images, the bounds on the rounding error of
// ProvenLogits' margins (see MarginRounding) and the exact network's
// Lipschitz constants.
type LOTRounding struct {
	classes int
	lln     bool
	// Per image: eAt bounds ‖ĥ(x) − h(x)‖₂ for h the head's input (LLN)
	// or the logits (LOT head), and ‖ĥ(x′) − h(x′)‖₂ ≤ eNear + r·eSlope
	// within radius r; hNorm bounds ‖ĥ(x)‖₂ (LLN).
	eAt, eNear, eSlope, hNorm []float64
	// p bounds the exact Lipschitz constant of h; with LLN, gHead is
	// γ_{F+1}, rowNorm the ‖ŵ_j‖₂, dist the ‖ŵ_c − ŵ_j‖₂ and absBias the |b_j|
	// (rounded up).
	p, gHead               float64
	rowNorm, dist, absBias []float64
}

// K is the proven Lipschitz constant of the exact network up to the head's
// input (LLN) or up to the logits (LOT head).
func (rb *LOTRounding) K() float64 { return rb.p }

// MarginLipschitz is the proven Lipschitz constant of the exact margin
// y_c − y_j: K·‖ŵ_c − ŵ_j‖₂ with LLN, else √2·K (‖e_c − e_j‖₂ = √2).
func (rb *LOTRounding) MarginLipschitz(c, j int) float64 {
	if rb.lln {
		return nn.Up(rb.p*rb.dist[c*rb.classes+j], 1)
	}
	return nn.Up(math.Sqrt2*rb.p, 2)
}

// MarginRounding returns, for image i and classes c, j, (at, near, slope)
// with |m̂_cj(x) − m_cj(x)| ≤ at and |m̂_cj(x′) − m_cj(x′)| ≤ near + r·slope
// whenever ‖x′ − x‖₂ ≤ r (m̂ from ProvenLogits, m the exact network's).
//
// Proof. LOT head: the logit vectors differ by e (ProvenLogits' bound) and
// |Δ_c − Δ_j| ≤ |Δ_c| + |Δ_j| ≤ √2‖Δ‖₂. LLN: m̂ − m = (ŵ_c − ŵ_j)·(ĥ − h) +
// ρ_c − ρ_j with ρ_j the head's float64 rounding, an inner product of F + 1
// terms (the bias as the last): |ρ_j| ≤ γ_{F+1}(|ŵ_j|·|ĥ| + |b_j|) ≤
// γ_{F+1}(‖ŵ_j‖‖ĥ‖ + |b_j|); within r, ‖ĥ(x′)‖ ≤ ‖ĥ(x)‖ + e(x) + P·r +
// e(x′) (the exact h is P-Lipschitz) with e(x′) ≤ eNear + r·eSlope.
func (rb *LOTRounding) MarginRounding(i, c, j int) (at, near, slope float64) {
	s := math.Sqrt2 * (1 + 0x1p-52)
	if !rb.lln {
		return nn.Up(s*rb.eAt[i], 1), nn.Up(s*rb.eNear[i], 1), nn.Up(s*rb.eSlope[i], 1)
	}
	C := rb.classes
	d := rb.dist[c*C+j]
	g := nn.Up(rb.gHead*(rb.rowNorm[c]+rb.rowNorm[j]), 2)
	gb := nn.Up(rb.gHead*(rb.absBias[c]+rb.absBias[j]), 2)
	at = nn.Up(d*rb.eAt[i]+g*rb.hNorm[i]+gb, 4)
	near = nn.Up(d*rb.eNear[i]+g*(rb.hNorm[i]+rb.eAt[i]+rb.eNear[i])+gb, 6)
	slope = nn.Up(d*rb.eSlope[i]+g*(rb.p+rb.eSlope[i]), 4)
	return at, near, slope
}

// provenChunk is the number of images ProvenLogits evaluates at a time
// (its float64 spectra take 16 bytes a value).
const provenChunk = 64

// ProvenLogits evaluates the network on n images (x as for Forward) in
// float64 and returns the logits (n × Classes) with the proven bounds on
// their rounding error. It fails when a layer's norm or a rounding bound
// cannot be established (non-finite weights).
//
// Proof (u = 2⁻⁵³, γ_k = k·u/(1 − k·u); norms ℓ2 per image; hats are computed
// values). Input: x̂₀ = fl(fl(x − μ)·s) = x₀(1 + δ₁)(1 + δ₂), so e₀(x) =
// ‖x̂₀ − x₀‖ ≤ γ₂‖x₀‖ ≤ γ₃‖x̂₀‖, and within r of x, e₀(x′) ≤ γ₂(‖x₀(x)‖ +
// s·r), so a₀ = e₀(x), b₀ = γ₂·s. A LOT layer's float64 evaluation is off by
// at most α‖ĥ‖ + β from T ĥ (nn.LOT64: α = Alpha, β = Beta), MaxMin is exact
// and 1-Lipschitz, so a plain block has e_l ≤ L·e_{l−1} + α‖ĥ_{l−1}‖ + β. A
// residual block computes fl(fl(λ·ĥ) + fl(κ·â)) (â = MaxMin(ẑ), ‖â‖ = ‖ẑ‖ ≤
// L‖ĥ‖ + ‖b‖·N + α‖ĥ‖ + β), off from λĥ + κâ by at most γ₂(λ‖ĥ‖ + κ‖â‖): with
// Lip = λ + κL, α′ = κα + γ₂(λ + κ(L + α)) and β′ = κβ + γ₂κ(‖b‖N + β) it
// has the same form e_l ≤ Lip·e_{l−1} + α′‖ĥ_{l−1}‖ + β′. At x′ within r,
// ‖ĥ_{l−1}(x′)‖ ≤ ‖ĥ_{l−1}(x)‖ + e_{l−1}(x) + P_{l−1}·r + e_{l−1}(x′), P_l =
// P_{l−1}·Lip_l bounding the exact map's Lipschitz constant, so by induction
// e_l(x′) ≤ a_l + b_l·r with
//
//	a_l = (Lip + α)·a_{l−1} + α·(‖ĥ_{l−1}(x)‖ + e_{l−1}(x)) + β,
//	b_l = (Lip + α)·b_{l−1} + α·P_{l−1},
//
// and e_l(x) ≤ Lip·e_{l−1}(x) + α‖ĥ_{l−1}(x)‖ + β. Every float64 quantity of
// the bound is rounded up (nn.Up).
func (m *LipConvnet) ProvenLogits(x []float32, n int) ([]float64, *LOTRounding, error) {
	if len(x) < n*m.InputSize() {
		return nil, nil, fmt.Errorf("LipConvnet proven logits: %d values for %d images of %d", len(x), n, m.InputSize())
	}
	chunk := min(m.maxBatch, provenChunk)
	type layer struct {
		lot             *nn.LOT64
		res             bool
		lam, keep       float64
		lip, alpha, bet float64
	}
	var ls []layer
	scratch := &nn.Scratch64{} // the layers run one at a time
	add := func(l *nn.LOT, res bool, lam, keep float32) error {
		p, err := l.Float64(chunk)
		if err != nil {
			return err
		}
		p.Scratch = scratch
		ly := layer{lot: p, res: res, lam: float64(lam), keep: float64(keep), lip: p.Lip, alpha: p.Alpha, bet: p.Beta}
		if res {
			g2 := gamma(2)
			ly.lip = nn.Up(ly.lam+ly.keep*p.Lip, 2)
			ly.alpha = nn.Up(ly.keep*p.Alpha+g2*(ly.lam+ly.keep*(p.Lip+p.Alpha)), 6)
			ly.bet = nn.Up(ly.keep*p.Beta+g2*ly.keep*(p.BiasNorm+p.Beta), 5)
		}
		if math.IsInf(ly.lip+ly.alpha+ly.bet, 0) || math.IsNaN(ly.lip+ly.alpha+ly.bet) {
			return fmt.Errorf("LOT layer %s: bounds (%v, %v, %v) not finite", l.Weight.Name, ly.lip, ly.alpha, ly.bet)
		}
		ls = append(ls, ly)
		return nil
	}
	for _, l := range m.Layers {
		if err := add(l.Conv, l.Residual, l.Lambda, l.Keep); err != nil {
			return nil, nil, fmt.Errorf("LipConvnet proven logits: %w", err)
		}
	}
	if !m.LLN {
		if err := add(m.Last, false, 0, 0); err != nil {
			return nil, nil, fmt.Errorf("LipConvnet proven logits: %w", err)
		}
	}
	inv := 1 / m.Std // the float32 scale Forward multiplies with
	s := float64(inv)
	P := make([]float64, len(ls)+1)
	P[0] = s
	for l, ly := range ls {
		P[l+1] = nn.Up(P[l]*ly.lip, 1)
	}
	C, F := m.Classes, m.Features
	rb := &LOTRounding{classes: C, lln: m.LLN, p: P[len(ls)],
		eAt: make([]float64, n), eNear: make([]float64, n), eSlope: make([]float64, n)}
	if m.LLN {
		if err := m.headBounds(rb); err != nil {
			return nil, nil, fmt.Errorf("LipConvnet proven logits: %w", err)
		}
		rb.hNorm = make([]float64, n)
	}
	if math.IsInf(rb.p, 0) || math.IsNaN(rb.p) {
		return nil, nil, fmt.Errorf("LipConvnet proven logits: Lipschitz bound %v is not finite", rb.p)
	}

	biggest := m.InputSize()
	for _, ly := range ls {
		biggest = max(biggest, ly.lot.OutLen())
	}
	cur, nxt, act := make([]float64, chunk*biggest), make([]float64, chunk*biggest), make([]float64, chunk*biggest)
	logits := make([]float64, n*C)
	in := m.InputSize()
	g2, g3 := gamma(2), gamma(3)
	norm := func(v []float64) float64 {
		var s float64
		for _, a := range v {
			s += a * a
		}
		return nn.Up(math.Sqrt(nn.Up(s, 2*len(v))), 1)
	}
	e, a, b, hn := make([]float64, chunk), make([]float64, chunk), make([]float64, chunk), make([]float64, chunk)
	Chunks(n, chunk, func(lo, k int) {
		for c := range m.Channels {
			mu := float64(m.Mean[c])
			for i := range k {
				src, dst := x[((lo+i)*m.Channels+c)*inputPlane:][:inputPlane], cur[(i*m.Channels+c)*inputPlane:][:inputPlane]
				for j, v := range src {
					dst[j] = (float64(v) - mu) * s
				}
			}
		}
		for i := range k {
			e[i] = nn.Up(g3*norm(cur[i*in:(i+1)*in]), 1)
			a[i], b[i] = e[i], nn.Up(g2*s, 1)
		}
		sz := in
		for l, ly := range ls {
			for i := range k {
				hn[i] = norm(cur[i*sz : (i+1)*sz])
			}
			p := ly.lot
			out := p.OutLen()
			last := !m.LLN && l == len(ls)-1
			dst := nxt
			if last {
				dst = logits[lo*C:]
			}
			p.Forward(dst, cur, k)
			if !last {
				minMax64(nxt[:k*out], k, p.Cout, p.N*p.N)
				if ly.res {
					copy(act[:k*out], nxt[:k*out])
					for j, v := range act[:k*out] {
						nxt[j] = ly.lam*cur[j] + ly.keep*v
					}
				}
			}
			for i := range k {
				lipA := ly.lip + ly.alpha
				aNew := nn.Up(lipA*a[i]+ly.alpha*(hn[i]+e[i])+ly.bet, 5)
				b[i] = nn.Up(lipA*b[i]+ly.alpha*P[l], 3)
				e[i] = nn.Up(ly.lip*e[i]+ly.alpha*hn[i]+ly.bet, 3)
				a[i] = aNew
			}
			cur, nxt, sz = nxt, cur, out
		}
		if m.LLN {
			hat, hb := m.headHat, m.HBias.W
			for i := range k {
				h := cur[i*F : (i+1)*F]
				rb.hNorm[lo+i] = norm(h)
				for j := range C {
					var t float64
					for q, w := range hat[j*F : (j+1)*F] {
						t += float64(w) * h[q]
					}
					logits[(lo+i)*C+j] = t + float64(hb[j])
				}
			}
		}
		for i := range k {
			rb.eAt[lo+i], rb.eNear[lo+i], rb.eSlope[lo+i] = e[i], a[i], b[i]
		}
	})
	return logits, rb, nil
}

// headBounds fills the LLN head's constants of rb: ŵ as Forward normalises
// it, ‖ŵ_j‖, ‖ŵ_c − ŵ_j‖ and |b_j| rounded up, and γ_{F+1}.
func (m *LipConvnet) headBounds(rb *LOTRounding) error {
	m.normHead()
	C, F := m.Classes, m.Features
	hat := m.headHat
	rb.gHead = gamma(F + 1)
	rb.rowNorm, rb.dist, rb.absBias = make([]float64, C), make([]float64, C*C), make([]float64, C)
	for c := range C {
		var s float64
		for _, v := range hat[c*F : (c+1)*F] {
			s += float64(v) * float64(v)
		}
		rb.rowNorm[c] = nn.Up(math.Sqrt(nn.Up(s, 2*F)), 1)
		rb.absBias[c] = math.Abs(float64(m.HBias.W[c]))
		for j := range C {
			var d float64
			for t := range F {
				v := float64(hat[c*F+t]) - float64(hat[j*F+t])
				d += v * v
			}
			rb.dist[c*C+j] = nn.Up(math.Sqrt(nn.Up(d, 3*F)), 1)
		}
		if math.IsInf(rb.rowNorm[c]+rb.absBias[c], 0) || math.IsNaN(rb.rowNorm[c]+rb.absBias[c]) {
			return fmt.Errorf("last_layer row %d: norm %v, bias %v, want finite", c, rb.rowNorm[c], rb.absBias[c])
		}
	}
	return nil
}

// gamma is γ_k for float64 rounded up.
func gamma(k int) float64 { return nn.Up(gamma64(k), 2) }
