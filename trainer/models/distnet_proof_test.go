package models

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"certmix/trainer/nn"
)

// distLogits64 evaluates the exact network of m (its float32 weights, means,
// std, running means, sort coefficients) in float64 for one image.
func distLogits64(m *DistNet, x []float32) []float64 {
	cfg := m.Cfg
	plane := cfg.Inputs / cfg.Channels
	in := make([]float64, len(x))
	for i, v := range x {
		in[i] = (float64(v) - float64(cfg.Mean[i/plane])) / float64(cfg.Std)
	}
	for l, layer := range m.Layers {
		out := make([]float64, layer.Out)
		c, norm := nn.SortCoefficients(layer.In, cfg.KeepProb, cfg.TopK)
		for o := range out {
			s := make([]float64, layer.In)
			for i := range s {
				s[i] = math.Abs(in[i] - float64(layer.Weight.W[o*layer.In+i]))
			}
			if m.sortLayer(l) {
				sort.Sort(sort.Reverse(sort.Float64Slice(s)))
				acc := float64(float32(1e-10))
				for k, ck := range c {
					acc += float64(ck) * s[k]
				}
				out[o] = acc / float64(norm)
			} else {
				for _, v := range s {
					out[o] = max(out[o], v)
				}
			}
		}
		if l < len(m.Shifts) {
			for o := range out {
				out[o] -= float64(m.Shifts[l].Running[o])
			}
		}
		in = out
	}
	g := make([]float64, cfg.Classes)
	for j := range g {
		g[j] = -(in[j] + float64(m.Bias.W[j]))
	}
	return g
}

// TestLinfRoundingBoundsHold: for l_inf-dist Net and SortNet, every
// computed margin is within the proven bound of the exact network's
// (float64), at the image and at a random point of the l_inf ball of radius
// r, and the bounds are small (far below the margins' scale).
func TestLinfRoundingBoundsHold(t *testing.T) {
	for _, q := range []float64{1, 0.85} {
		rng := rand.New(rand.NewPCG(15, 3))
		const n = 4
		m, err := NewDistNet(DistNetConfig{Depth: 3, Width: 32, Classes: 10, Channels: 1, Inputs: 64, MaxBatch: n,
			KeepProb: q, TopK: 10, Group: 2, Mean: []float32{0.3}, Std: 0.35}, rng)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range m.Shifts {
			for i := range s.Running {
				s.Running[i] = float32(rng.NormFloat64() * 3)
			}
		}
		x := make([]float32, n*64)
		for i := range x {
			x[i] = rng.Float32()
		}
		rb, err := m.LinfRoundingBounds(x, n)
		if err != nil {
			t.Fatal(err)
		}
		const r = 0.03
		C := 10
		for i := range n {
			img := x[i*64 : (i+1)*64]
			exact := distLogits64(m, img)
			xp := make([]float32, 64)
			for k := range xp {
				xp[k] = img[k] + float32(r*0.99*(2*rng.Float64()-1))
			}
			exactP := distLogits64(m, xp)
			gp := m.Eval(xp, 1)
			for c := range C {
				for j := range C {
					if j == c {
						continue
					}
					at, near, slope := rb.MarginRounding(i, c, j)
					got := float64(rb.logits[i*C+c]) - float64(rb.logits[i*C+j])
					if e := math.Abs(got - (exact[c] - exact[j])); e > at {
						t.Errorf("q %v image %d, %d-%d: error %g above the bound %g", q, i, c, j, e, at)
					}
					if e := math.Abs(float64(gp[c]) - float64(gp[j]) - (exactP[c] - exactP[j])); e > near+r*slope {
						t.Errorf("q %v image %d, %d-%d within %g: error %g above the bound %g", q, i, c, j, r, e, near+r*slope)
					}
					if at > 1e-4 || near+r*slope > 1e-4 {
						t.Errorf("q %v image %d: bounds %g, %g: vacuous", q, i, at, near+r*slope)
					}
				}
			}
			at, near, slope := rb.MarginRounding(i, 0, 1)
			t.Logf("q %v image %d: logits %.4g; at %.3g near %.3g slope %.3g", q, i, rb.logits[i*C:(i+1)*C], at, near, slope)
		}
	}
}
