package models

import (
	"fmt"
	"math"

	"certmix/trainer/nn"
)

// LinfRounding holds, for n images, the proven bounds on the float32
// rounding of Eval's margins (see MarginRounding), and the network's proven
// l_inf Lipschitz constant.
type LinfRounding struct {
	classes int
	// Per image: eAt bounds max_j |d̂_j(x) − d_j(x)| for the last layer's
	// distances; within l_inf radius r of x it is at most eNear + r·eSlope.
	eAt, eNear, eSlope []float64
	logits             []float32 // Eval's logits
	q                  float64   // the l_inf Lipschitz constant of every last-layer distance
}

// u1 is u/(1 − u) for float32 (u = 2⁻²⁴), rounded up: |fl(a) − a| ≤ u1·|fl(a)|.
const u1 = 0x1p-24 * (1 + 0x1p-22)

// MarginLipschitz is K_cj = 2·Q: the margin g_c − g_j = d_j − d_c + const
// of the exact network changes by at most 2·Q·‖x′ − x‖_∞.
func (lr *LinfRounding) MarginLipschitz(c, j int) float64 { return nn.Up(2*lr.q, 1) }

// MarginRounding returns (at, near, slope) with |m̂_cj(x) − m_cj(x)| ≤ at and
// |m̂_cj(x′) − m_cj(x′)| ≤ near + r·slope for ‖x′ − x‖_∞ ≤ r, m̂ the margin
// Eval computes, m the exact network's.
//
// Proof. The logit ĝ_j = fl(−(d̂_j + b_j)) is off from the exact g_j by at
// most e_L + u1·|ĝ_j| (e_L bounds the distances' error). At x′,
// |ĝ_j(x′)|·(1 − u1) ≤ |ĝ_j(x)|·(1 + u1) + Q·r + e_L(x) + e_L(x′), since the
// exact logit is Q-Lipschitz. Each margin takes two logits.
func (lr *LinfRounding) MarginRounding(i, c, j int) (at, near, slope float64) {
	C := lr.classes
	gc, gj := math.Abs(float64(lr.logits[i*C+c])), math.Abs(float64(lr.logits[i*C+j]))
	u2 := u1 / (1 - u1)
	at = nn.Up(2*lr.eAt[i]+u1*(gc+gj), 4)
	near = nn.Up(2*lr.eNear[i]+u2*((gc+gj)*(1+u1)+2*(lr.eNear[i]+lr.eAt[i])), 8)
	slope = nn.Up(2*lr.eSlope[i]+2*u2*(lr.q+lr.eSlope[i]), 5)
	return at, near, slope
}

// LinfRoundingBounds evaluates n images as Eval does (x: n images; p = inf,
// sort units where the configuration has them, running means) and proves
// bounds on the float32 rounding of every margin, at each image and within
// any l_inf radius of it.
//
// Proof (u = 2⁻²⁴, u1 = u/(1 − u), γ_k = k·u/(1 − k·u); errors in the l_inf
// norm over a layer's units; the exact network has the same float32 weights,
// means, std, sort weights c_k and normaliser). Input: x̂n = fl(fl(x − μ)/σ)
// = xn·(1 + δ₁)(1 + δ₂), so |x̂n − xn| ≤ 2.01u·|x̂n| =: e_0(x). Distance unit
// o (p = inf): d̂_o = max_i fl(|ẑ_i − w_oi|), each term off from |z_i − w_oi|
// by at most e_{l−1} + u1·(|ẑ_i| + |w_oi|)(1 + u), and max is 1-Lipschitz
// and exact: |d̂_o − d_o| ≤ e_{l−1} + γ_2·(Z + W), Z = max|ẑ|, W = max|w|.
// Sort unit: the order statistics of the computed |ẑ_i − w_oi| are each off
// by at most the largest term error (order statistics are 1-Lipschitz in
// l_inf), the weighted sum (1e-10 + Σ c_k s_k) of K + 1 terms in float32 adds
// at most γ_{K+1}·(1e-10 + Σ c_k)(Z + W)(1 + u), the division by norm one more
// rounding, so |ŷ − y| ≤ L_s·e_{l−1} + L_s·γ_{K+4}·(Z + W) + γ_{K+4}·1e-10/norm
// with L_s = Σ c_k/norm (nn.SortLipschitz). Mean shift: ẑ = fl(d̂ − μ) adds
// u1·|ẑ|. Within radius r of x, every |ẑ| grows by at most Q_{l}·r + e_l(x) +
// e_l(x′) (Q_l: the exact Lipschitz constant of layer l's output, 1/σ times
// the product of the L's), which makes every bound affine in r: e_l(x′) ≤
// a_l + b_l·r, the recursion below (a term e_l(x′) on both sides of the mean
// shift's bound is solved for by dividing by 1 − u1).
func (m *DistNet) LinfRoundingBounds(x []float32, n int) (*LinfRounding, error) {
	C := m.Cfg.Classes
	lr := &LinfRounding{classes: C, eAt: make([]float64, n), eNear: make([]float64, n), eSlope: make([]float64, n),
		logits: make([]float32, n*C)}
	if !(m.Cfg.Std > 0) {
		return nil, fmt.Errorf("l_inf rounding bound: std %v", m.Cfg.Std)
	}
	const u = 0x1p-24
	g2 := nn.Gamma32(2)
	nl := len(m.Layers)
	// Per layer: Lipschitz L, error coefficient c on (Z + W), offset t, W.
	L, cf, t, W := make([]float64, nl), make([]float64, nl), make([]float64, nl), make([]float64, nl)
	Q := make([]float64, nl+1) // Q[l]: Lipschitz constant of layer l−1's output (Q[0]: of x̂n)
	Q[0] = nn.Up(1/float64(m.Cfg.Std), 1)
	for l, layer := range m.Layers {
		for _, v := range layer.Weight.W {
			W[l] = max(W[l], math.Abs(float64(v)))
		}
		if m.sortLayer(l) {
			ls, off, k := nn.SortLipschitz(layer.In, m.Cfg.KeepProb, m.Cfg.TopK)
			g := nn.Gamma32(k + 4)
			L[l], cf[l], t[l] = ls, nn.Up(ls*g, 1), nn.Up(g*off, 1)
		} else {
			L[l], cf[l] = 1, g2
		}
		Q[l+1] = nn.Up(Q[l]*L[l], 1)
	}
	lr.q = Q[nl]
	d := m.InputSize()
	maxAbs := func(v []float32) float64 {
		var a float64
		for _, x := range v {
			a = max(a, math.Abs(float64(x)))
		}
		return a
	}
	c0 := 2.01 * u
	var err error
	Chunks(n, m.Cfg.MaxBatch, func(lo, rows int) {
		copy(lr.logits[lo*C:], m.Eval(x[lo*d:], rows))
		for b := range rows {
			z := maxAbs(m.xn[b*d : (b+1)*d])
			e := nn.Up(c0*z, 1)
			a := nn.Up(c0*(z+e)/(1-c0), 3)
			s := nn.Up(c0*Q[0]/(1-c0), 2)
			for l, layer := range m.Layers {
				zw := z + W[l]
				eD := nn.Up(L[l]*e+cf[l]*zw+t[l], 4)
				aD := nn.Up((L[l]+cf[l])*a+cf[l]*(zw+e)+t[l], 5)
				sD := nn.Up((L[l]+cf[l])*s+cf[l]*Q[l], 3)
				if l == nl-1 {
					e, a, s = eD, aD, sD
					break
				}
				out := layer.Out
				z = maxAbs(m.z[l][b*out : (b+1)*out])
				e = nn.Up(eD+u1*z, 2)
				a = nn.Up((aD+u1*(z+e))/(1-u1), 4)
				s = nn.Up((sD+u1*Q[l+1])/(1-u1), 3)
			}
			if math.IsNaN(e+a+s) || math.IsInf(e+a+s, 0) {
				err = fmt.Errorf("l_inf rounding bound: image %d: bound %v, %v, %v", lo+b, e, a, s)
				return
			}
			lr.eAt[lo+b], lr.eNear[lo+b], lr.eSlope[lo+b] = e, a, s
		}
	})
	return lr, err
}

// Logits are Eval's logits of the images (n × Classes).
func (lr *LinfRounding) Logits() []float32 { return lr.logits }
