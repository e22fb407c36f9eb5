package nn

import (
	"math"
	"testing"

	"certmix/internal/npy"
)

// relErr is ‖got − want‖ / ‖want‖ over whole arrays.
func relErr(got []float32, want []float64) float64 {
	var d, w float64
	for i, v := range want {
		e := float64(got[i]) - v
		d += e * e
		w += v * v
	}
	return math.Sqrt(d / w)
}

// TestLOTReference reproduces the authors' LOT layers (lot_ref_layers.npz,
// float64 PyTorch with 10 Newton–Schulz iterations): outputs and the gradients
// of sum(output × cotangent) with respect to weight, bias and input, within the
// README's float32 tolerances (1e-4 on outputs, 1e-3 on gradients).
func TestLOTReference(t *testing.T) {
	ref, err := npy.LoadNPZ("../../testdata/lot_ref_layers.npz")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"square_k3", "stride2_k3", "head_k1"} {
		t.Run(name, func(t *testing.T) {
			get := func(k string) *npy.Array {
				a, ok := ref[name+"/"+k]
				if !ok {
					t.Fatalf("missing %s/%s", name, k)
				}
				return a
			}
			w, in := get("weight"), get("input")
			stride := int(get("stride").Data[0])
			cout, k := w.Shape[0], w.Shape[2]
			n, inC, size := in.Shape[0], in.Shape[1], in.Shape[2]
			l := NewLOT(name, inC, cout, k, stride, size, n, 10, newRNG(1))
			if l.Cin != w.Shape[1] {
				t.Fatalf("conv input channels %d, reference weight has %d", l.Cin, w.Shape[1])
			}
			copy(l.Weight.W, w.Float32())
			copy(l.Bias.W, get("bias").Float32())
			out := make([]float32, n*l.OutLen())
			l.Forward(out, in.Float32(), n, true)
			dIn := make([]float32, n*l.InLen())
			l.Backward(dIn, get("cotangent").Float32(), n)
			for _, c := range []struct {
				what string
				got  []float32
				tol  float64
			}{
				{"output", out, 1e-4},
				{"grad_weight", l.Weight.G, 1e-3},
				{"grad_bias", l.Bias.G, 1e-3},
				{"grad_input", dIn, 1e-3},
			} {
				e := relErr(c.got, get(c.what).Data)
				t.Logf("%s: relative error %.2g", c.what, e)
				if !(e <= c.tol) {
					t.Errorf("%s: relative error %.3g, tolerance %g", c.what, e, c.tol)
				}
			}
		})
	}
}
