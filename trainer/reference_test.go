package trainer

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"certmix/internal/npy"
	"certmix/trainer/models"
	"certmix/trainer/nn"
)

// TestLiResNetReproducesTheAuthors loads the authors' LiResNet L2W16 (weights,
// power-iteration vectors, inputs) and checks that certmix computes their
// sub-network Lipschitz constant, logits, GloRo bottom logits and radii, EMMA
// loss and gradients (testdata/README.md), to float32 tolerances.
func TestLiResNetReproducesTheAuthors(t *testing.T) {
	ref, err := npy.LoadNPZ("../testdata/liresnet_ref_L2W16.npz")
	if err != nil {
		t.Fatal(err)
	}
	m, err := models.NewLiResNet(2, 16, 10, 3, 8, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Import(ref, "state/"); err != nil {
		t.Fatal(err)
	}
	const n = 8
	eps := ref["eps"].Data[0]
	k := m.SubLipschitz(500, true)
	relClose(t, "sub_lipschitz", []float64{k}, ref["sub_lipschitz"].Data, 1e-4)

	logits := m.Forward(ref["input"].Float32(), n)
	relClose(t, "logits", f64(logits), ref["logits"].Data, 1e-4)

	labels := make([]int, n)
	for i, v := range ref["label"].Data {
		labels[i] = int(v)
	}
	hat := m.HeadRows()
	dist := headDistances(hat, 10, models.Features)
	bottom, radius := make([]float64, n), make([]float64, n)
	for i := range n {
		row := logits[i*10 : (i+1)*10]
		c := 0
		for j := range row {
			if row[j] > row[c] {
				c = j
			}
		}
		bottom[i], radius[i] = math.Inf(-1), math.Inf(1)
		for j := range row {
			if j == c {
				continue
			}
			kc := k * dist[c*10+j]
			bottom[i] = max(bottom[i], float64(row[j])+eps*kc)
			radius[i] = min(radius[i], float64(row[c]-row[j])/kc)
		}
	}
	relClose(t, "bottom_logit", bottom, ref["bottom_logit"].Data, 1e-4)
	relClose(t, "radius", radius, ref["radius"].Data, 1e-3)

	dLogits := make([]float32, n*10)
	dHat := make([]float32, 10*models.Features)
	loss, dK := emma(logits, labels, hat, 10, models.Features, k, eps, dLogits, dHat)
	relClose(t, "emma_loss", []float64{loss}, ref["emma_loss"].Data, 1e-4)

	nn.ZeroGrads(m.Params())
	m.Backward(dLogits, dHat, n)
	m.BackwardLipschitz(dK, k)
	for _, p := range m.Params() {
		want, ok := ref["grad/"+p.Name]
		if !ok {
			t.Errorf("no reference gradient for %s", p.Name)
			continue
		}
		tol := 2e-3
		if strings.HasPrefix(p.Name, "backbone.") && strings.HasSuffix(p.Name, ".weight") {
			// The blocks' kernels are near the identity, so their top
			// singular values nearly tie and the gradient through 500
			// power iterations amplifies float32 rounding: 5e-3 measured.
			tol = 1e-2
		}
		relClose(t, "grad/"+p.Name, f64(p.G), want.Data, tol)
	}
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// relClose checks ‖got − want‖ / ‖want‖ <= tol, the error of the array as a whole.
func relClose(t *testing.T, name string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", name, len(got), len(want))
		return
	}
	var num, den float64
	for i := range got {
		num += (got[i] - want[i]) * (got[i] - want[i])
		den += want[i] * want[i]
	}
	rel := math.Sqrt(num / max(den, 1e-300))
	if rel > tol || math.IsNaN(rel) {
		t.Errorf("%s: relative error %.2e > %.0e (got %.6g..., want %.6g...)", name, rel, tol, got[0], want[0])
	} else {
		t.Logf("%s: relative error %.2e", name, rel)
	}
}
