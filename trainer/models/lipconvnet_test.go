package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"certmix/trainer/nn"
)

func cifarMean() []float64 { return []float64{0.4914, 0.4822, 0.4465} }

// TestLipConvnetLayout: LOT-S (b = 2, 32 init channels) has exactly the
// convolutions of the authors' lip_convnets.py (channels after space-to-depth → out @ size), and
// the residual LOT-M names its hidden blocks as the authors' LipResNet does.
func TestLipConvnetLayout(t *testing.T) {
	m, err := NewLipConvnet(2, 32, 10, 3, true, false, cifarMean(), 0.2507, 10, 1, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"3->32 k3 @32", "128->64 k3 @16", "64->64 k3 @16", "256->128 k3 @8", "128->128 k3 @8",
		"512->256 k3 @4", "256->256 k3 @4", "1024->512 k3 @2", "512->512 k3 @2", "2048->1024 k1 @1",
	}
	if len(m.Layers) != len(want) {
		t.Fatalf("%d LOT layers, want %d", len(m.Layers), len(want))
	}
	for i, l := range m.Layers {
		c := l.Conv
		if got := fmt.Sprintf("%d->%d k%d @%d", c.Cin, c.Cout, c.K, c.N); got != want[i] {
			t.Errorf("layer %d: %s, want %s", i, got, want[i])
		}
	}
	if m.Features != 1024 || m.Last.Cin != 1024 || m.Last.Cout != 10 || m.Last.K != 1 {
		t.Errorf("last layer %d->%d k%d, features %d", m.Last.Cin, m.Last.Cout, m.Last.K, m.Features)
	}
	names := map[string]bool{}
	for _, p := range m.Params() {
		names[p.Name] = true
	}
	for _, n := range []string{"layer1.in_block.conv.weight", "layer1.out_block.conv.bias", "layer5.out_block.conv.weight", "last_layer.weight"} {
		if !names[n] {
			t.Errorf("no parameter %s", n)
		}
	}
	m4, err := NewLipConvnet(4, 2, 10, 1, true, true, []float64{0.5}, 0.25, 10, 1, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range m4.Params()[:8] {
		got = append(got, p.Name)
	}
	wantNames := "[layer1.in_block.conv.weight layer1.in_block.conv.bias layer1.hidden_block.0.conv.weight layer1.hidden_block.0.conv.bias layer1.hidden_block.1.conv.weight layer1.hidden_block.1.conv.bias layer1.out_block.conv.weight layer1.out_block.conv.bias]"
	if fmt.Sprint(got) != wantNames {
		t.Errorf("LOT-M parameters start %v, want %s", got, wantNames)
	}
	if n := len(m4.Layers); n != 20 || !m4.Layers[1].Residual || m4.Layers[0].Residual || m4.Layers[3].Residual {
		t.Errorf("LipConvnet-20: %d layers, residual flags wrong", n)
	}
	if m4.Head == nil || m4.Head.Name != "last_layer.weight" || m4.Last != nil {
		t.Error("LLN head missing")
	}
}

// tinyNets are CPU-sized LipConvnets covering every code path.
var tinyNets = []struct {
	name          string
	blocks, width int
	residual, lln bool
	mix           bool // res_lamda_logit away from 0 (λ ≠ ½), a different one per stage
}{
	{"b1", 1, 2, false, false, false},
	{"b3_residual", 3, 2, true, false, false},
	{"b3_plain_lln", 3, 2, false, true, false},
	{"b2_lln", 2, 2, true, true, false},
	{"b3_residual_mix", 3, 2, true, false, true},
}

func newTiny(t *testing.T, i, n int) *LipConvnet {
	c := tinyNets[i]
	m, err := NewLipConvnet(c.blocks, c.width, 3, 2, c.residual, c.lln, []float64{0.45, 0.5}, 0.2507, 10, n, rand.New(rand.NewPCG(uint64(10+i), 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c.mix {
		if err := m.SetResidualLogits([5]float32{1.2, -0.8, 0.5, 2, -1.5}); err != nil {
			t.Fatal(err)
		}
	}
	// Away from the identity init, so that the layers do something.
	rng := rand.New(rand.NewPCG(uint64(20+i), 1))
	for _, p := range m.Params() {
		for j := range p.W {
			p.W[j] += float32(0.2 * rng.NormFloat64())
		}
	}
	return m
}

func randImages(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.Float64())
	}
	return x
}

// TestLipConvnetGrad: Backward after a training Forward matches central
// differences of sum(logits × cotangent), to float32 precision, along the
// gradients of the first, middle and last layers' tensors and of the input; after an evaluation Forward it gives the same input
// gradient and leaves the parameters' gradients alone.
func TestLipConvnetGrad(t *testing.T) {
	for i, c := range tinyNets {
		t.Run(c.name, func(t *testing.T) {
			const n = 2
			m := newTiny(t, i, n)
			rng := rand.New(rand.NewPCG(uint64(30+i), 1))
			x := randImages(rng, n*m.InputSize())
			cot := make([]float32, n*m.Classes)
			for j := range cot {
				cot[j] = float32(rng.NormFloat64())
			}
			loss := func() float64 {
				var s float64
				for j, v := range m.Forward(x, n, true) {
					s += float64(v) * float64(cot[j])
				}
				return s
			}
			loss()
			nn.ZeroGrads(m.Params())
			dx := make([]float32, len(x))
			m.Backward(cot, nil, n, dx)
			// Along each tensor's own gradient direction v = g/‖g‖ the
			// derivative is ‖g‖, large enough to stand above the float32
			// noise of Newton–Schulz. MaxMin has kinks: a step is only used
			// if no MaxMin comparison of any layer flips between w − hv and
			// w + hv, so that the loss is smooth on the segment.
			pattern := func() []bool {
				var p []bool
				for _, l := range m.Layers {
					h := l.Conv.Cout / 2 * l.Conv.N * l.Conv.N
					for b := range n {
						pre := l.pre[b*2*h:][:2*h]
						for j := range h {
							p = append(p, pre[j] >= pre[h+j])
						}
					}
				}
				return p
			}
			l0 := loss()
			base := pattern()
			check := func(what string, w, g []float32) {
				var norm float64
				for _, v := range g {
					norm += float64(v) * float64(v)
				}
				norm = math.Sqrt(norm)
				if norm == 0 {
					t.Errorf("%s: zero gradient", what)
					return
				}
				w0 := append([]float32(nil), w...)
				defer copy(w, w0)
				at := func(h float64) (float64, bool) {
					for j := range w {
						w[j] = w0[j] + float32(h*float64(g[j])/norm)
					}
					l := loss()
					for j, v := range pattern() {
						if v != base[j] {
							return l, false
						}
					}
					return l, true
				}
				for _, h := range []float64{1e-3, 3e-4, 1e-4, 3e-5} {
					lp, ok1 := at(h)
					lm, ok2 := at(-h)
					if !ok1 || !ok2 {
						continue
					}
					num := (lp - lm) / (2 * h)
					// float32 rounding of the loss (about 1e-6 of it, most
					// from Newton–Schulz) divided by the step, and 2e-3.
					tol := 2e-3 + 1e-6*max(1, math.Abs(l0))/(h*norm)
					if r := math.Abs(num-norm) / norm; r > tol {
						t.Errorf("%s: directional derivative %.6g, ‖gradient‖ %.6g (relative error %.3g > %.3g, h %g)", what, num, norm, r, tol, h)
					}
					return
				}
				t.Logf("%s: a MaxMin comparison flips within 3e-5 along the gradient; not checked", what)
			}
			ps := m.Params() // the first and the middle layers', the last block's and the last layer's
			for _, j := range []int{0, 1, len(ps)/2 - 1, len(ps)/2 + 1, len(ps) - 4, len(ps) - 3, len(ps) - 2, len(ps) - 1} {
				check(ps[j].Name, ps[j].W, ps[j].G)
			}
			check("input", x, dx)

			grads := make([][]float32, 0)
			for _, p := range m.Params() {
				grads = append(grads, append([]float32(nil), p.G...))
			}
			m.Forward(x, n, false)
			dxEval := make([]float32, len(x))
			m.Backward(cot, nil, n, dxEval)
			for j, v := range dx {
				if math.Abs(float64(v-dxEval[j])) > 1e-5*(1+math.Abs(float64(v))) {
					t.Fatalf("evaluation input gradient [%d] = %g, training %g", j, dxEval[j], v)
				}
			}
			for k, p := range m.Params() {
				for j, v := range p.G {
					if v != grads[k][j] {
						t.Fatalf("evaluation Backward changed %s's gradient", p.Name)
					}
				}
			}
		})
	}
}

// TestLipConvnetLipschitz: for random pairs of images,
// ‖f(x) − f(x')‖ ≤ K‖x − x'‖ with K the proven bound (backbone × last layer,
// or backbone × ‖ŵ_c − ŵ_j‖ for each margin under LLN), and K is within
// 1e-5 of 1/std.
func TestLipConvnetLipschitz(t *testing.T) {
	for i, c := range tinyNets {
		t.Run(c.name, func(t *testing.T) {
			const n = 16
			m := newTiny(t, i, n)
			rng := rand.New(rand.NewPCG(uint64(40+i), 1))
			backbone, last := m.LipschitzBound()
			k := backbone
			if !m.LLN {
				k *= last
			}
			if math.Abs(k*0.2507-1) > 1e-5 && !(k*0.2507 < 1) {
				t.Errorf("bound K = %.8f, 1/std = %.8f", k, 1/0.2507)
			}
			worst := 0.0
			for trial := range 10 {
				x, x2 := randImages(rng, n*m.InputSize()), randImages(rng, n*m.InputSize())
				if trial%2 == 1 {
					for j := range x2 {
						x2[j] = x[j] + 0.01*(x2[j]-0.5)
					}
				}
				y := append([]float32(nil), m.Forward(x, n, false)...)
				y2 := m.Forward(x2, n, false)
				d := m.InputSize()
				for s := range n {
					var dy, dxx float64
					for j := range m.Classes {
						v := float64(y[s*m.Classes+j] - y2[s*m.Classes+j])
						dy += v * v
					}
					for j := s * d; j < (s+1)*d; j++ {
						v := float64(x[j] - x2[j])
						dxx += v * v
					}
					limit := k
					if m.LLN { // each logit row has norm 1: ‖Δy‖ ≤ √C·K
						limit = k * math.Sqrt(float64(m.Classes))
					}
					worst = max(worst, math.Sqrt(dy/dxx)/limit)
				}
			}
			t.Logf("largest ‖f(x)−f(x')‖ / (K‖x−x'‖) = %.5f", worst)
			if worst > 1+1e-5 {
				t.Errorf("ratio %.7f > 1", worst)
			}
		})
	}
}
