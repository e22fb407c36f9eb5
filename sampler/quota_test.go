package sampler

import (
	"math"
	"testing"
)

func TestQuotasAreExact(t *testing.T) {
	for b := 1; b <= 600; b++ {
		for _, f := range []float64{0, 0.1, 0.3, 0.7, 1} {
			q, err := Quotas(b, []float64{1 - f, f})
			if err != nil {
				if (f > 0 && math.Floor(float64(b)*f+1e-9) == 0) || (f < 1 && b-int(math.Floor(float64(b)*f+1e-9)) == 0) {
					continue // too small to hold one image of a source: an error, tested below
				}
				t.Fatalf("b=%d f=%v: %v", b, f, err)
			}
			gen := int(math.Floor(float64(b)*f + 1e-9))
			if q[1] != gen || q[0] != b-gen {
				t.Fatalf("b=%d f=%v: %v, want real %d generated %d", b, f, q, b-gen, gen)
			}
		}
	}
	for _, tc := range []struct{ b, real, gen int }{{512, 154, 358}, {256, 77, 179}} {
		q, _ := Quotas(tc.b, []float64{0.3, 0.7})
		if q[0] != tc.real || q[1] != tc.gen {
			t.Errorf("b=%d: %v, want %d/%d as in the paper", tc.b, q, tc.real, tc.gen)
		}
	}
}

func TestQuotasLargestRemainder(t *testing.T) {
	q, err := Quotas(10, []float64{0.25, 0.25, 0.5})
	if err != nil || q[0]+q[1]+q[2] != 10 || q[2] != 5 || q[0] != 3 || q[1] != 2 {
		t.Errorf("got %v %v, want [3 2 5]", q, err)
	}
}

func TestQuotasRefuse(t *testing.T) {
	for _, tc := range []struct {
		b int
		f []float64
	}{
		{512, []float64{1.2, -0.2}}, {512, []float64{0.5, 0.6}}, {0, []float64{0.3, 0.7}},
		{3, []float64{0.9, 0.1}}, // no room for one generated image
		{512, []float64{math.NaN(), 1}},
	} {
		if _, err := Quotas(tc.b, tc.f); err == nil {
			t.Errorf("Quotas(%d, %v): no error", tc.b, tc.f)
		}
	}
}
