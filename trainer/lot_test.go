package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"certmix/certifier"
	"certmix/trainer/nn"
	"certmix/trainer/optim"
)

// tinyLOT is a CPU-sized LipConvnet on the toy batches: LipConvnet-5
// (one stride-2 block per stage) of width 4.
func tinyLOT(depth int, lln bool) Config {
	cfg := lotPreset(depth)
	cfg.Width, cfg.Classes, cfg.Channels, cfg.Batch = 4, 2, 1, 16
	cfg.Epochs, cfg.StepsPerEpoch, cfg.Seed = 4, 10, 3
	cfg.LR = 0.05
	lc := DefaultLOTConfig()
	lc.LLN, lc.Gamma = lln, 0.5
	cfg.LOT = &lc
	return cfg
}

// TestLOTLossGrad: LOTLoss's gradients with respect to the logits and the
// LLN rows equal central differences of its value, for γ = 0 and 0.5 and
// both last layers.
func TestLOTLossGrad(t *testing.T) {
	const n, classes, features = 6, 4, 5
	rng := rand.New(rand.NewPCG(1, 2))
	for _, lln := range []bool{false, true} {
		for _, gamma := range []float64{0, 0.5} {
			t.Run(fmt.Sprintf("lln%v_gamma%g", lln, gamma), func(t *testing.T) {
				logits := make([]float32, n*classes)
				for i := range logits {
					logits[i] = float32(rng.NormFloat64())
				}
				labels := []int{0, 1, 2, 3, 1, 2}
				var hat []float32
				if lln {
					w := make([]float32, classes*features)
					for i := range w {
						w[i] = float32(rng.NormFloat64())
					}
					hat, _ = certifier.NormalizeRows(w, classes)
				}
				value := func() float64 {
					d := make([]float32, n*classes)
					var dh []float32
					if lln {
						dh = make([]float32, classes*features)
					}
					return lotLoss(logits, labels, classes, gamma, 4, hat, d, dh).Loss
				}
				dLog := make([]float32, n*classes)
				var dHat []float32
				if lln {
					dHat = make([]float32, classes*features)
				}
				lotLoss(logits, labels, classes, gamma, 4, hat, dLog, dHat)
				fd := func(what string, x, g []float32) {
					const h = 1e-3
					for i := range x {
						x0 := x[i]
						x[i] = x0 + h
						lp := value()
						x[i] = x0 - h
						lm := value()
						x[i] = x0
						if num := (lp - lm) / (2 * h); math.Abs(num-float64(g[i])) > 1e-4+1e-3*math.Abs(num) {
							t.Errorf("%s[%d]: analytic %.6g, central difference %.6g", what, i, g[i], num)
						}
					}
				}
				fd("logits", logits, dLog)
				if lln {
					fd("hat", hat, dHat)
				}
			})
		}
	}
}

// TestSGD: PyTorch's SGD with momentum, by hand: b = g + wd·w, then
// b ← 0.9·b + g + wd·w, w ← w − lr·b; NoDecay parameters skip the decay.
func TestSGD(t *testing.T) {
	a, b := nn.NewParam("a", 1), nn.NewParam("b", 1)
	a.W[0], b.W[0] = 1, 1
	b.NoDecay = true
	o, err := optim.New(optim.Config{Name: "sgd", Momentum: 0.9}, []*nn.Param{a, b}, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	ps := []*nn.Param{a, b}
	a.G[0], b.G[0] = 2, 2
	o.Update(ps, 0.5, 1) // a: buf 2.1, w 1 − 1.05 = −0.05; b: buf 2, w 0
	a.G[0], b.G[0] = 1, 1
	o.Update(ps, 0.5, 2) // a: buf 0.9·2.1 + 1 − 0.005 = 2.885, w −0.05 − 1.4425; b: buf 2.8, w −1.4
	for _, c := range []struct {
		name      string
		got, want float32
	}{{"a", a.W[0], -0.05 - 1.4425}, {"b", b.W[0], -1.4}} {
		if math.Abs(float64(c.got-c.want)) > 1e-6 {
			t.Errorf("%s after two steps: %v, want %v", c.name, c.got, c.want)
		}
	}
	if bs := o.Buffers(); len(bs) != 2 || bs[0].Name != "sgd_momentum/a" {
		t.Errorf("buffers %v", bs)
	}
}

// TestLOTPresets: lot-s, lot-m and lot-l are LipConvnet-10, -20 and -40 with
// the paper's recipe.
func TestLOTPresets(t *testing.T) {
	for name, depth := range map[string]int{"lot-s": 10, "lot-m": 20, "lot-l": 40} {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if c.Arch != ArchLOT || c.Depth != depth || c.Width != 32 || c.Batch != 256 || c.LR != 0.1 || c.WeightDecay != 0 ||
			c.Optimizer.Name != "sgd" || c.Optimizer.Momentum != 0.9 || c.Schedule != "cosine" || c.Epochs != 200 ||
			c.Augment.Pad != 4 || c.Augment.Edge || c.Eps != 36.0/255 || c.LOT == nil || !c.LOT.Residual || c.LOT.Iters != 10 {
			t.Errorf("%s: %+v", name, c)
		}
	}
	if _, err := newModel(Config{Arch: ArchLOT, Depth: 12, Width: 4, Classes: 2, Channels: 1, Batch: 1}); err == nil {
		t.Error("LipConvnet-12 (not a multiple of 5) was accepted")
	}
}

// provenLOT is a LOT model whose logits are those of the certified float64
// pass (models.LipConvnet.ProvenLogits, rounded to float32), so that an
// attack checks the program the certificate is about; its gradients are
// the float32 pass's.
type provenLOT struct{ *LOTModel }

func (p provenLOT) Logits(dst, x []float32, n int) error {
	logits, _, err := p.Net.ProvenLogits(x, n)
	if err != nil {
		return err
	}
	for i, v := range logits {
		dst[i] = float32(v)
	}
	return nil
}

// TestLOTCertificatesSurviveAttacks trains tiny LipConvnets until they
// certify some points; every radius is at most the one without the rounding
// bound (the same float64 logits and margin Lipschitz constants, no
// rounding); then a PGD attack on the certified float64 pass at 0.99 of each
// certified radius never changes a prediction (while at 3 times the radius
// it flips most),
// and no pair of inputs moves a margin by more
// than its Lipschitz bound (√2·K, or K·‖ŵ_c − ŵ_j‖ with LLN) times their
// distance.
func TestLOTCertificatesSurviveAttacks(t *testing.T) {
	for _, c := range []struct {
		depth int
		lln   bool
	}{{5, false}, {5, true}} {
		t.Run(fmt.Sprintf("LipConvnet%d_lln%v", c.depth, c.lln), func(t *testing.T) {
			cfg := tinyLOT(c.depth, c.lln)
			tr, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			losses := run(t, tr, &toyBatches{n: 16}, 40)
			if first, last := losses[0], losses[len(losses)-1]; !(last < first) {
				t.Errorf("loss %.4f after 40 steps, %.4f at the first", last, first)
			}
			test := toyBatch(10_000, 16, 7)
			x := make([]float32, 16*1024)
			toInput(x, test.Images, 16, 32, 32, 1, 1)
			labels := make([]int, 16)
			for i, l := range test.Labels {
				labels[i] = int(l)
			}
			cert, err := tr.Model.Certify(x, labels, cfg.Eps)
			if err != nil {
				t.Fatal(err)
			}
			if cert.Norm != "l2" || math.Abs(cert.K*0.2507-1) > 1e-4 {
				t.Errorf("certificate norm %q, K %.6f (1/std = %.6f)", cert.Norm, cert.K, 1/0.2507)
			}
			certified := 0
			for _, r := range cert.Results {
				if r.Correct() && r.Radius > cfg.Eps {
					certified++
				}
			}
			t.Logf("%d of 16 certified at %.4f, K = %.7f", certified, cfg.Eps, cert.K)
			if certified < 8 {
				t.Fatalf("only %d of 16 test points certified: the toy model did not learn", certified)
			}
			net := tr.Model.(*LOTModel).Net
			logits, rb, err := net.ProvenLogits(x, 16)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := certifier.CertifyMargins(logits, labels, net.Classes, rb.MarginLipschitz)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range cert.Results {
				if r.Prediction != plain[i].Prediction || !(r.Radius <= plain[i].Radius) {
					t.Errorf("image %d: prediction %d radius %v, without the rounding bound %d, %v", i, r.Prediction, r.Radius, plain[i].Prediction, plain[i].Radius)
				}
			}
			broken, err := certifier.CheckCertificates(provenLOT{tr.Model.(*LOTModel)}, x, cert.Results, 0.99, certifier.PGDOptions{Steps: 100, Restarts: 3, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(broken) > 0 {
				t.Fatalf("PGD broke the certificates of images %v", broken)
			}
			attackHasTeeth(t, tr.Model, x, cert.Results, 3, certifier.PGDOptions{Steps: 100, Restarts: 3, Seed: 1})
			lip := func(int, int) float64 { return math.Sqrt2 * cert.K }
			if c.lln {
				g, err := certifier.NewGloRo(cert.K, tr.Model.(*LOTModel).Net.HeadRows(), 2)
				if err != nil {
					t.Fatal(err)
				}
				lip = g.MarginLipschitz
			}
			probe, err := certifier.LipschitzProbe(tr.Model, x, 16, lip, certifier.ProbeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("worst margin change / bound: %.4f", probe.WorstRatio)
			if probe.WorstRatio > 1 {
				t.Fatalf("a margin changed by %.4f of its Lipschitz bound", probe.WorstRatio)
			}
		})
	}
}

// TestLOTCertifyRefusesNonFinite: when a weight, a bias or the LLN head is
// not finite, no bound can be established and Certify fails with an error
// that says so and names the tensor's layer, instead of returning radii.
func TestLOTCertifyRefusesNonFinite(t *testing.T) {
	for _, c := range []struct {
		name, param, want string
		lln               bool
	}{
		{"weight", "layer1.in_block.conv.weight", "layer1.in_block.conv", false},
		{"bias", "layer3.out_block.conv.bias", "layer3.out_block.conv", false},
		{"last layer", "last_layer.weight", "last_layer", false},
		{"lln head", "last_layer.bias", "last_layer row", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := tinyLOT(10, c.lln)
			m, err := newModel(cfg)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, p := range m.Params() {
				if p.Name == c.param {
					p.W[0], found = float32(math.NaN()), true
				}
			}
			if !found {
				t.Fatalf("no parameter %s", c.param)
			}
			x := make([]float32, 2*m.InputSize())
			_, err = m.Certify(x, []int{0, 1}, cfg.Eps)
			if err == nil || !strings.Contains(err.Error(), "LOT certificate") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Certify with a NaN in %s: error %v, want one naming %q", c.param, err, c.want)
			}
		})
	}
}

// TestLOTResumeEqualsUninterrupted: a LOT run (SGD momentum in the
// checkpoint) stopped, evaluated, saved and resumed has the loss curve and
// the final weights of one that never stopped.
func TestLOTResumeEqualsUninterrupted(t *testing.T) {
	resumeEqualsUninterrupted(t, tinyLOT(5, false), 7, 9)
}

// BenchmarkLOTTrainStep times one LOT-S (LipConvnet-10, width 32) training
// step at batch 256 on 32x32x3 inputs: forward with every layer
// orthogonalised (10 Newton–Schulz iterations per frequency), cross-entropy,
// backward through the iterations, SGD. The first step, which allocates the
// iterates' stash, is not timed. Besides wall time it reports the CPU time
// per step (all threads), which a shared machine does not inflate.
//
//	go test ./trainer -run '^$' -bench LOTTrainStep -benchtime 3x
func BenchmarkLOTTrainStep(b *testing.B) {
	cfg, _ := Preset("lot-s")
	cfg.StepsPerEpoch = 196
	tr, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	batch := Batch{Images: make([]byte, 256*3072), Labels: make([]int16, 256), Height: 32, Width: 32, Channels: 3}
	for i := range batch.Images {
		batch.Images[i] = byte(rng.IntN(256))
	}
	for i := range batch.Labels {
		batch.Labels[i] = int16(rng.IntN(10))
	}
	if _, err := tr.TrainStep(batch); err != nil {
		b.Fatal(err)
	}
	var stash int
	for _, l := range tr.Model.(*LOTModel).Net.Layers {
		stash += l.Conv.StashBytes()
	}
	b.ResetTimer()
	c0 := cpuTime()
	for range b.N {
		if _, err := tr.TrainStep(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "images/s")
	b.ReportMetric((cpuTime()-c0).Seconds()/float64(b.N), "cpu-s/step")
	b.ReportMetric(float64(stash)/(1<<20), "stash-MiB")
}
