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
			// singular values nearly tie and the first of 500 power
			// iterations still weighs in, where the shipped gradient reads
			// another vector than certmix (see elemFloor): 5e-3 measured,
			// as in float64 PyTorch with the vector read as certmix does.
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

// elemFloor is, per array, the floor of the per-element check in relClose,
// as a fraction of the array's largest magnitude: each element must satisfy
// |got − want| ≤ tol·(|want| + floor·max|want|). The default, 1e-2, holds
// every element to the tolerance unless it is a hundred times smaller than
// the array's largest. The exceptions are arrays whose small entries keep
// only an absolute error of about tol·max|want|. TestElemFloorsAgainstPyTorch
// checks each against float32 PyTorch on the same file
// (testdata/tools/torch_deviation.py): the numbers below are the worst
// element as a multiple of tol, PyTorch float32 / certmix, at the default
// floor and at the floor used; each floor is the smallest of 1e-2, 1e-1,
// 3e-1 and 1 that keeps both under half the tolerance.
//
// The LiResNet gradients through K are not compared with the file's own
// numbers there but with PyTorch's gradient of K as computed: the authors'
// code moves each power-iteration start vector in place after the
// iterations, so their backward pass reads the last iterate where the first
// iteration read the start vector (train_gloro._advance). certmix
// backpropagates the iterations as they ran, so it differs from the file by
// as much in float64 as in float32: up to 5e-3 relative on a block's kernel,
// where the near-identity kernels' top singular values nearly tie and the
// first iteration still weighs in after 500. Float32 PyTorch computing the
// shipped gradient is within 3e-6 of the file (elem 0.02 x tol at 1e-2), so
// these floors measure that difference, not rounding. Against float64
// PyTorch's gradient of K as computed, certmix's LiResNet gradients need no
// exception: TestElemFloorsAgainstPyTorch holds every one of them to 2e-3
// at the default floor (relative error 3e-6 or less but the neck's 4x4
// conv, 1.8e-5; worst element 0.6 x tol on that conv, 0.08 x tol elsewhere).
var elemFloor = map[string]float64{
	// Blocks' kernels, tol 1e-2: 4.6/4.6 at 1e-2, 0.22/0.22 at 0.3 (block 0);
	// 18/18 at 1e-2, 0.45/0.45 at 1 (block 2).
	"grad/backbone.0.weight": 3e-1, "grad/backbone.2.weight": 1,
	// Affine scales, tol 2e-3: 0.65/0.65 at 1e-2, 0.35/0.35 at 0.3 (block 0);
	// 7.8/7.8 at 1e-2, 0.24/0.24 at 1 (block 2).
	"grad/backbone.0.affine": 3e-1, "grad/backbone.2.affine": 1,
	// Stem and the 512-unit linear layer, tol 2e-3: 3.6/3.6 at 1e-2,
	// 0.48/0.48 at 0.1; 16/16 at 1e-2, 0.22/0.22 at 1. The neck's 4x4 conv is
	// float32 rounding alone (the two gradients agree to 1e-13 in float64:
	// its top singular value stands apart, so the first of 500 iterations no
	// longer counts): 0.98/0.6 at 1e-2, 0.15/0.06 at 0.1.
	"grad/stem.0.weight": 1e-1, "grad/neck.3.weight": 1, "grad/neck.0.weight": 1e-1,
	// l_inf-dist, float32 rounding: the diagonal of the identity-initialised
	// layer (see the test), tol 5e-2: 8.4/7.1 at 1e-2, 0.23/0.28 at 1; the
	// interval-bound margins, differences of upper and lower bounds of
	// similar size divided by 2ε, tol 1e-5: 4.9/4.9 and 5/5 at 1e-2,
	// 0.4/0.4 and 0.3/0.3 at 0.3.
	"grad_p8/fc_dist.1.weight diagonal": 1,
	"eval_inf_ibp_margin_eps_test":      3e-1, "eval_inf_ibp_margin_eps_small": 3e-1,
}

// relClose checks ‖got − want‖ / ‖want‖ <= tol, the error of the array as a
// whole, and each element against tol as elemFloor says, so that one wrong
// small entry is not hidden by the norm of the rest. With -v it logs both
// measures; testdata/tools/torch_deviation.py prints the same ones for
// float32 PyTorch.
func relClose(t *testing.T, name string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", name, len(got), len(want))
		return
	}
	if recorded != nil {
		recorded[name] = append(recorded[name], recording{got, want, tol})
	}
	var num, den float64
	for i := range got {
		num += (got[i] - want[i]) * (got[i] - want[i])
		den += want[i] * want[i]
	}
	rel := math.Sqrt(num / max(den, 1e-300))
	if rel > tol || math.IsNaN(rel) {
		t.Errorf("%s: relative error %.2e > %.0e (got %.6g..., want %.6g...)", name, rel, tol, got[0], want[0])
	}
	floor, ok := elemFloor[name]
	if !ok {
		floor = 1e-2
	}
	worst, at, largest := elemDeviation(got, want, floor)
	t.Logf("%s: relative error %.2e; worst element %.2e at floor %g (%.2g x tol), %.2e at floor 1e-2 (%.2g x tol)",
		name, rel, worst, floor, worst/tol, first(elemDeviation(got, want, 1e-2)), first(elemDeviation(got, want, 1e-2))/tol)
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("%s[%d] = %.8g, want %.8g: off by %.2g times the tolerance %.0e·(|want| + %g·%.3g)", name, at, got[at], want[at], worst/tol, tol, floor, largest)
	}
}

// elemDeviation is the largest |got − want| / (|want| + floor·max|want|)
// over the elements, the element where it is, and max|want|.
func elemDeviation(got, want []float64, floor float64) (worst float64, at int, largest float64) {
	for _, w := range want {
		largest = max(largest, math.Abs(w))
	}
	for i := range got {
		if e := math.Abs(got[i]-want[i]) / (math.Abs(want[i]) + floor*largest); e > worst || math.IsNaN(e) {
			worst, at = e, i
		}
	}
	return worst, at, largest
}

func first(x float64, _ int, _ float64) float64 { return x }

// recorded, when not nil, collects every array relClose checks, by name (one
// recording per distance-kernel path), for TestElemFloorsAgainstPyTorch.
var recorded map[string][]recording

type recording struct {
	got, want []float64
	tol       float64
}
