package certifier

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// linearModel is logits = K·Ŵx + b, a GloRo network whose sub-network is
// x ↦ K·x. Its margin y_c − y_j is exactly K·‖ŵ_c − ŵ_j‖-Lipschitz (the
// gradient is constant), so the GloRo certificate is exact for it.
type linearModel struct {
	k       float64
	head    []float32 // classes × dim, Ŵ
	bias    []float32
	classes int
	dim     int
}

// newLinearModel draws Gaussian head rows, normalised when lln is set.
func newLinearModel(rng *rand.Rand, classes, dim int, k float64, lln bool) *linearModel {
	m := &linearModel{k: k, head: make([]float32, classes*dim), bias: make([]float32, classes), classes: classes, dim: dim}
	for i := range m.head {
		m.head[i] = float32(rng.NormFloat64())
	}
	if lln {
		w, err := NormalizeRows(m.head, classes)
		if err != nil {
			panic(err)
		}
		m.head = w
	}
	// Centre the model: at the box's centre all logits are within ±0.1, so
	// the decision boundaries cross the box as a trained classifier's do.
	for j := range m.bias {
		s := 0.2*rng.Float64() - 0.1
		for t := range dim {
			s -= m.weight(j, t) * 0.5
		}
		m.bias[j] = float32(s)
	}
	return m
}

func (m *linearModel) Classes() int   { return m.classes }
func (m *linearModel) InputSize() int { return m.dim }

// weight is the effective row K·ŵ_j in float64.
func (m *linearModel) weight(j, t int) float64 { return m.k * float64(m.head[j*m.dim+t]) }

func (m *linearModel) Logits(dst, x []float32, n int) error {
	if len(dst) != n*m.classes || len(x) != n*m.dim {
		return fmt.Errorf("linear model: dst %d, x %d for n = %d", len(dst), len(x), n)
	}
	for i := range n {
		for j := range m.classes {
			s := float64(m.bias[j])
			for t := range m.dim {
				s += m.weight(j, t) * float64(x[i*m.dim+t])
			}
			dst[i*m.classes+j] = float32(s)
		}
	}
	return nil
}

func (m *linearModel) InputGradient(dx, x, dl []float32, n int) error {
	if len(dx) != n*m.dim || len(x) != n*m.dim || len(dl) != n*m.classes {
		return fmt.Errorf("linear model: dx %d, x %d, dlogits %d for n = %d", len(dx), len(x), len(dl), n)
	}
	for i := range n {
		for t := range m.dim {
			var s float64
			for j := range m.classes {
				s += float64(dl[i*m.classes+j]) * m.weight(j, t)
			}
			dx[i*m.dim+t] = float32(s)
		}
	}
	return nil
}

// predict is the model's arg-max at one point.
func (m *linearModel) predict(t *testing.T, x []float32) int {
	t.Helper()
	y := make([]float32, m.classes)
	if err := m.Logits(y, x, 1); err != nil {
		t.Fatal(err)
	}
	c, err := Argmax(y)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// facet returns the unit normal u_j = (w_c − w_j)/‖w_c − w_j‖ of the
// boundary between c and j, from the model's effective weights.
func (m *linearModel) facet(c, j int) []float64 {
	u := make([]float64, m.dim)
	var s float64
	for t := range u {
		u[t] = m.weight(c, t) - m.weight(j, t)
		s += u[t] * u[t]
	}
	for t := range u {
		u[t] /= math.Sqrt(s)
	}
	return u
}

// randomImages draws n images uniformly from [lo, hi]^dim.
func randomImages(rng *rand.Rand, n, dim int, lo, hi float64) []float32 {
	x := make([]float32, n*dim)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*rng.Float64())
	}
	return x
}
