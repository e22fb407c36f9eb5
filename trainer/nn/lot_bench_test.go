package nn

import (
	"fmt"
	"testing"
)

// BenchmarkLOTStep times one training Forward and Backward of single LOT
// layers: LipConvnet-10's shapes at width 32 (LOT-S) and at width 8 (the
// CPU-sized model of the real-data study), batch 256.
func BenchmarkLOTStep(b *testing.B) {
	for _, width := range []int{8, 32} {
		w := width
		for _, s := range []struct {
			name                 string
			inC, cout, k, stride int
			size                 int
		}{
			{"s1in", 3, w, 3, 1, 32}, {"s1out", w, 2 * w, 3, 2, 32},
			{"s2in", 2 * w, 2 * w, 3, 1, 16}, {"s2out", 2 * w, 4 * w, 3, 2, 16},
			{"s3in", 4 * w, 4 * w, 3, 1, 8}, {"s3out", 4 * w, 8 * w, 3, 2, 8},
			{"s4in", 8 * w, 8 * w, 3, 1, 4}, {"s4out", 8 * w, 16 * w, 3, 2, 4},
			{"s5in", 16 * w, 16 * w, 3, 1, 2}, {"s5out", 16 * w, 32 * w, 1, 2, 2},
		} {
			b.Run(fmt.Sprintf("w%d_%s", w, s.name), func(b *testing.B) {
				const n = 256
				rng := newRNG(1)
				l := NewLOT("l", s.inC, s.cout, s.k, s.stride, s.size, n, 10, rng)
				x, dy := randF32(rng, n*l.InLen()), randF32(rng, n*l.OutLen())
				y, dx := make([]float32, len(dy)), make([]float32, len(x))
				l.Forward(y, x, n, true) // allocates the stash
				b.ResetTimer()
				c0 := cpuTime()
				for range b.N {
					l.Forward(y, x, n, true)
					l.Backward(dx, dy, n)
				}
				b.ReportMetric((cpuTime()-c0).Seconds()/float64(b.N), "cpu-s/op")
			})
		}
	}
}
