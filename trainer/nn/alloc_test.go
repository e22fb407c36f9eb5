package nn

import (
	"math"
	"testing"
)

// TestNoAllocs: after construction, the layers' Forward, Backward and Transpose
// (ConvOp, Winograd, Linear, MinMax), a power-iteration step and a product
// large enough to be split over the cores allocate nothing. The layers' own code is measured with the allocation-free naive
// Gemmer; the default backend is measured too.
func TestNoAllocs(t *testing.T) {
	defer SetGemmer(SetGemmer(nil))
	rng := newRNG(1100)
	const n = 3
	g := ConvGeom{Cin: 4, Cout: 6, K: 4, Stride: 4, Pad: 0, H: 8, W: 8} // chunked path
	conv := NewConv2d("c", g, true, n, rng)
	g1 := ConvGeom{Cin: 4, Cout: 4, K: 3, Stride: 1, Pad: 1, H: 16, W: 16} // one image per Gemm
	conv1 := NewConv2d("c1", g1, true, n, rng)
	wino := NewWinograd(g1, 2) // two chunks, the second partial
	lin := NewLinear("fc", 12, 8, true, rng)
	mm := NewMinMax(6, g.Ho()*g.Wo())
	pc := NewPowerIteration(conv.Operator(), rng)
	pl := NewPowerIteration(lin.Operator(), rng)
	x, y := randF32(rng, n*g.InLen()), randF32(rng, n*g.OutLen())
	x1, y1 := randF32(rng, n*g1.InLen()), randF32(rng, n*g1.OutLen())
	dx, z, dz := make([]float32, len(x)), make([]float32, len(y)), make([]float32, len(y))
	dx1, z1 := make([]float32, len(x1)), make([]float32, len(y1))
	lx, ly, ldx := randF32(rng, n*12), randF32(rng, n*8), make([]float32, n*12)
	ga, gb, gc := randF32(rng, 64*600), randF32(rng, 600*64), make([]float32, 64*64) // a product Gemm splits
	step := func() {
		conv.Forward(z, x, n)
		mm.Forward(dz, z, n)
		mm.Backward(z, dz, y, n)
		conv.Backward(dx, y, x, n)
		conv.Transpose(dx, y, n)
		conv1.Forward(y1, x1, n)
		conv1.Backward(dx1, z1, x1, n)
		wino.Forward(y1, x1, conv1.Weight.W, conv1.Bias.W, n)
		wino.Backward(dx1, conv1.Weight.G, conv1.Bias.G, z1, x1, conv1.Weight.W, n)
		lin.Forward(ly, lx, n)
		lin.Backward(ldx, ly, lx, n)
		lin.Transpose(ldx, ly, n)
		pc.Step(2)
		pc.Backward(conv.Weight.G, 1)
		pl.Step(2)
		pl.Backward(lin.Weight.G, 1)
	}
	// The least of three counts: the Go runtime allocates now and then by
	// itself (an OS thread for a goroutine waiting in C, the garbage
	// collector's workers), which a layer that allocates would not hide.
	allocs := func(f func()) float64 {
		least := math.Inf(1)
		for range 3 {
			least = min(least, testing.AllocsPerRun(5, f))
		}
		return least
	}
	SetGemmer(naiveGemm{})
	if a := allocs(step); a != 0 {
		t.Errorf("layers allocate %v times per step", a)
	}
	SetGemmer(nil)
	a := allocs(func() {
		step()
		Gemm(false, false, 64, 64, 600, 1, ga, 600, gb, 64, 0, gc, 64) // split over the cores
	})
	t.Logf("with the %s backend: %v allocations per step", GemmBackend(), a)
	if GemmBackend() == "openblas" && a != 0 {
		t.Errorf("OpenBLAS path allocates %v times per step", a)
	}
}

// TestDistNoAllocs: after the first call (which sizes a masked layer's
// compacted buffers), the distance layers' forward and backward passes,
// masked or not, at finite p and p = inf, the sort units, the bounds and the
// mean shift allocate nothing, on every kernel path.
func TestDistNoAllocs(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		rng := newRNG(1200)
		const in, out, n = 40, 35, 9
		l := NewLpDist("d", in, out, n, rng)
		s := NewMeanShift(out)
		m := NewInputMask(in, n, 4)
		m.Draw(rng, n, 0.7)
		x, y, z := randF32(rng, n*in), make([]float32, n*out), make([]float32, n*out)
		dx, dy := make([]float32, n*in), randF32(rng, n*out)
		lo, hi := make([]float32, n*in), make([]float32, n*in)
		step := func() {
			for _, mask := range []*InputMask{nil, m} {
				for _, p := range []float64{8, math.Inf(1)} {
					l.P, l.Mask = p, mask
					l.Forward(y, x, n)
					s.Forward(z, y, n, true)
					s.Backward(dy, dy, n)
					l.Backward(dx, dy, x, y, n)
				}
			}
			l.Mask = nil
			l.SortForward(y, x, n, 0.85, 10)
			l.SortForwardTracked(y, x, n, 0.85, 10)
			l.InputGrad(dx, dy, x, n)
			l.Bounds(y, z, lo, hi, n)
			l.SortBounds(y, z, lo, hi, n, 0.85, 10)
		}
		step()
		if a := testing.AllocsPerRun(3, step); a != 0 {
			t.Errorf("%v allocations per step", a)
		}
	})
}
