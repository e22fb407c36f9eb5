package nn

// MinMax is the LiResNet activation (Lipschitz 1, gradient-norm preserving): the C
// channels are split into halves a = channels [0, C/2) and b = [C/2, C) — halves,
// not adjacent pairs — and out = concat(max(a, b), min(a, b)) along channels. Each
// channel has Spatial elements (H·W for images, 1 for flat features after Linear).
type MinMax struct {
	C, Spatial int
}

// NewMinMax returns the activation for c channels (c even) of spatial elements each.
func NewMinMax(c, spatial int) *MinMax {
	if c < 2 || c%2 != 0 || spatial < 1 {
		panic("nn: NewMinMax: channel count must be even and positive")
	}
	return &MinMax{C: c, Spatial: spatial}
}

// Forward writes concat(max(a, b), min(a, b)) for n samples; out must not alias in.
func (m *MinMax) Forward(out, in []float32, n int) {
	h := m.C / 2 * m.Spatial
	for i := 0; i < n; i++ {
		x, y := in[i*2*h:][:2*h], out[i*2*h:][:2*h]
		a, b := x[:h], x[h:]
		hi, lo := y[:h], y[h:]
		for j, av := range a {
			bv := b[j]
			if av >= bv {
				hi[j], lo[j] = av, bv
			} else {
				hi[j], lo[j] = bv, av
			}
		}
	}
}

// Backward routes dOut back by the forward's comparison (recomputed from in): the
// max's gradient goes to a when a ≥ b (ties to the first half), the min's to the
// other. It writes dIn; MinMax has no parameters.
func (m *MinMax) Backward(dIn, dOut, in []float32, n int) {
	h := m.C / 2 * m.Spatial
	for i := 0; i < n; i++ {
		x, dy, dx := in[i*2*h:][:2*h], dOut[i*2*h:][:2*h], dIn[i*2*h:][:2*h]
		a, b := x[:h], x[h:]
		dhi, dlo := dy[:h], dy[h:]
		da, db := dx[:h], dx[h:]
		for j, av := range a {
			if av >= b[j] {
				da[j], db[j] = dhi[j], dlo[j]
			} else {
				da[j], db[j] = dlo[j], dhi[j]
			}
		}
	}
}
