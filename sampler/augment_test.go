package sampler

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// naivePad is the first half of the obvious form of Augment.apply: the
// whole image padded into an (h+2P) x (w+2P) buffer, with zeros or with the
// nearest border pixel.
func naivePad(src []byte, h, w, c, pad int, edge bool) []byte {
	ph, pw := h+2*pad, w+2*pad
	padded := make([]byte, ph*pw*c)
	for y := range ph {
		for x := range pw {
			sy, sx := y-pad, x-pad
			if sy < 0 || sy >= h || sx < 0 || sx >= w {
				if !edge {
					continue // stays zero
				}
				sy, sx = min(max(sy, 0), h-1), min(max(sx, 0), w-1)
			}
			copy(padded[(y*pw+x)*c:(y*pw+x+1)*c], src[(sy*w+sx)*c:(sy*w+sx+1)*c])
		}
	}
	return padded
}

// naiveCrop is the second half: the oh x ow window of the padded image
// whose top left corner is at (dy+P, dx+P), its columns mirrored if flip.
func naiveCrop(padded []byte, h, w, c, pad, oh, ow, dy, dx int, flip bool) []byte {
	pw := w + 2*pad
	out := make([]byte, oh*ow*c)
	for y := range oh {
		for x := range ow {
			py, px := dy+pad+y, dx+pad+x
			if flip {
				px = dx + pad + ow - 1 - x
			}
			copy(out[(y*ow+x)*c:(y*ow+x+1)*c], padded[(py*pw+px)*c:(py*pw+px+1)*c])
		}
	}
	return out
}

// choice returns the crop offsets (relative to the unpadded image, so in
// -Pad..h+Pad-oh) and the flip that apply draws from r, computed as apply
// computes them.
func choice(a Augment, h, w, oh, ow int, r uint64) (dy, dx int, flip bool) {
	dy = int(lemire(mix64(r), uint64(h+2*a.Pad-oh+1))) - a.Pad
	dx = int(lemire(mix64(r^0xa5a5), uint64(w+2*a.Pad-ow+1))) - a.Pad
	return dy, dx, a.Flip && r>>63 == 1
}

// randomImage returns h*w*c random bytes in a slice with no room beyond
// them, so that a read past the image panics.
func randomImage(rng *rand.Rand, h, w, c int) []byte {
	img := make([]byte, h*w*c)
	for i := range img {
		img[i] = byte(rng.Uint32())
	}
	return img[:len(img):len(img)]
}

// TestAugmentMatchesNaive compares apply with naivePad and naiveCrop for
// each shape, pad 0..4, crop size (crops narrower than the padding included:
// they can lie wholly in it), padding mode and flip, over many words r.
func TestAugmentMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []uint64{0, 1, 1 << 63, math.MaxUint64, 0xa5a5, 0xa5a5 | 1<<63}
	for range 200 {
		words = append(words, rng.Uint64())
	}
	for _, shape := range []struct{ h, w, c int }{{32, 32, 3}, {28, 28, 1}, {5, 7, 2}} {
		src := randomImage(rng, shape.h, shape.w, shape.c)
		side := min(shape.h, shape.w)
		// 0: the input's size; then square crops equal to and smaller than
		// the input, and larger ones that only the padding makes possible.
		sizes := []int{0, side, side - 1, side / 2, 1, side + 2, max(shape.h, shape.w) + 3}
		for pad := range 5 {
			for _, size := range sizes {
				for _, edge := range []bool{false, true} {
					padded := naivePad(src, shape.h, shape.w, shape.c, pad, edge)
					for _, flip := range []bool{false, true} {
						a := Augment{Size: size, Pad: pad, Edge: edge, Flip: flip}
						oh, ow, err := a.OutSize(shape.h, shape.w)
						if err != nil {
							continue // crop larger than the padded image: TestAugmentOutSize
						}
						name := fmt.Sprintf("%dx%dx%d/%+v", shape.h, shape.w, shape.c, a)
						dst := make([]byte, oh*ow*shape.c)
						for _, r := range words {
							for i := range dst {
								dst[i] = 0xee // apply must write every byte
							}
							dy, dx, fl := choice(a, shape.h, shape.w, oh, ow, r)
							if err := safeApply(a, dst, src, shape.h, shape.w, shape.c, oh, ow, r); err != nil {
								t.Errorf("%s, r=%#x (dy %d, dx %d, flip %v): %v", name, r, dy, dx, fl, err)
								break // one report per configuration
							}
							want := naiveCrop(padded, shape.h, shape.w, shape.c, pad, oh, ow, dy, dx, fl)
							if !bytes.Equal(dst, want) {
								i := firstDiff(dst, want)
								t.Errorf("%s, r=%#x (dy %d, dx %d, flip %v): apply differs from the naive reference at output (y %d, x %d, c %d): %d, want %d",
									name, r, dy, dx, fl, i/shape.c/ow, i/shape.c%ow, i%shape.c, dst[i], want[i])
								break
							}
						}
					}
				}
			}
		}
	}
}

// firstDiff returns the index of the first byte where a and b differ.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// safeApply runs apply, turning a panic into an error.
func safeApply(a Augment, dst, src []byte, h, w, c, oh, ow int, r uint64) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("apply panics: %v", p)
		}
	}()
	a.apply(dst, src, h, w, c, oh, ow, r)
	return nil
}

func TestAugmentOutSize(t *testing.T) {
	for _, tc := range []struct {
		a       Augment
		h, w    int
		oh, ow  int
		wantErr bool
		comment string
	}{
		{Augment{}, 32, 32, 32, 32, false, "no crop"},
		{Augment{Pad: 4}, 28, 28, 28, 28, false, "pad and crop back to the input's size"},
		{Augment{Size: 3, Pad: 0}, 5, 7, 3, 3, false, "a crop inside the image"},
		{Augment{Size: 0, Pad: 2}, 5, 7, 5, 7, false, "non-square input, size 0"},
		{Augment{Size: 9, Pad: 2}, 5, 7, 9, 9, false, "the padded image exactly"},
		{Augment{Size: 10, Pad: 2}, 5, 7, 0, 0, true, "one more than the padded height"},
		{Augment{Size: 33}, 32, 32, 0, 0, true, "larger than the unpadded image"},
		{Augment{Pad: -1}, 32, 32, 0, 0, true, "negative pad"},
	} {
		oh, ow, err := tc.a.OutSize(tc.h, tc.w)
		if (err != nil) != tc.wantErr || oh != tc.oh || ow != tc.ow {
			t.Errorf("%s: %+v on %dx%d: %dx%d, %v; want %dx%d, error %v", tc.comment, tc.a, tc.h, tc.w, oh, ow, err, tc.oh, tc.ow, tc.wantErr)
		}
	}
}

// TestAugmentOffsetsAndFlipsAreUniform reads the crop offsets and the flip
// back from apply's output (pixels that spell their coordinates), so that it
// tests apply itself, and checks that over many words each of the 2P+1
// offsets per axis, each (dy, dx) pair, and each flip come up as often as
// they should.
func TestAugmentOffsetsAndFlipsAreUniform(t *testing.T) {
	const h, w, pad, n = 32, 32, 4, 81 * 1000
	a := Augment{Pad: pad, Flip: true}
	// Channel 0 holds y+1 and channel 1 x+1: zero is padding.
	src := make([]byte, h*w*2)
	for y := range h {
		for x := range w {
			src[(y*w+x)*2], src[(y*w+x)*2+1] = byte(y+1), byte(x+1)
		}
	}
	const k = 2*pad + 1
	var ys, xs [k]int
	var pairs [k][k]int
	var flips [2][k * k]int // flips per pair, to see that the flip does not depend on the offsets
	dst := make([]byte, h*w*2)
	rng := rand.New(rand.NewPCG(3, 4))
	for range n {
		r := rng.Uint64()
		a.apply(dst, src, h, w, 2, h, w, r)
		dy, dx, flip, ok := readBack(dst, h, w)
		if !ok {
			t.Fatalf("r=%#x: output is not a shifted, maybe flipped, crop", r)
		}
		if wy, wx, wf := choice(a, h, w, h, w, r); dy != wy || dx != wx || flip != wf {
			t.Fatalf("r=%#x: apply cropped at (%d, %d) flip %v, choice says (%d, %d) flip %v", r, dy, dx, flip, wy, wx, wf)
		}
		ys[dy+pad]++
		xs[dx+pad]++
		pairs[dy+pad][dx+pad]++
		f := 0
		if flip {
			f = 1
		}
		flips[f][(dy+pad)*k+dx+pad]++
	}
	// Chi-square against uniform; the thresholds are far in the tail (p
	// about 1e-6), and the seed is fixed, so the test does not flake.
	chi2 := func(counts []int) float64 {
		exp := float64(n) / float64(len(counts))
		var s float64
		for _, c := range counts {
			s += (float64(c) - exp) * (float64(c) - exp) / exp
		}
		return s
	}
	flat := func(p *[k][k]int) []int {
		var s []int
		for _, row := range p {
			s = append(s, row[:]...)
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		stat  float64
		limit float64 // chi-square quantile at p = 1e-6 for len-1 degrees of freedom
	}{
		{"dy", chi2(ys[:]), 44},
		{"dx", chi2(xs[:]), 44},
		{"(dy, dx)", chi2(flat(&pairs)), 155},
	} {
		if tc.stat > tc.limit {
			t.Errorf("%s: chi-square %.1f > %.0f against uniform over %d offsets", tc.name, tc.stat, tc.limit, k)
		}
	}
	t.Logf("dy %v\ndx %v", ys, xs)
	var flipped int
	for _, c := range flips[1] {
		flipped += c
	}
	// Binomial(n, 1/2): standard deviation sqrt(n)/2 = 142; allow 5 of them.
	if d := math.Abs(float64(flipped) - n/2); d > 5*math.Sqrt(n)/2 {
		t.Errorf("%d flips in %d draws, want about %d", flipped, n, n/2)
	}
	// The flip is independent of the offsets: about half flipped in each pair.
	for i := range k * k {
		all := flips[0][i] + flips[1][i]
		if d := math.Abs(float64(flips[1][i]) - float64(all)/2); d > 5*math.Sqrt(float64(all))/2 {
			t.Errorf("offset pair %d: %d of %d flipped", i, flips[1][i], all)
		}
	}
}

// readBack recovers the crop offsets and the flip of an h x w crop of an
// image whose two channels spell y+1 and x+1 (zero padding), and checks
// that every pixel is consistent with them.
func readBack(dst []byte, h, w int) (dy, dx int, flip, ok bool) {
	// The centre pixel is inside the image whatever the offset (pad < h/2).
	cy, cx := h/2, w/2
	p := dst[(cy*w+cx)*2:]
	q := dst[(cy*w+cx+1)*2:] // its right neighbour, also inside
	if p[0] == 0 || p[1] == 0 || q[1] == 0 {
		return 0, 0, false, false
	}
	dy = int(p[0]) - 1 - cy
	flip = q[1] < p[1]
	if flip { // sx = ow-1-x+dx
		dx = int(p[1]) - 1 - (w - 1 - cx)
	} else {
		dx = int(p[1]) - 1 - cx
	}
	for y := range h {
		for x := range w {
			sy, sx := y+dy, x+dx
			if flip {
				sy, sx = y+dy, w-1-x+dx
			}
			var want [2]byte
			if sy >= 0 && sy < h && sx >= 0 && sx < w {
				want = [2]byte{byte(sy + 1), byte(sx + 1)}
			}
			if got := [2]byte{dst[(y*w+x)*2], dst[(y*w+x)*2+1]}; got != want {
				return 0, 0, false, false
			}
		}
	}
	return dy, dx, flip, true
}

func TestNormalizeToFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		name      string
		h, w, c   int
		mean, std []float32
	}{
		{"cifar", 32, 32, 3, []float32{0.4914, 0.4822, 0.4465}, []float32{0.2470, 0.2435, 0.2616}},
		{"grey", 28, 28, 1, []float32{0.2860}, []float32{0.3530}},
		{"odd shape", 5, 7, 2, []float32{0.5, 0.25}, []float32{2, 0.125}},
		{"short mean and std: 0 and 1 for the rest", 4, 3, 3, []float32{0.5}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := randomImage(rng, tc.h, tc.w, tc.c)
			src[0], src[len(src)-1] = 0, 255 // both ends of the range
			dst := make([]float32, len(src))
			for i := range dst {
				dst[i] = float32(math.NaN()) // every value must be written
			}
			n := &Normalize{Mean: tc.mean, Std: tc.std}
			n.toFloat(dst, src, tc.h, tc.w, tc.c)
			for y := range tc.h {
				for x := range tc.w {
					for ch := range tc.c {
						mean, std := 0.0, 1.0
						if ch < len(tc.mean) {
							mean = float64(tc.mean[ch])
						}
						if ch < len(tc.std) {
							std = float64(tc.std[ch])
						}
						want := (float64(src[(y*tc.w+x)*tc.c+ch])/255 - mean) / std
						got := dst[ch*tc.h*tc.w+y*tc.w+x] // CHW
						if math.Abs(float64(got)-want) > 1e-5*max(1, math.Abs(want)) {
							t.Fatalf("(y %d, x %d, c %d) pixel %d: got %v, want %v", y, x, ch, src[(y*tc.w+x)*tc.c+ch], got, want)
						}
					}
				}
			}
		})
	}
}

// BenchmarkAugment is the per-image cost of the CIFAR augmentation (32x32x3,
// pad 4, flip), in images/s on one core.
func BenchmarkAugment(b *testing.B) {
	for _, bc := range []struct {
		name string
		a    Augment
	}{
		{"zeros", Augment{Pad: 4, Flip: true}},
		{"edge", Augment{Pad: 4, Edge: true, Flip: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const h, w, c = 32, 32, 3
			src := randomImage(rand.New(rand.NewPCG(7, 8)), h, w, c)
			dst := make([]byte, h*w*c)
			var r uint64
			for b.Loop() {
				r++
				bc.a.apply(dst, src, h, w, c, h, w, mix64(r))
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
