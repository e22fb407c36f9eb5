package nn

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

func TestOrthogonal(t *testing.T) {
	for _, d := range [][2]int{{1, 1}, {4, 9}, {9, 4}, {6, 6}, {128, 75}, {32, 512}} {
		rows, cols := d[0], d[1]
		t.Run(fmt.Sprintf("%dx%d", rows, cols), func(t *testing.T) {
			w := make([]float32, rows*cols)
			Orthogonal(w, rows, cols, newRNG(900))
			// Gram matrix of the shorter side: W Wᵀ (rows ≤ cols) or Wᵀ W.
			short, long := rows, cols
			at := func(i, k int) float64 { return float64(w[i*cols+k]) }
			if rows > cols {
				short, long = cols, rows
				at = func(i, k int) float64 { return float64(w[k*cols+i]) }
			}
			for i := 0; i < short; i++ {
				for j := 0; j < short; j++ {
					var s float64
					for k := 0; k < long; k++ {
						s += at(i, k) * at(j, k)
					}
					want := 0.0
					if i == j {
						want = 1
					}
					if math.Abs(s-want) > 1e-5 {
						t.Fatalf("Gram[%d][%d] = %g, want %g", i, j, s, want)
					}
				}
			}
			w2 := make([]float32, len(w))
			Orthogonal(w2, rows, cols, newRNG(900))
			if !slices.Equal(w, w2) {
				t.Fatal("same seed gave different weights")
			}
		})
	}
}

// TestConv2dInit: orthogonal weight makes the conv's rows orthonormal; bias within
// U(±1/√fan_in).
func TestConv2dInit(t *testing.T) {
	g := ConvGeom{Cin: 3, Cout: 16, K: 5, Stride: 2, Pad: 2, H: 32, W: 32}
	c := NewConv2d("stem", g, true, 4, newRNG(1))
	if names := []string{c.Params()[0].Name, c.Params()[1].Name}; names[0] != "stem.weight" || names[1] != "stem.bias" {
		t.Fatalf("names %v", names)
	}
	if !slices.Equal(c.Weight.Shape, []int{16, 3, 5, 5}) {
		t.Fatalf("weight shape %v", c.Weight.Shape)
	}
	var rowNorm float64
	for _, v := range c.Weight.W[:75] {
		rowNorm += float64(v) * float64(v)
	}
	if math.Abs(rowNorm-1) > 1e-5 {
		t.Errorf("‖row 0‖² = %g, want 1", rowNorm)
	}
	bound := 1 / math.Sqrt(75)
	for _, b := range c.Bias.W {
		if math.Abs(float64(b)) > bound {
			t.Errorf("bias %g outside ±%g", b, bound)
		}
	}
}
