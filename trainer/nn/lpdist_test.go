package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refDist is ||x_b - w_o||_p in float64, over the inputs in keep (nil: all).
func refDist(x, w []float64, b, o, in int, p float64, keep []int32) float64 {
	var m, s float64
	each := func(f func(d float64)) {
		if keep == nil {
			for i := range in {
				f(math.Abs(x[b*in+i] - w[o*in+i]))
			}
			return
		}
		for _, i := range keep {
			f(math.Abs(x[b*in+int(i)] - w[o*in+int(i)]))
		}
	}
	each(func(d float64) { m = max(m, d) })
	if math.IsInf(p, 1) || m == 0 {
		return m
	}
	each(func(d float64) { s += math.Pow(d/m, p) })
	return m * math.Pow(s, 1/p)
}

// bothPaths runs f as a subtest once per kernel path; a path this machine
// lacks (AVX-512) is reported as a skipped subtest with the reason.
func bothPaths(t *testing.T, f func(t *testing.T)) {
	for _, path := range []string{"avx512", "go"} {
		t.Run(path, func(t *testing.T) {
			prev, err := SetDistKernels(path)
			if err != nil {
				t.Skipf("the %s distance kernels are not available here: %v", path, err)
			}
			defer SetDistKernels(prev)
			f(t)
		})
	}
}

var distCases = []struct{ in, out, n int }{{1, 1, 1}, {5, 3, 4}, {3, 7, 2}, {33, 17, 9}}

// gradCases are smaller: the finite-difference loss recomputes every output.
var gradCases = []struct{ in, out, n int }{{1, 1, 1}, {5, 3, 4}, {3, 7, 2}, {13, 6, 3}}

// TestLpDistInfIsMax: at p = inf each unit is exactly max_i |x_i - w_oi|.
func TestLpDistInfIsMax(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		for i, c := range distCases {
			rng := newRNG(2000 + uint64(i))
			l := NewLpDist("d", c.in, c.out, c.n, rng)
			x := randF32(rng, c.n*c.in)
			y := make([]float32, c.n*c.out)
			l.Forward(y, x, c.n)
			for b := range c.n {
				for o := range c.out {
					var want float32
					for k := range c.in {
						want = max(want, abs32(x[b*c.in+k]-l.Weight.W[o*c.in+k]))
					}
					if y[b*c.out+o] != want {
						t.Fatalf("%v: y[%d,%d] = %v, want %v", c, b, o, y[b*c.out+o], want)
					}
				}
			}
		}
	})
}

func abs32(v float32) float32 { return float32(math.Abs(float64(v))) }

// TestLpDistFiniteApproachesMax: the finite-p distance matches the float64
// formula and decreases towards the max as p grows (||v||_p >= ||v||_inf
// and is non-increasing in p).
func TestLpDistFiniteApproachesMax(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		rng := newRNG(2100)
		const in, out, n = 40, 6, 3
		l := NewLpDist("d", in, out, n, rng)
		x := randF32(rng, n*in)
		xs, ws := to64(x), to64(l.Weight.W)
		prev := make([]float64, n*out)
		for i := range prev {
			prev[i] = math.Inf(1)
		}
		for _, p := range []float64{8, 30, 100, 1000, math.Inf(1)} {
			l.P = p
			y := make([]float32, n*out)
			l.Forward(y, x, n)
			for b := range n {
				for o := range out {
					got, want := float64(y[b*out+o]), refDist(xs, ws, b, o, in, p, nil)
					if math.Abs(got-want) > 2e-6*want {
						t.Fatalf("p=%v y[%d,%d] = %v, want %v", p, b, o, got, want)
					}
					if inf := refDist(xs, ws, b, o, in, math.Inf(1), nil); got < inf*(1-1e-6) || got > prev[b*out+o]*(1+1e-6) {
						t.Fatalf("p=%v y[%d,%d] = %v: not between the max %v and the previous p's %v", p, b, o, got, inf, prev[b*out+o])
					}
					prev[b*out+o] = got
				}
			}
		}
		// p = 1000 is within 1% of the max for 40 inputs (40^(1/1000) < 1.004).
	})
}

// TestLpDistGrad: at p = 8 the backward equals central finite differences
// of the float64 formula, for the input and the weight; at p = inf it is
// one-hot at the arg-max with the sign of x - w.
func TestLpDistGrad(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		for i, c := range gradCases {
			t.Run(fmt.Sprintf("%dx%d_n%d", c.out, c.in, c.n), func(t *testing.T) {
				rng := newRNG(2200 + uint64(i))
				l := NewLpDist("d", c.in, c.out, c.n, rng)
				l.P = 8
				x := randF32(rng, c.n*c.in)
				y := make([]float32, c.n*c.out)
				l.Forward(y, x, c.n)
				r := to64(randF32(rng, len(y)))
				dy := make([]float32, len(r))
				for j, v := range r {
					dy[j] = float32(v)
				}
				g0 := randF32(rng, len(l.Weight.G))
				copy(l.Weight.G, g0)
				dx := randF32(rng, len(x))
				l.Backward(dx, dy, x, y, c.n)
				for j := range g0 {
					g0[j] = l.Weight.G[j] - g0[j]
				}
				xs, ws := to64(x), to64(l.Weight.W)
				loss := func() float64 {
					var s float64
					for b := range c.n {
						for o := range c.out {
							s += r[b*c.out+o] * refDist(xs, ws, b, o, c.in, 8, nil)
						}
					}
					return s
				}
				checkFD(t, "dx", xs, loss, dx)
				checkFD(t, "dW", ws, loss, g0)
			})
		}
		rng := newRNG(2300)
		const in, out, n = 9, 4, 3
		l := NewLpDist("d", in, out, n, rng)
		x := randF32(rng, n*in)
		y := make([]float32, n*out)
		l.Forward(y, x, n)
		dy := randF32(rng, n*out)
		dx := make([]float32, n*in)
		l.Backward(dx, dy, x, y, n)
		wantDx, wantDw := make([]float32, n*in), make([]float32, out*in)
		for b := range n {
			for o := range out {
				at := 0
				for k := range in {
					if abs32(x[b*in+k]-l.Weight.W[o*in+k]) > abs32(x[b*in+at]-l.Weight.W[o*in+at]) {
						at = k
					}
				}
				s := float32(math.Copysign(1, float64(x[b*in+at]-l.Weight.W[o*in+at])))
				wantDx[b*in+at] += s * dy[b*out+o]
				wantDw[o*in+at] -= s * dy[b*out+o]
			}
		}
		for k := range dx {
			if math.Abs(float64(dx[k]-wantDx[k])) > 1e-6 {
				t.Fatalf("p=inf dx[%d] = %v, want %v", k, dx[k], wantDx[k])
			}
		}
		for k := range wantDw {
			if math.Abs(float64(l.Weight.G[k]-wantDw[k])) > 1e-6 {
				t.Fatalf("p=inf dW[%d] = %v, want %v", k, l.Weight.G[k], wantDw[k])
			}
		}
	})
}

// TestIdentityInit: w[o, o mod In] = -val when In <= Out, untouched otherwise.
func TestIdentityInit(t *testing.T) {
	rng := newRNG(2400)
	l := NewLpDist("d", 3, 7, 1, rng)
	l.IdentityInit(10)
	for o := range 7 {
		if l.Weight.W[o*3+o%3] != -10 {
			t.Fatalf("w[%d,%d] = %v", o, o%3, l.Weight.W[o*3+o%3])
		}
	}
	wide := NewLpDist("d", 7, 3, 1, rng)
	before := append([]float32(nil), wide.Weight.W...)
	wide.IdentityInit(10)
	for k, v := range before {
		if wide.Weight.W[k] != v {
			t.Fatal("IdentityInit changed a layer with In > Out")
		}
	}
}

// TestSortUnit: the sort neuron's weights are non-negative and sum to 1; it
// is the weighted top-K of |x - w| (float64 reference); with q = 1 it equals
// the l_inf unit bit for bit.
func TestSortUnit(t *testing.T) {
	for _, q := range []float64{0.5, 0.75, 0.85, 1} {
		for _, k := range []int{1, 3, 10} {
			var s float64
			for _, c := range SortWeights(q, k) {
				if c < 0 {
					t.Fatalf("q=%v K=%d: negative weight %v", q, k, c)
				}
				s += float64(c)
			}
			if math.Abs(s-1) > 1e-6 {
				t.Fatalf("q=%v K=%d: weights sum to %v", q, k, s)
			}
		}
	}
	bothPaths(t, func(t *testing.T) {
		rng := newRNG(2500)
		const in, out, n = 45, 37, 5
		l := NewLpDist("d", in, out, n, rng)
		x := randF32(rng, n*in)
		y, yInf := make([]float32, n*out), make([]float32, n*out)
		l.Forward(yInf, x, n)
		l.SortForward(y, x, n, 1, 10)
		for k := range y {
			if y[k] != yInf[k] {
				t.Fatalf("q=1: sort unit %v, l_inf unit %v", y[k], yInf[k])
			}
		}
		const q = 0.85
		l.SortForward(y, x, n, q, 10)
		c := SortWeights(q, 10)
		for b := range n {
			for o := range out {
				d := make([]float64, in)
				for k := range in {
					d[k] = math.Abs(float64(x[b*in+k]) - float64(l.Weight.W[o*in+k]))
				}
				sortDesc(d)
				var want float64
				for k := range 10 {
					want += float64(c[k]) * d[k]
				}
				if got := float64(y[b*out+o]); math.Abs(got-want) > 1e-5*want {
					t.Fatalf("y[%d,%d] = %v, want %v", b, o, got, want)
				}
			}
		}
	})
}

func sortDesc(d []float64) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] > d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

// TestBoundsContain: for thousands of random points in random boxes, the
// interval bounds of l_inf and sort units contain the float32 forward.
func TestBoundsContain(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		rng := newRNG(2600)
		const in, out, n = 30, 20, 4
		l := NewLpDist("d", in, out, n, rng)
		for _, sort := range []bool{false, true} {
			for trial := range 20 {
				lo, hi, x := make([]float32, n*in), make([]float32, n*in), make([]float32, n*in)
				for k := range lo {
					c, r := float32(rng.NormFloat64()), float32(rng.Float64()*0.3*float64(trial%3))
					lo[k], hi[k] = c-r, c+r
				}
				dlo, dhi, y := make([]float32, n*out), make([]float32, n*out), make([]float32, n*out)
				if sort {
					l.SortBounds(dlo, dhi, lo, hi, n, 0.85, 10)
				} else {
					l.Bounds(dlo, dhi, lo, hi, n)
				}
				for range 100 {
					for k := range x {
						switch rng.IntN(4) { // corners too
						case 0:
							x[k] = lo[k]
						case 1:
							x[k] = hi[k]
						default:
							x[k] = lo[k] + float32(rng.Float64())*(hi[k]-lo[k])
							x[k] = min(max(x[k], lo[k]), hi[k])
						}
					}
					if sort {
						l.SortForward(y, x, n, 0.85, 10)
					} else {
						l.Forward(y, x, n)
					}
					for k := range y {
						if y[k] < dlo[k] || y[k] > dhi[k] {
							t.Fatalf("sort=%v: output %v outside its bounds [%v, %v]", sort, y[k], dlo[k], dhi[k])
						}
					}
				}
			}
		}
	})
}

// TestInputMask: a masked unit is the distance over its group's subset
// (p = 8 and inf), its gradient matches finite differences, the count is
// shared by all groups of a step, and keeping every input equals no mask.
func TestInputMask(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		rng := newRNG(2700)
		const in, out, n, group = 23, 9, 7, 3
		l := NewLpDist("d", in, out, n, rng)
		m := NewInputMask(in, n, group)
		x := randF32(rng, n*in)
		xs, ws := to64(x), to64(l.Weight.W)
		draw := rand.New(rand.NewPCG(1, 2))
		for _, p := range []float64{8, math.Inf(1)} {
			l.P = p
			m.Draw(draw, n, 0.6)
			if m.Count < 1 || m.Count > in {
				t.Fatalf("count %d", m.Count)
			}
			l.Mask = m
			y := make([]float32, n*out)
			l.Forward(y, x, n)
			for b := range n {
				keep := m.Subsets[b/group][:m.Count]
				for o := range out {
					if got, want := float64(y[b*out+o]), refDist(xs, ws, b, o, in, p, keep); math.Abs(got-want) > 2e-6*want {
						t.Fatalf("p=%v y[%d,%d] = %v, want %v over the subset", p, b, o, got, want)
					}
				}
			}
			if p == 8 {
				r := to64(randF32(rng, len(y)))
				dy := make([]float32, len(r))
				for k, v := range r {
					dy[k] = float32(v)
				}
				clear(l.Weight.G)
				dx := randF32(rng, len(x))
				l.Backward(dx, dy, x, y, n)
				loss := func() float64 {
					var s float64
					for b := range n {
						for o := range out {
							s += r[b*out+o] * refDist(xs, ws, b, o, in, 8, m.Subsets[b/group][:m.Count])
						}
					}
					return s
				}
				checkFD(t, "masked dx", xs, loss, dx)
				checkFD(t, "masked dW", ws, loss, l.Weight.G)
			}
		}
		m.Draw(draw, n, 1)
		if m.Count != in {
			t.Fatalf("q=1 keeps %d of %d inputs", m.Count, in)
		}
		y, y1 := make([]float32, n*out), make([]float32, n*out)
		l.Mask = m
		l.Forward(y, x, n)
		l.Mask = nil
		l.Forward(y1, x, n)
		for k := range y {
			if y[k] != y1[k] {
				t.Fatal("keeping every input differs from no mask")
			}
		}
	})
}

// TestMeanShift: training shifts by the batch mean and moves the running
// mean by the momentum; evaluation shifts by the running mean; the backward
// removes the mean of the gradient.
func TestMeanShift(t *testing.T) {
	s := NewMeanShift(2)
	d := []float32{1, 10, 3, 20}
	z := make([]float32, 4)
	s.Forward(z, d, 2, true)
	if want := []float32{-1, -5, 1, 5}; fmt.Sprint(z) != fmt.Sprint(want) {
		t.Fatalf("training z = %v, want %v", z, want)
	}
	if want := []float32{0.2, 1.5}; fmt.Sprint(s.Running) != fmt.Sprint(want) {
		t.Fatalf("running = %v, want %v", s.Running, want)
	}
	s.Forward(z, d, 2, false)
	if want := []float32{0.8, 8.5, 2.8, 18.5}; fmt.Sprint(z) != fmt.Sprint(want) {
		t.Fatalf("evaluation z = %v, want %v", z, want)
	}
	dd := make([]float32, 4)
	s.Backward(dd, []float32{1, 0, 3, 4}, 2)
	if want := []float32{-1, -2, 1, 2}; fmt.Sprint(dd) != fmt.Sprint(want) {
		t.Fatalf("backward = %v, want %v", dd, want)
	}
}
