package models

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestLipConvnetProvenLogitsMatchLogits: for every tiny LipConvnet (with and
// without residual blocks and LLN), the float64 certified pass agrees with
// the float32 Logits to float32 accuracy, its rounding bound is finite and
// below 1e-9 relative (not absurdly loose), and its K is LipschitzBound's.
func TestLipConvnetProvenLogitsMatchLogits(t *testing.T) {
	for i, c := range tinyNets {
		t.Run(c.name, func(t *testing.T) {
			const n = 5
			m := newTiny(t, i, n)
			x := randImages(rand.New(rand.NewPCG(uint64(40+i), 1)), n*m.InputSize())
			want := make([]float32, n*m.Classes)
			if err := m.Logits(want, x, n); err != nil {
				t.Fatal(err)
			}
			got, rb, err := m.ProvenLogits(x, n)
			if err != nil {
				t.Fatal(err)
			}
			scale := 0.0
			for _, v := range got {
				scale = max(scale, math.Abs(v))
			}
			for j, v := range got {
				if d := math.Abs(v - float64(want[j])); d > 1e-5*(1+scale) {
					t.Errorf("logit %d: float64 %v, float32 %v", j, v, want[j])
				}
			}
			backbone, last := m.LipschitzBound()
			k := backbone
			if !c.lln {
				k = backbone * last
			}
			if math.Abs(rb.K()-k) > 1e-12*k || rb.K() < k {
				t.Errorf("K = %v, LipschitzBound's %v", rb.K(), k)
			}
			at0, _, _ := rb.MarginRounding(0, 0, 1)
			t.Logf("margin rounding at x %.3g, logits up to %.3g, K %.4g", at0, scale, rb.K())
			for im := range n {
				at, near, slope := rb.MarginRounding(im, 0, 1)
				if !(at > 0 && near >= at && slope > 0) || at > 1e-9*(1+scale) || near > 1e-9*(1+scale) || slope > 1e-9*rb.K() {
					t.Errorf("image %d: margin rounding (%g, %g, %g), logits up to %g, K %g", im, at, near, slope, scale, rb.K())
				}
			}
		})
	}
}

// TestLipConvnetProvenLogitsRefusesNaN: a NaN weight or bias makes
// ProvenLogits fail with an error naming the layer, instead of bounds.
func TestLipConvnetProvenLogitsRefusesNaN(t *testing.T) {
	for _, c := range []struct{ name, param string }{
		{"weight", "layer1.0.conv.weight"},
		{"bias", "layer2.0.conv.bias"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newTiny(t, 0, 2)
			found := false
			for _, p := range m.Params() {
				if p.Name == c.param {
					p.W[0], found = float32(math.NaN()), true
				}
			}
			if !found {
				t.Fatalf("no parameter %s", c.param)
			}
			x := randImages(rand.New(rand.NewPCG(1, 1)), 2*m.InputSize())
			_, _, err := m.ProvenLogits(x, 2)
			if err == nil || !strings.Contains(err.Error(), strings.TrimSuffix(strings.TrimSuffix(c.param, ".weight"), ".bias")) {
				t.Fatalf("error %v, want one naming %s", err, c.param)
			}
		})
	}
}
