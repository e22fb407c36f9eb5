package models

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"certmix/trainer/nn"
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

// spatialLOT is the exact map of a LOT layer built independently of the
// DFT code: the circular convolution on the padded n×n grid with the kernel
// k_oc(dy, dx) = n⁻² Σ_{u,v} M̃_oc(u,v) e^{+2πi(u·dy + v·dx)/n} (M̃ the
// stored half spectrum and its Hermitian extension), evaluated directly in
// float64, then cropped, plus the bias.
func spatialLOT(l *nn.LOT) func(out, in []float64) {
	mo, n, h, _ := l.Spectrum()
	ci, co, N := l.Cin, l.Cout, l.N
	oc := co * ci
	kern := make([]float64, oc*n*n)
	for o := range co {
		for c := range ci {
			for dy := range n {
				for dx := range n {
					var s float64
					for u := range n {
						for v := range n {
							var m complex128
							if v < h {
								m = complex128(mo[(u*h+v)*oc+o*ci+c])
							} else {
								m = complex128(mo[(((n-u)%n)*h+n-v)*oc+o*ci+c])
								m = complex(real(m), -imag(m))
							}
							sn, cs := math.Sincos(2 * math.Pi * float64((u*dy+v*dx)%n) / float64(n))
							s += real(m)*cs - imag(m)*sn
						}
					}
					kern[((o*ci+c)*n+dy)*n+dx] = s / float64(n*n)
				}
			}
		}
	}
	bias := l.Bias.W
	return func(out, in []float64) {
		xs := in
		if l.Stride > 1 { // space-to-depth
			xs = make([]float64, ci*N*N)
			s := l.Stride
			for c := range l.InC {
				for k1 := range s {
					for k2 := range s {
						for i := range N {
							for j := range N {
								xs[((c*s*s+k1*s+k2)*N+i)*N+j] = in[(c*l.Size+s*i+k1)*l.Size+s*j+k2]
							}
						}
					}
				}
			}
		}
		for o := range co {
			for y := range N {
				for x := range N {
					s := float64(bias[o])
					for c := range ci {
						for y2 := range N {
							for x2 := range N {
								s += kern[((o*ci+c)*n+(y-y2+n)%n)*n+(x-x2+n)%n] * xs[(c*N+y2)*N+x2]
							}
						}
					}
					out[(o*N+y)*N+x] = s
				}
			}
		}
	}
}

// refLogits evaluates the exact network of m on one image with spatialLOT
// layers (float64, a different algorithm from ProvenLogits').
func refLogits(m *LipConvnet, x []float32) []float64 {
	inv := float64(1 / m.Std)
	cur := make([]float64, m.InputSize())
	for c := range m.Channels {
		for j := range inputPlane {
			cur[c*inputPlane+j] = (float64(x[c*inputPlane+j]) - float64(m.Mean[c])) * inv
		}
	}
	for _, l := range m.Layers {
		out := make([]float64, l.Conv.OutLen())
		spatialLOT(l.Conv)(out, cur)
		minMax64(out, 1, l.Conv.Cout, l.Conv.N*l.Conv.N)
		if l.Residual {
			for j := range out {
				out[j] = float64(l.Lambda)*cur[j] + float64(l.Keep)*out[j]
			}
		}
		cur = out
	}
	y := make([]float64, m.Classes)
	if m.LLN {
		m.normHead()
		for j := range y {
			s := float64(m.HBias.W[j])
			for t, w := range m.headHat[j*m.Features : (j+1)*m.Features] {
				s += float64(w) * cur[t]
			}
			y[j] = s
		}
		return y
	}
	spatialLOT(m.Last)(y, cur)
	return y
}

// TestLipConvnetRoundingBoundHolds: on tiny LipConvnets (plain, LLN,
// residual with λ ≠ ½) every margin of ProvenLogits is within its proven
// rounding bound `at` of the exact network's, computed independently
// (refLogits: spatial convolutions with kernels summed directly from the
// spectrum), allowing 1e-12 of the logits' scale for the reference's own
// float64 error; and the bound is below 1e-9 of 1 + that scale (margins of
// order one).
func TestLipConvnetRoundingBoundHolds(t *testing.T) {
	for _, i := range []int{0, 3, 4} {
		c := tinyNets[i]
		t.Run(c.name, func(t *testing.T) {
			const n = 2
			m := newTiny(t, i, n)
			x := randImages(rand.New(rand.NewPCG(uint64(60+i), 1)), n*m.InputSize())
			got, rb, err := m.ProvenLogits(x, n)
			if err != nil {
				t.Fatal(err)
			}
			C := m.Classes
			for im := range n {
				ref := refLogits(m, x[im*m.InputSize():(im+1)*m.InputSize()])
				scale := 0.0
				for _, v := range ref {
					scale = max(scale, math.Abs(v))
				}
				for cc := range C {
					for j := range C {
						if j == cc {
							continue
						}
						at, _, _ := rb.MarginRounding(im, cc, j)
						d := math.Abs((got[im*C+cc] - got[im*C+j]) - (ref[cc] - ref[j]))
						if d > at+1e-12*scale {
							t.Errorf("image %d margin %d-%d: off by %g from the exact network, bound %g", im, cc, j, d, at)
						}
						if at > 1e-9*(1+scale) {
							t.Errorf("image %d margin %d-%d: bound %g over 1e-9 of 1 + the logits' scale %g", im, cc, j, at, scale)
						}
						if cc == 0 && j == 1 {
							t.Logf("image %d: margin off by %.3g, bound %.3g, logits' scale %.3g", im, d, at, scale)
						}
					}
				}
			}
		})
	}
}
