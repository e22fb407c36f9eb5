package importer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"certmix/internal/npy"
	"certmix/trainer"
	"certmix/trainer/models"
)

// TestLOTVariants: the LOT classes and sizes that have no reference file
// (LipConvNet, LipResNet of one block per stage, the LLN last layer), saved
// under the authors' names from a certmix network, are detected as such
// and imported to the same function.
func TestLOTVariants(t *testing.T) {
	for i, c := range []struct {
		blocks        int
		residual, lln bool
		class         string
	}{
		{1, false, false, "LipConvNet"},
		{2, false, true, "LipConvNet"},
		{1, true, false, "LipResNet"},
		{3, true, true, "LipResNet"},
	} {
		t.Run(fmt.Sprintf("%s_b%d_lln%v", c.class, c.blocks, c.lln), func(t *testing.T) {
			mean := []float64{0.4914, 0.4822, 0.4465}
			src, err := models.NewLipConvnet(c.blocks, 2, 10, 3, c.residual, c.lln, mean, 0.2507, 10, 2, rand.New(rand.NewPCG(uint64(i), 5)))
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(i), 6))
			arrays := map[string]*npy.Array{}
			for _, p := range src.Params() {
				a := &npy.Array{Shape: p.Shape, Data: make([]float64, len(p.W))}
				for j := range p.W {
					p.W[j] += float32(0.05 * rng.NormFloat64())
					a.Data[j] = float64(p.W[j])
				}
				arrays[p.Name] = a
			}
			if c.residual {
				var logits [5]float32
				for s := range logits {
					logits[s] = float32(s) - 2
					arrays[fmt.Sprintf("layer%d.res_lamda_logit", s+1)] = &npy.Array{Shape: []int{1}, Data: []float64{float64(logits[s])}}
				}
				if err := src.SetResidualLogits(logits); err != nil {
					t.Fatal(err)
				}
			}
			f, err := Detect(arrays, "", "")
			want := Found{Arch: trainer.ArchLOT, Class: c.class, Depth: 5 * c.blocks, Width: 2, Classes: 10, Channels: 3, LLN: c.lln}
			if err != nil || f != want {
				t.Fatalf("detected %+v, %v; want %+v", f, err, want)
			}
			tr, _, err := Import(arrays, Options{})
			if err != nil {
				t.Fatal(err)
			}
			x := make([]float32, 2*src.InputSize())
			for j := range x {
				x[j] = float32(rng.Float64())
			}
			a, b := make([]float32, 20), make([]float32, 20)
			if err := src.Logits(a, x, 2); err != nil {
				t.Fatal(err)
			}
			if err := tr.Model.Logits(b, x, 2); err != nil {
				t.Fatal(err)
			}
			for j := range a {
				if math.Abs(float64(a[j]-b[j])) > 1e-6*max(1, math.Abs(float64(a[j]))) {
					t.Fatalf("logit %d: imported %v, source %v", j, b[j], a[j])
				}
			}
		})
	}
}
