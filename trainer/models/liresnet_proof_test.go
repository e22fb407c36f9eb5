package models

import (
	"math"
	"math/rand/v2"
	"testing"

	"certmix/trainer/nn"
)

// conv64 is the convolution of geometry g in float64 from its definition.
func conv64(g nn.ConvGeom, w, b []float32, in []float64) []float64 {
	ho, wo := g.Ho(), g.Wo()
	out := make([]float64, g.OutLen())
	for o := range g.Cout {
		for i := range ho {
			for j := range wo {
				s := float64(b[o])
				for c := range g.Cin {
					for ky := range g.K {
						for kx := range g.K {
							y, x := i*g.Stride-g.Pad+ky, j*g.Stride-g.Pad+kx
							if y >= 0 && y < g.H && x >= 0 && x < g.W {
								s += float64(w[((o*g.Cin+c)*g.K+ky)*g.K+kx]) * in[(c*g.H+y)*g.W+x]
							}
						}
					}
				}
				out[(o*ho+i)*wo+j] = s
			}
		}
	}
	return out
}

// logits64 is the exact network (the float32 weights, effective kernels and
// normalised head rows of m) in float64, for one image.
func logits64(m *LiResNet, x []float32) []float64 {
	h := make([]float64, len(x))
	for i, v := range x {
		h[i] = float64(v) - 0.5
	}
	h = conv64(m.Stem.Op.ConvGeom, m.Stem.Weight.W, m.Stem.Bias.W, h)
	minMax64(h, 1, m.Width, len(h)/m.Width)
	for _, b := range m.Blocks {
		h = conv64(b.Op.ConvGeom, b.Kernel, b.Bias.W, h)
		minMax64(h, 1, m.Width, len(h)/m.Width)
	}
	h = conv64(m.Neck.Op.ConvGeom, m.Neck.Weight.W, m.Neck.Bias.W, h)
	minMax64(h, 1, 2*m.Width, len(h)/(2*m.Width))
	fc := make([]float64, m.FC.Out)
	for o := range fc {
		s := float64(m.FC.Bias.W[o])
		for i, v := range h {
			s += float64(m.FC.Weight.W[o*m.FC.In+i]) * v
		}
		fc[o] = s
	}
	minMax64(fc, 1, len(fc), 1)
	y := make([]float64, m.Classes)
	for j := range y {
		s := float64(m.HBias.W[j])
		for i, v := range fc {
			s += float64(m.headHat[j*Features+i]) * v
		}
		y[j] = s
	}
	return y
}

// TestRoundingBoundsHold: for every image and class pair, the computed
// margin is within the proven bound of the exact network's (evaluated in
// float64), at the image and at a random point within radius r (near +
// r·slope, from the image's bounds); and on a network at initialisation the
// bounds are not vacuous (below 3e-3, the margins are of order 0.1–1).
func TestRoundingBoundsHold(t *testing.T) {
	const n = 3
	m, err := NewLiResNet(2, 16, 10, 1, n, rand.New(rand.NewPCG(5, 5))) // at initialisation: blocks near the identity, as trained ones are
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, n*m.InputSize())
	for i := range x {
		x[i] = float32(i%7) / 6
	}
	_, layers, err := m.ProvenLipschitz()
	if err != nil {
		t.Fatal(err)
	}
	logits := make([]float32, n*m.Classes)
	rb, err := m.RoundingBounds(logits, x, n, layers)
	if err != nil {
		t.Fatal(err)
	}
	C := m.Classes
	rng := rand.New(rand.NewPCG(5, 6))
	const r = 0.05
	d := m.InputSize()
	for i := range n {
		img := x[i*d : (i+1)*d]
		exact := logits64(m, img)
		xp := make([]float32, d) // a point at distance ≤ r
		var nrm float64
		dir := make([]float64, d)
		for k := range dir {
			dir[k] = rng.NormFloat64()
			nrm += dir[k] * dir[k]
		}
		for k := range xp {
			xp[k] = img[k] + float32(0.99*r*dir[k]/math.Sqrt(nrm))
		}
		exactP := logits64(m, xp)
		lp := make([]float32, C)
		if err := m.Logits(lp, xp, 1); err != nil {
			t.Fatal(err)
		}
		for c := range C {
			for j := range C {
				if j == c {
					continue
				}
				at, near, slope := rb.MarginRounding(i, c, j)
				got := float64(logits[i*C+c]) - float64(logits[i*C+j])
				if e := math.Abs(got - (exact[c] - exact[j])); e > at {
					t.Errorf("image %d, %d-%d: error %g above the bound %g", i, c, j, e, at)
				}
				gotP := float64(lp[c]) - float64(lp[j])
				if e := math.Abs(gotP - (exactP[c] - exactP[j])); e > near+r*slope {
					t.Errorf("image %d, %d-%d within %g: error %g above the bound %g", i, c, j, r, e, near+r*slope)
				}
				if at > 3e-3 || near+r*slope > 3e-3 {
					t.Errorf("image %d, %d-%d: bounds %g, %g: vacuous", i, c, j, at, near+r*slope)
				}
			}
		}
		t.Logf("image %d: logits %v; at %.3g, near %.3g, slope %.3g", i, logits[i*C:(i+1)*C], func() float64 { a, _, _ := rb.MarginRounding(i, 0, 1); return a }(), func() float64 { _, b, _ := rb.MarginRounding(i, 0, 1); return b }(), func() float64 { _, _, s := rb.MarginRounding(i, 0, 1); return s }())
	}
}
