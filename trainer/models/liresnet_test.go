package models

import (
	"math"
	"math/rand/v2"
	"testing"
)

// newTestNet is a small LiResNet whose blocks run on 16×16 planes (so the
// Winograd kernels of the real model run), with inputs in [0,1].
func newTestNet(t *testing.T, seed uint64, n int) (*LiResNet, []float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	m, err := NewLiResNet(3, 16, 10, 3, n, rng)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range m.Blocks { // blocks far from the identity, so that they matter
		for i := range b.V.W {
			b.V.W[i] = float32(rng.NormFloat64()) * 0.3
		}
	}
	x := make([]float32, n*m.InputSize())
	for i := range x {
		x[i] = rng.Float32()
	}
	return m, x
}

// TestLogitsRunTheExactConvolutions: Logits, which certificates are computed
// on, runs the blocks' im2col convolution (the operator whose norm the
// certificate bounds), not Winograd's: its block outputs are bit for bit
// those of the network whose blocks run it; its tail (neck, linear, head)
// runs in float64, so its logits agree with the float32 tail's to float32
// rounding only.
func TestLogitsRunTheExactConvolutions(t *testing.T) {
	const n = 5
	m, x := newTestNet(t, 1, n)
	got := make([]float32, n*m.Classes)
	if err := m.Logits(got, x, n); err != nil {
		t.Fatal(err)
	}
	gotAct := append([]float32(nil), m.blockAct[0][:n*m.Width*256]...)
	for _, b := range m.Blocks {
		b.Fast = b.Op // training's convolution replaced by the exact one
	}
	want := m.Forward(x, n)
	for i, v := range m.blockAct[0][:n*m.Width*256] {
		if gotAct[i] != v {
			t.Fatalf("block output %d: %g from Logits, %g through the exact convolutions", i, gotAct[i], v)
		}
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("logit %d: %g from Logits, %g through the exact convolutions", i, got[i], want[i])
		}
	}
}

// TestTrainingPathMatchesExact: training's Forward and Backward (Winograd
// blocks) agree with the exact path within float32 rounding: logits, every
// parameter's gradient and the input gradient.
func TestTrainingPathMatchesExact(t *testing.T) {
	const n = 4
	m, x := newTestNet(t, 2, n)
	rng := rand.New(rand.NewPCG(3, 4))
	dLogits := make([]float32, n*m.Classes)
	for i := range dLogits {
		dLogits[i] = float32(rng.NormFloat64())
	}
	run := func(exact bool) (logits []float32, grads [][]float32, dx []float32) {
		for _, p := range m.Params() {
			clear(p.G)
		}
		logits = append([]float32(nil), m.forward(x, n, exact)...)
		dx = make([]float32, len(x))
		m.backward(dLogits, nil, n, dx)
		for _, p := range m.Params() {
			grads = append(grads, append([]float32(nil), p.G...))
		}
		return logits, grads, dx
	}
	fastL, fastG, fastX := run(false)
	exactL, exactG, exactX := run(true)
	close := func(what string, got, want []float32) {
		t.Helper()
		var num, den float64
		for i := range want {
			d := float64(got[i] - want[i])
			num += d * d
			den += float64(want[i]) * float64(want[i])
		}
		if rel := math.Sqrt(num / max(den, 1e-300)); rel > 1e-5 {
			t.Errorf("%s: Winograd and im2col differ by %.2g (relative)", what, rel)
		}
	}
	close("logits", fastL, exactL)
	close("input gradient", fastX, exactX)
	for i, p := range m.Params() {
		close("gradient of "+p.Name, fastG[i], exactG[i])
	}
}
