package trainer

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestEstimateCertificateIsFalsifiable is a falsification test in the spirit
// of Jia & Rinard ("Exploiting verified neural networks via floating point
// numerical error", 2021): a small GloroNet and an input for which the
// estimate-based certificate (power-iteration K, the authors' way) claims a
// radius r, an input within r, found by following the margin's gradient and
// its distance checked in float64, that changes the prediction of the very
// program the certificate is about (Logits), and the proven certificate,
// which does not claim r (its radius is at most the distance found).
//
// The network: the stem reads even-even pixels with weight 1 into channel 0
// and odd-odd pixels with weight 0.5 into channel 1, so its norm is 1, but
// its power-iteration vector starts on the odd-odd pixels, a subspace AᵀA
// keeps: however many iterations, the estimate stays 0.5, "converged". The
// estimate then halves the stem's contribution to K, and the rest of the
// network makes the Lipschitz bound tight, so the estimate's radius is
// twice the distance to the decision boundary.
func TestEstimateCertificateIsFalsifiable(t *testing.T) {
	cfg := Config{Arch: ArchGloro, Depth: 1, Width: 2, Classes: 2, Channels: 1, Batch: 4, PowerIters: 1, Seed: 7}
	mod, err := newModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := mod.(*GloroModel)
	m := g.Net
	w := m.Stem.Weight.W // 2 × 1 × 5 × 5
	clear(w)
	w[0*25+2*5+2] = 1   // channel 0: x[2i, 2j]
	w[1*25+3*5+3] = 0.5 // channel 1: x[2i+1, 2j+1]
	clear(m.Stem.Bias.W)
	v := m.PIStem.V
	clear(v)
	rng := rand.New(rand.NewPCG(7, 8))
	for y := 1; y < 32; y += 2 {
		for x := 1; x < 32; x += 2 {
			v[y*32+x] = float32(rng.NormFloat64())
		}
	}
	m.PIStem.SetV(v)

	// The rest passes channel 0 on linearly (MinMax sees a ≥ b everywhere
	// below): identity block, a neck averaging each 4×4 patch of channel 0
	// (norm 1), a linear layer summing them with weight 1/4 (norm 1), head
	// rows ±e₀ (‖ŵ₀ − ŵ₁‖ = 2). Exactly, the margin is 2·(Σ_ee x − 0.5)/16 +
	// b₀ − b₁, with gradient norm 2 = K·‖ŵ₀ − ŵ₁‖: the bound is tight.
	b := m.Blocks[0]
	clear(b.V.W)
	clear(b.Bias.W)
	clear(m.Neck.Weight.W)
	for i := range 16 {
		m.Neck.Weight.W[i] = 0.25 // output 0 from input channel 0
	}
	copy(m.Neck.Bias.W, []float32{0, 0, -10, -10})
	clear(m.FC.Weight.W)
	for i := range 16 {
		m.FC.Weight.W[i] = 0.25
	}
	clear(m.FC.Bias.W)
	m.FC.Bias.W[256] = -10
	clear(m.Head.W)
	m.Head.W[0], m.Head.W[512] = 1, -1
	copy(m.HBias.W, []float32{-6.3, 6.3})

	d := m.InputSize()
	x := make([]float32, d)
	for y := range 32 {
		for xx := range 32 {
			switch {
			case y%2 == 0 && xx%2 == 0:
				x[y*32+xx] = 0.9
			case y%2 == 1 && xx%2 == 1:
				x[y*32+xx] = 0.1
			default:
				x[y*32+xx] = 0.5
			}
		}
	}
	logits := make([]float32, 2)
	if err := m.Logits(logits, x, 1); err != nil {
		t.Fatal(err)
	}
	c := 0
	if logits[1] > logits[0] {
		c = 1
	}
	labels := []int{c}
	est, err := g.CertifyEstimate(x, labels, 0)
	if err != nil {
		t.Fatal(err)
	}
	proven, err := g.Certify(x, labels, 0)
	if err != nil {
		t.Fatal(err)
	}
	rEst, rProven := est.Results[0].Radius, proven.Results[0].Radius
	t.Logf("K estimate %.6g, proven %.6g; radius estimate %.6g, proven %.6g", est.K, proven.K, rEst, rProven)
	if !(est.K < proven.K) {
		t.Fatalf("the estimate K %v is not below the proven %v: the construction failed", est.K, proven.K)
	}

	// The attack: steps against the margin's gradient (the program's own),
	// stopping at the first point the program classifies otherwise.
	dl := make([]float32, 2)
	dl[c], dl[1-c] = 1, -1
	cur := append([]float32(nil), x...)
	grad := make([]float32, d)
	var adv []float32
	for range 200 {
		if err := m.InputGradient(grad, cur, dl, 1); err != nil {
			t.Fatal(err)
		}
		var gn float64
		for _, v := range grad {
			gn += float64(v) * float64(v)
		}
		gn = math.Sqrt(gn)
		if err := m.Logits(logits, cur, 1); err != nil {
			t.Fatal(err)
		}
		margin := float64(logits[c]) - float64(logits[1-c])
		if margin < 0 || (margin == 0 && 1-c < c) {
			adv = cur
			break
		}
		step := max(margin/gn*1.05, 1e-6) / gn // the linearised distance to the boundary, a little beyond
		for i := range cur {
			cur[i] -= float32(step * float64(grad[i]))
		}
	}
	if adv == nil {
		t.Fatal("the attack found no input of the other class")
	}
	var dist float64
	for i := range x {
		dd := float64(adv[i]) - float64(x[i])
		dist += dd * dd
	}
	dist = math.Sqrt(dist)
	if err := m.Logits(logits, adv, 1); err != nil {
		t.Fatal(err)
	}
	t.Logf("an input at distance %.6g has logits %v (label %d)", dist, logits, c)
	if !(dist < rEst) {
		t.Fatalf("the attack's input is at %v, not within the estimate's radius %v: the construction failed", dist, rEst)
	}
	if rProven < 0.9*dist/1.05 { // the boundary is at dist/1.05
		t.Errorf("the proven radius %v is far below the boundary at %v", rProven, dist/1.05)
	}
	if !(rProven <= dist) {
		t.Errorf("the proven certificate claims %v, beyond an input at %v of the other class", rProven, dist)
	}
	if proven.Proof == est.Proof {
		t.Errorf("the two certificates name the same proof %q", proven.Proof)
	}
}
