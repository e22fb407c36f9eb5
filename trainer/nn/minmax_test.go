package nn

import (
	"fmt"
	"testing"
)

func TestMinMax(t *testing.T) {
	cases := []struct{ c, spatial, n int }{{2, 1, 1}, {6, 1, 3}, {4, 9, 2}, {10, 5, 3}}
	for i, c := range cases {
		t.Run(fmt.Sprintf("c%d_sp%d_n%d", c.c, c.spatial, c.n), func(t *testing.T) {
			rng := newRNG(400 + uint64(i))
			m := NewMinMax(c.c, c.spatial)
			size := c.n * c.c * c.spatial
			in := make([]float32, size)
			for j := range in { // distinct values 0.01 apart, so ±h never crosses a tie
				in[j] = float32(j) * 0.01
			}
			rng.Shuffle(size, func(a, b int) { in[a], in[b] = in[b], in[a] })
			out := make([]float32, size)
			m.Forward(out, in, c.n)
			x := to64(in)
			for j, v := range refMinMax(x, c.c, c.spatial, c.n) {
				if float64(out[j]) != float64(float32(v)) {
					t.Fatalf("out[%d] = %g, want %g", j, out[j], v)
				}
			}
			r := to64(randF32(rng, size))
			dOut := make([]float32, size)
			for j, v := range r {
				dOut[j] = float32(v)
			}
			dIn := randF32(rng, size)
			m.Backward(dIn, dOut, in, c.n)
			checkFD(t, "dIn", x, func() float64 {
				var s float64
				for j, v := range refMinMax(x, c.c, c.spatial, c.n) {
					s += v * r[j]
				}
				return s
			}, dIn)
		})
	}
}

// TestMinMaxHalves checks the split into halves (not adjacent pairs) and that ties
// give the max's gradient to the first half.
func TestMinMaxHalves(t *testing.T) {
	m := NewMinMax(4, 1)
	in := []float32{1, 5, 2, 5} // a = (1, 5), b = (2, 5)
	out := make([]float32, 4)
	m.Forward(out, in, 1)
	if want := []float32{2, 5, 1, 5}; fmt.Sprint(out) != fmt.Sprint(want) {
		t.Fatalf("out = %v, want %v", out, want)
	}
	dIn := make([]float32, 4)
	m.Backward(dIn, []float32{10, 20, 30, 40}, in, 1)
	// channel 0: b wins the max; channel 1: tie, max's gradient to a.
	if want := []float32{30, 20, 10, 40}; fmt.Sprint(dIn) != fmt.Sprint(want) {
		t.Fatalf("dIn = %v, want %v", dIn, want)
	}
}
