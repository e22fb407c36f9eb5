package importer

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"certmix/internal/npy"
	"certmix/trainer"
)

// The authors' reference files (see testdata/README.md).
const (
	liresnetRef = "../../testdata/liresnet_ref_L2W16.npz"
	linfRef     = "../../testdata/linfdist_ref_D3W32.npz"
	sortRef     = "../../testdata/sortnet_ref_D4W32.npz"
	lotRef      = "../../testdata/lot_ref_model_B3C4.npz"
)

func load(t *testing.T, path string) map[string]*npy.Array {
	t.Helper()
	a, err := npy.LoadNPZ(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// identity is the normalisation of the reference files whose inputs are
// already in the network's units (l_inf) or whose model normalises nothing
// (LOT's file).
var identity = []float64{0, 0, 0}

// logits imports arrays with o and computes the logits of the file's input.
func logits(t *testing.T, arrays map[string]*npy.Array, o Options) ([]float32, *trainer.Trainer) {
	t.Helper()
	tr, _, err := Import(arrays, o)
	if err != nil {
		t.Fatal(err)
	}
	in := arrays["input"]
	n := in.Shape[0]
	out := make([]float32, n*tr.Model.Classes())
	if err := tr.Model.Logits(out, in.Float32(), n); err != nil {
		t.Fatal(err)
	}
	return out, tr
}

// agree fails unless got matches want to tol relative (to max(1, |want|)),
// and returns the largest such error.
func agree(t *testing.T, what string, got []float32, want []float64, tol float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, the authors' %d", what, len(got), len(want))
	}
	worst := 0.0
	for i, w := range want {
		e := math.Abs(float64(got[i])-w) / max(1, math.Abs(w))
		worst = max(worst, e)
		if !(e <= tol) {
			t.Fatalf("%s %d: %v, the authors' %v (relative error %.2g > %.0g)", what, i, got[i], w, e, tol)
		}
	}
	t.Logf("%s: largest relative error %.2g (tolerance %.0g)", what, worst, tol)
	return worst
}

// TestConformanceLiResNet: the authors' LiResNet through the importer
// gives their logits.
func TestConformanceLiResNet(t *testing.T) {
	a := load(t, liresnetRef)
	got, _ := logits(t, a, Options{Prefix: "state/"})
	agree(t, "LiResNet logits", got, a["logits"].Data, 1e-4)
}

// TestConformanceLinfDist: the authors' MLPModel after its training-mode
// step (state_after/: running means updated) gives their evaluation-mode
// (p = inf) logits on 3x8x8 inputs.
func TestConformanceLinfDist(t *testing.T) {
	a := load(t, linfRef)
	got, tr := logits(t, a, Options{Prefix: "state_after/", Mean: identity, Std: 1})
	if tr.Cfg.ImageSize != 8 || tr.Model.InputSize() != 192 {
		t.Fatalf("image size %d, input %d values; want 8 and 192", tr.Cfg.ImageSize, tr.Model.InputSize())
	}
	agree(t, "MLPModel eval logits", got, a["eval_inf_logits"].Data, 1e-5)

	// Training mode from the state before the step: p = 8, batch means in
	// the mean shifts, whose running means move to state_after's.
	tr, _, err := Import(a, Options{Prefix: "state_before/", Mean: identity, Std: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := tr.Model.(*trainer.LinfDistModel)
	train := m.Net.Forward(a["input"].Float32(), a["input"].Shape[0], 8)
	agree(t, "MLPModel training logits (p = 8)", train, a["train_p8_logits"].Data, 1e-5)
	for _, b := range m.Buffers() {
		agree(t, "running mean "+b.Name+" after the step", b.Data, a["state_after/"+b.Name].Data, 1e-5)
	}
}

// TestConformanceSortNet: the authors' SortMLPModel (q = 0.85, K = 10)
// gives their evaluation-mode logits.
func TestConformanceSortNet(t *testing.T) {
	a := load(t, sortRef)
	if a["q"].Data[0] != 0.85 || a["truncate"].Data[0] != 10 {
		t.Fatalf("the file's q %v and K %v are not the importer's defaults", a["q"].Data, a["truncate"].Data)
	}
	got, _ := logits(t, a, Options{Arch: trainer.ArchSortNet, Prefix: "state/", Mean: identity, Std: 1})
	agree(t, "SortMLPModel eval logits", got, a["eval_logits"].Data, 1e-5)
}

// TestConformanceLOT: the authors' LipResNet (LOT convolutions, residual
// hidden blocks, 1x1 LOT last layer) gives their logits and cross-entropy.
func TestConformanceLOT(t *testing.T) {
	a := load(t, lotRef)
	got, _ := logits(t, a, Options{Prefix: "state/", Mean: identity, Std: 1})
	agree(t, "LipResNet logits", got, a["logits"].Data, 1e-4)
	agree(t, "LipResNet cross-entropy", []float32{float32(crossEntropy(got, a["label"].Data, 10))}, a["ce_loss"].Data, 1e-4)
}

// crossEntropy is the mean cross-entropy of the logits with the labels, in
// float64.
func crossEntropy(logits []float32, labels []float64, c int) float64 {
	var sum float64
	for b, y := range labels {
		row := logits[b*c : (b+1)*c]
		m := math.Inf(-1)
		for _, v := range row {
			m = max(m, float64(v))
		}
		var z float64
		for _, v := range row {
			z += math.Exp(float64(v) - m)
		}
		sum += m + math.Log(z) - float64(row[int(y)])
	}
	return sum / float64(len(labels))
}

// TestNormalizationMatters: the same weights imported with another input
// normalisation certify other radii, so the flags that give it matter.
func TestNormalizationMatters(t *testing.T) {
	for _, c := range []struct {
		file, prefix string
		right, wrong Options
	}{
		{linfRef, "state_after/", Options{}, Options{Mean: []float64{0.5, 0.5, 0.5}, Std: 0.5}},
		{lotRef, "state/", Options{}, Options{Mean: []float64{0.5, 0.5, 0.5}, Std: 0.5}},
	} {
		a := load(t, c.file)
		// Inputs in [0,1], as the certifier sees pixels.
		x := a["input"].Float32()
		for i, v := range x {
			x[i] = float32(0.5 + 0.1*math.Tanh(float64(v)))
		}
		n := a["input"].Shape[0]
		labels := make([]int, n)
		radii := func(o Options) []float64 {
			o.Prefix = c.prefix
			tr, _, err := Import(a, o)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := tr.Model.Certify(x, labels, 0)
			if err != nil {
				t.Fatal(err)
			}
			var r []float64
			for _, res := range cert.Results {
				r = append(r, res.Radius)
			}
			return r
		}
		right, wrong := radii(c.right), radii(c.wrong)
		differ := 0
		for i := range right {
			if right[i] != wrong[i] {
				differ++
			}
		}
		if differ == 0 {
			t.Errorf("%s: the radii %v are the same with the wrong normalisation", c.file, right)
		}
	}
}

// TestLOTResidualMix: a LipResNet whose res_lamda_logit is not 0 mixes each
// residual block as λx + (1 − λ)f(x) with λ = sigmoid(logit) of its own
// stage: the imported network's logits equal a float64 recomputation of
// the mix around the network's own blocks, differ from λ = ½, and its
// certified bound is the product of λ + (1 − λ)·Lip(f) over the residual
// blocks.
func TestLOTResidualMix(t *testing.T) {
	a := load(t, lotRef)
	half, _ := logits(t, a, Options{Prefix: "state/", Mean: identity, Std: 1})
	zs := []float64{1.5, -2, 0.7, 3, -0.4}
	for s, z := range zs {
		a["state/layer"+string(rune('1'+s))+".res_lamda_logit"] = &npy.Array{Shape: []int{1}, Data: []float64{z}}
	}
	got, tr := logits(t, a, Options{Prefix: "state/", Mean: identity, Std: 1})
	net := tr.Model.(*trainer.LOTModel).Net

	// Recompute: each block's convolution and MaxMin from the network
	// (on the float32-rounded float64 input), the mix in float64.
	in := a["input"]
	n := in.Shape[0]
	x := append([]float64(nil), in.Data...)
	for _, l := range net.Layers {
		inF := make([]float32, len(x))
		for i, v := range x {
			inF[i] = float32(v)
		}
		pre := make([]float32, n*l.Conv.OutLen())
		l.Conv.Forward(pre, inF, n, false)
		act := make([]float32, len(pre))
		l.Act.Forward(act, pre, n)
		next := make([]float64, len(act))
		lam := 1 / (1 + math.Exp(-zs[l.Stage]))
		for i, v := range act {
			if l.Residual {
				next[i] = lam*x[i] + (1-lam)*float64(v)
			} else {
				next[i] = float64(v)
			}
		}
		x = next
	}
	feat := make([]float32, len(x))
	for i, v := range x {
		feat[i] = float32(v)
	}
	want32 := make([]float32, n*10)
	net.Last.Forward(want32, feat, n, false)
	want := make([]float64, len(want32))
	for i, v := range want32 {
		want[i] = float64(v)
	}
	agree(t, fmt.Sprint("LipResNet logits with res_lamda_logit ", zs), got, want, 1e-5)
	moved := 0.0
	for i := range got {
		moved = max(moved, math.Abs(float64(got[i]-half[i])))
	}
	if moved < 1e-4 {
		t.Errorf("the logits moved by %g from λ = ½: the mix is not applied", moved)
	}

	// The bound: 1/std · Π (λ + (1 − λ)·Lip(block)) for residual blocks,
	// Lip(block) for the others, times the last layer's.
	k := 1.0
	residual := 0
	for _, l := range net.Layers {
		s := l.Conv.LipschitzBound()
		if l.Residual {
			lam := 1 / (1 + math.Exp(-zs[l.Stage]))
			s = lam + (1-lam)*s
			residual++
		}
		k *= s
	}
	backbone, last := net.LipschitzBound()
	if residual != 5 || math.Abs(backbone-k) > 1e-6*k {
		t.Errorf("backbone bound %v, want %v from λ + (1 − λ)·Lip(f) over %d residual blocks", backbone, k, residual)
	}
	cert, err := tr.Model.Certify(in.Float32(), make([]int, n), 0)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(cert.K-k*last) > 1e-6*k*last {
		t.Errorf("certified with K = %v, want %v", cert.K, k*last)
	}
}

// TestDetect: each reference file is detected as its architecture with its
// sizes; MLPModel and SortMLPModel differ only when named.
func TestDetect(t *testing.T) {
	for _, c := range []struct {
		file, prefix, arch string
		want               Found
	}{
		{liresnetRef, "state/", "", Found{Arch: trainer.ArchGloro, Class: "LiResNet", Depth: 2, Width: 16, Classes: 10, Channels: 3}},
		{linfRef, "state_after/", "", Found{Arch: trainer.ArchLinfDist, Class: "MLPModel", Depth: 3, Width: 32, Classes: 10, Inputs: 192}},
		{sortRef, "state/", trainer.ArchSortNet, Found{Arch: trainer.ArchSortNet, Class: "SortMLPModel", Depth: 4, Width: 32, Classes: 10, Inputs: 192}},
		{sortRef, "state/", "", Found{Arch: trainer.ArchLinfDist, Class: "MLPModel", Depth: 4, Width: 32, Classes: 10, Inputs: 192}},
		{lotRef, "state/", "", Found{Arch: trainer.ArchLOT, Class: "LipResNet", Depth: 15, Width: 4, Classes: 10, Channels: 3}},
	} {
		got, err := Detect(load(t, c.file), c.prefix, c.arch)
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s (--arch %q): %+v, want %+v", c.file, c.arch, got, c.want)
		}
	}
}

// TestRefused: a state dict that does not fit is refused, naming the first
// key that does not and what was expected.
func TestRefused(t *testing.T) {
	for _, c := range []struct {
		name, file string
		o          Options
		change     func(map[string]*npy.Array)
		want       []string // in the error
	}{
		{"missing key", lotRef, Options{Prefix: "state/"},
			func(a map[string]*npy.Array) { delete(a, "state/layer3.hidden_block.0.conv.bias") },
			[]string{"no state/layer3.hidden_block.0.conv.bias", "[16]"}},
		{"wrong shape", liresnetRef, Options{Prefix: "state/"},
			func(a map[string]*npy.Array) {
				a["state/neck.3.weight"] = &npy.Array{Shape: []int{512, 256}, Data: make([]float64, 512*256)}
			},
			[]string{"state/neck.3.weight has shape [512 256], want [512 512]"}},
		{"unexpected key", linfRef, Options{Prefix: "state_after/"},
			func(a map[string]*npy.Array) {
				a["state_after/fc_dist.1.bias"] = &npy.Array{Shape: []int{32}, Data: make([]float64, 32)}
			},
			[]string{"state_after/fc_dist.1.bias is not a parameter or buffer"}},
		{"missing running mean", sortRef, Options{Prefix: "state/", Arch: trainer.ArchSortNet},
			func(a map[string]*npy.Array) { delete(a, "state/fc_dist.2.mean_shift.running_mean") },
			[]string{"no state/fc_dist.2.mean_shift.running_mean", "[32]"}},
		{"not an identity", liresnetRef, Options{Prefix: "state/"},
			func(a map[string]*npy.Array) { a["state/backbone.2.identity"].Data[4] = 0.5 },
			[]string{"state/backbone.2.identity[4] is 0.5, want 1"}},
		{"unknown", liresnetRef, Options{Prefix: "nothing/"}, nil,
			[]string{"unknown state dict", "stem.0.weight"}},
		{"forced to another architecture", liresnetRef, Options{Prefix: "state/", Arch: trainer.ArchLOT}, nil,
			[]string{"no state/layer1.in_block.conv.weight"}},
		{"image size against the weights", linfRef, Options{Prefix: "state_after/", ImageSize: 32}, nil,
			[]string{"state_after/fc_dist.0.weight has 192 inputs, want 3 x 32 x 32 = 3072"}},
		{"NaN", lotRef, Options{Prefix: "state/"},
			func(a map[string]*npy.Array) { a["state/last_layer.bias"].Data[3] = math.NaN() },
			[]string{"state/last_layer.bias holds NaN"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := load(t, c.file)
			if c.change != nil {
				c.change(a)
			}
			_, _, err := Import(a, c.o)
			if err == nil {
				t.Fatal("imported, want refused")
			}
			if !errors.Is(err, ErrStateDict) {
				t.Errorf("%v does not wrap ErrStateDict", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
