package nn

import (
	"math"
	"testing"
)

// BenchmarkLpDist times the distance layer at B=128 on 1024 inputs and 1024
// units, on all of GOMAXPROCS' cores, in G |x - w| evaluations per second
// (B·In·Out per pass, for the backward too): the p = inf forward (with the
// arg-max a training step keeps) and its one-hot backward scatter, the
// finite-p (p = 8) forward and backward, the sort units and the interval
// bounds.
func BenchmarkLpDist(b *testing.B) {
	const n, in, out = 128, 1024, 1024
	for _, path := range []string{"avx512", "go"} {
		prev, err := SetDistKernels(path)
		if err != nil {
			continue
		}
		rng := newRNG(1)
		l := NewLpDist("d", in, out, n, rng)
		x := randF32(rng, n*in)
		y, dy, dx := make([]float32, n*out), randF32(rng, n*out), make([]float32, n*in)
		lo, hi := make([]float32, n*in), make([]float32, n*in)
		for k, v := range x {
			lo[k], hi[k] = v-0.05, v+0.05
		}
		passes := []struct {
			name string
			p    float64
			f    func()
		}{
			{"inf-forward-argmax", math.Inf(1), func() { l.Forward(y, x, n) }},
			{"inf-backward", math.Inf(1), func() { l.Backward(dx, dy, x, y, n) }},
			{"p8-forward", 8, func() { l.Forward(y, x, n) }},
			{"p8-backward", 8, func() { l.Backward(dx, dy, x, y, n) }},
			{"sort-forward", math.Inf(1), func() { l.SortForward(y, x, n, 0.85, 10) }},
			{"inf-bounds", math.Inf(1), func() { l.Bounds(dy, y, lo, hi, n) }},
		}
		for _, p := range passes {
			if path == "go" && p.name != "inf-forward-argmax" && p.name != "p8-forward" {
				continue // the pure-Go twins of the other passes are the same code
			}
			b.Run(path+"/"+p.name, func(b *testing.B) {
				l.P = p.p
				l.Forward(y, x, n) // what a backward needs
				for b.Loop() {
					p.f()
				}
				b.ReportMetric(float64(n*in*out)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gops/s")
			})
		}
		SetDistKernels(prev)
	}
}
