package nn

import (
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"
)

// winogradCases are 3×3 stride-1 geometries with awkward sizes: odd and even
// heights and widths (partial tiles at the bottom and right edges), images
// smaller than one tile, padding 0, 1 and 2, Cin ≠ Cout, and batches that
// take several chunks with a partial last one.
var winogradCases = []convCase{
	{ConvGeom{Cin: 3, Cout: 5, K: 3, Stride: 1, Pad: 1, H: 6, W: 5}, 2, 8},     // odd width
	{ConvGeom{Cin: 2, Cout: 3, K: 3, Stride: 1, Pad: 1, H: 7, W: 7}, 3, 8},     // odd both
	{ConvGeom{Cin: 4, Cout: 2, K: 3, Stride: 1, Pad: 0, H: 5, W: 8}, 2, 8},     // no padding, odd height out
	{ConvGeom{Cin: 1, Cout: 3, K: 3, Stride: 1, Pad: 2, H: 4, W: 3}, 2, 8},     // pad 2: output larger than input
	{ConvGeom{Cin: 2, Cout: 2, K: 3, Stride: 1, Pad: 1, H: 1, W: 1}, 3, 8},     // one pixel
	{ConvGeom{Cin: 3, Cout: 4, K: 3, Stride: 1, Pad: 1, H: 2, W: 9}, 2, 8},     // one tile row
	{ConvGeom{Cin: 2, Cout: 3, K: 3, Stride: 1, Pad: 0, H: 3, W: 3}, 2, 8},     // one output
	{ConvGeom{Cin: 5, Cout: 6, K: 3, Stride: 1, Pad: 1, H: 16, W: 16}, 5, 2},   // LiResNet shape, chunks of 2 and a partial one
	{ConvGeom{Cin: 6, Cout: 6, K: 3, Stride: 1, Pad: 1, H: 16, W: 16}, 35, 40}, // several chunks of 16 images
	{ConvGeom{Cin: 3, Cout: 2, K: 3, Stride: 1, Pad: 1, H: 11, W: 4}, 7, 3},    // chunks of 3, partial
}

// TestWinogradMatchesConv: forward, input, kernel and bias gradients of
// Winograd agree with ConvOp's (im2col) within float32 rounding, on the
// awkward sizes above and on the LiResNet block (W = 128, 16×16).
func TestWinogradMatchesConv(t *testing.T) {
	cases := append([]convCase{{ConvGeom{Cin: 128, Cout: 128, K: 3, Stride: 1, Pad: 1, H: 16, W: 16}, 3, 256}}, winogradCases...)
	for i, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			rng := newRNG(300 + uint64(i))
			direct, wino := NewConvOp(c.g, c.maxBatch), NewWinograd(c.g, c.maxBatch)
			w, b := randF32(rng, c.g.WeightLen()), randF32(rng, c.g.Cout)
			x, dy := randF32(rng, c.n*c.g.InLen()), randF32(rng, c.n*c.g.OutLen())
			// The scale of a sum of Cin·9 products of unit normals: rounding
			// is relative to it, not to an output that happens to be small.
			scale := math.Sqrt(float64(c.g.Cin * 9))
			got, want := make([]float32, len(dy)), make([]float32, len(dy))
			wino.Forward(got, x, w, b, c.n)
			direct.Forward(want, x, w, b, c.n)
			closeTo(t, "forward", got, want, scale)

			dxW, dxD := randF32(rng, len(x)), make([]float32, len(x)) // garbage Backward must overwrite
			g0 := randF32(rng, len(w))
			dwW, dwD := append([]float32(nil), g0...), append([]float32(nil), g0...) // Backward accumulates
			dbW, dbD := make([]float32, len(b)), make([]float32, len(b))
			wino.Backward(dxW, dwW, dbW, dy, x, w, c.n)
			direct.Backward(dxD, dwD, dbD, dy, x, w, c.n)
			closeTo(t, "dIn", dxW, dxD, math.Sqrt(float64(c.g.Cout*9)))
			closeTo(t, "dWeight", dwW, dwD, math.Sqrt(float64(c.n*c.g.Ho()*c.g.Wo())))
			closeTo(t, "dBias", dbW, dbD, math.Sqrt(float64(c.n*c.g.Ho()*c.g.Wo())))

			// Only the input gradient, and only the kernel gradient.
			dx := make([]float32, len(x))
			wino.Backward(dx, nil, nil, dy, nil, w, c.n)
			closeTo(t, "dIn alone", dx, dxD, math.Sqrt(float64(c.g.Cout*9)))
			dw := append([]float32(nil), g0...)
			wino.Backward(nil, dw, nil, dy, x, w, c.n)
			closeTo(t, "dWeight alone", dw, dwD, math.Sqrt(float64(c.n*c.g.Ho()*c.g.Wo())))
		})
	}
}

// closeTo fails unless |got − want| ≤ 1e-5·(scale + |want|) for every entry,
// where scale is the typical size of the sum (√terms for unit terms): float32
// rounding of such sums, in either algorithm, is about 2e-6 of it (measured
// on the LiResNet block: 6e-5 for im2col and 8e-5 for Winograd at outputs of
// size 33, against float64), while a wrong tap or tile is off by the whole.
func closeTo(t *testing.T, what string, got, want []float32, scale float64) {
	t.Helper()
	worst, at := 0.0, 0
	for j := range want {
		d := math.Abs(float64(got[j]-want[j])) / (scale + math.Abs(float64(want[j])))
		if d > worst {
			worst, at = d, j
		}
	}
	if worst > 1e-5 {
		t.Errorf("%s[%d] = %g, im2col %g: relative difference %.2g", what, at, got[at], want[at], worst)
	}
}

// TestWinogradGrad: Winograd's gradients equal central finite differences of
// the float64 direct convolution, as TestConvGrad checks ConvOp's.
func TestWinogradGrad(t *testing.T) {
	for i, c := range winogradCases[:7] {
		t.Run(c.String(), func(t *testing.T) {
			rng := newRNG(400 + uint64(i))
			wino := NewWinograd(c.g, c.maxBatch)
			in, w, b := randF32(rng, c.n*c.g.InLen()), randF32(rng, c.g.WeightLen()), randF32(rng, c.g.Cout)
			r := to64(randF32(rng, c.n*c.g.OutLen())) // loss = <r, conv(in)>
			dOut := make([]float32, len(r))
			for j, v := range r {
				dOut[j] = float32(v)
			}
			dIn, dW, dB := make([]float32, len(in)), make([]float32, len(w)), make([]float32, len(b))
			wino.Backward(dIn, dW, dB, dOut, in, w, c.n)
			x, w64, b64 := to64(in), to64(w), to64(b)
			loss := func() float64 {
				var s float64
				for j, v := range refConv(x, w64, b64, c.g, c.n) {
					s += v * r[j]
				}
				return s
			}
			checkFD(t, "dIn", x, loss, dIn)
			checkFD(t, "dWeight", w64, loss, dW)
			checkFD(t, "dBias", b64, loss, dB)
		})
	}
}

// TestWinogradRefusesOtherGeometries: only 3×3 stride-1 convolutions.
func TestWinogradRefusesOtherGeometries(t *testing.T) {
	for _, g := range []ConvGeom{
		{Cin: 2, Cout: 2, K: 5, Stride: 1, Pad: 2, H: 8, W: 8},
		{Cin: 2, Cout: 2, K: 3, Stride: 2, Pad: 1, H: 8, W: 8},
		{Cin: 2, Cout: 2, K: 3, Stride: 1, Pad: 0, H: 2, W: 8},
	} {
		t.Run(fmt.Sprintf("k%d_s%d_%dx%d", g.K, g.Stride, g.H, g.W), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("NewWinograd accepted it")
				}
			}()
			NewWinograd(g, 4)
		})
	}
}

// BenchmarkWinograd times one LiResNet block conv (W = 128, 16×16, batch 256)
// both ways: forward, then backward with input, kernel and bias gradients.
func BenchmarkWinograd(b *testing.B) {
	const n = 256
	g := ConvGeom{Cin: 128, Cout: 128, K: 3, Stride: 1, Pad: 1, H: 16, W: 16}
	b.Logf("Gemm: %s", GemmInfo())
	for _, c := range []struct {
		name string
		conv Conv
	}{{"im2col", NewConvOp(g, n)}, {"winograd", NewWinograd(g, n)}} {
		b.Run(c.name, func(b *testing.B) {
			rng := newRNG(5)
			w, bias := randF32(rng, g.WeightLen()), randF32(rng, g.Cout)
			in, dOut := randF32(rng, n*g.InLen()), randF32(rng, n*g.OutLen())
			out, dIn, dW, dB := make([]float32, len(dOut)), make([]float32, len(in)), make([]float32, len(w)), make([]float32, g.Cout)
			var fwd, bwd time.Duration
			for b.Loop() {
				t0 := time.Now()
				c.conv.Forward(out, in, w, bias, n)
				t1 := time.Now()
				c.conv.Backward(dIn, dW, dB, dOut, in, w, n)
				fwd, bwd = fwd+t1.Sub(t0), bwd+time.Since(t1)
			}
			b.ReportMetric(fwd.Seconds()*1e3/float64(b.N), "ms/forward")
			b.ReportMetric(bwd.Seconds()*1e3/float64(b.N), "ms/backward")
		})
	}
}

// TestWinogradKernelsMatchGo: on 16×16 planes with padding 1 the AVX2
// kernels of internal/wino and the Go transforms they twin give the same
// floats (== , which takes −0 for +0), for each of the four transforms, on
// normal values mixed with zeros, negative zeros and values of very
// different sizes, over chunks with several images and channels.
func TestWinogradKernelsMatchGo(t *testing.T) {
	g := ConvGeom{Cin: 3, Cout: 5, K: 3, Stride: 1, Pad: 1, H: 16, W: 16}
	const n = 4
	kern, plain := NewWinograd(g, n), NewWinograd(g, n)
	if !kern.kernels16 {
		// Only amd64 builds have the kernels, and every amd64 machine this
		// project runs on has AVX2.
		if runtime.GOARCH == "amd64" && !purego {
			t.Fatal("the AVX2 kernels are not in use on amd64")
		}
		t.Skipf("no AVX2 Winograd kernels on %s (purego %v): the Go transforms are the only ones, nothing to compare", runtime.GOARCH, purego)
	}
	plain.kernels16 = false
	rng := newRNG(500)
	awkward := func(x []float32) []float32 {
		for i := range x {
			switch rng.IntN(8) {
			case 0:
				x[i] = 0
			case 1:
				x[i] = float32(math.Copysign(0, -1))
			case 2:
				x[i] *= 1e20
			case 3:
				x[i] *= 1e-20
			}
		}
		return x
	}
	T := n * 64
	x := awkward(randF32(rng, n*g.InLen()))
	dy := awkward(randF32(rng, n*g.OutLen()))
	vt := awkward(randF32(rng, 16*g.Cin*T))
	mt := awkward(randF32(rng, 16*g.Cout*T))
	bias := randF32(rng, g.Cout)
	for _, c := range []struct {
		name string
		run  func(w *Winograd, dst []float32)
		size int
	}{
		{"input", func(w *Winograd, dst []float32) { w.inputTiles(dst, x, 0, n*g.Cin, T, w.planes[0]) }, 16 * g.Cin * T},
		{"inputT", func(w *Winograd, dst []float32) { w.inputTilesT(dst, vt, 0, n*g.Cin, T, w.planes[0]) }, n * g.InLen()},
		{"output", func(w *Winograd, dst []float32) { w.outputTiles(dst, mt, bias, 0, n*g.Cout, T, w.planes[0]) }, n * g.OutLen()},
		{"output without bias", func(w *Winograd, dst []float32) { w.outputTiles(dst, mt, nil, 0, n*g.Cout, T, w.planes[0]) }, n * g.OutLen()},
		{"outputT", func(w *Winograd, dst []float32) { w.outputTilesT(dst, dy, 0, n*g.Cout, T, w.planes[0]) }, 16 * g.Cout * T},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, want := randF32(rng, c.size), randF32(rng, c.size)
			copy(got, want) // entries neither writes stay equal
			c.run(kern, got)
			c.run(plain, want)
			for i := range want {
				if got[i] != want[i] && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
					t.Fatalf("[%d] = %g, Go %g", i, got[i], want[i])
				}
			}
		})
	}
}
