package nn

import (
	"math"
	"math/rand/v2"

	"certmix/trainer/nn/internal/distk"
)

// LpDist is the l_p-distance layer of l_inf-dist Net and SortNet (the authors' norm_dist.py):
// unit o outputs the distance y_o = ||x - w_o||_p of the input to its weight
// row, in the max-normalised form for finite p and exactly the max for
// p = inf, where the backward is one-hot at the forward's arg-max. The
// distance is the layer's only nonlinearity; mean shift and bias are
// separate (MeanShift, and the model's bias). Each unit is 1-Lipschitz with
// respect to l_inf at p = inf.
//
// With Mask set, each group of samples sees only its own subset of the
// inputs (SortNet's training, SortNet's norm_dist module).
//
// The kernels (internal/distk) are AVX-512 where the CPU has it, pure Go
// otherwise, with bit-identical results; they run on all cores.
type LpDist struct {
	In, Out, MaxBatch int
	Weight            *Param // Out x In, the rows w_o
	// P is the current p (8 to 1000 during training, math.Inf(1) after
	// and at evaluation).
	P float64
	// Mask, when not nil, restricts every group of samples to its subset of
	// the inputs; the model draws it before each training forward.
	Mask *InputMask

	wp      []float32 // packed weight, refreshed by each Forward
	idx     []int32   // arg-max of the last p = inf Forward
	mx, inv []float32 // finite-p scratch
	scratch []float32 // finite-p backward scratch
	inf     distk.Inf
	fin     distk.Finite
	grad    distk.FiniteGrad
	bound   distk.InfBounds
	sort    distk.Sort
	sortIdx []int32      // the inputs of the last SortForward's sorted values
	sortQ   float64      // q of the last SortForward; 0 after a Forward
	sortK   int          // its truncation
	m       *maskBuffers // allocated by the first masked Forward
}

// NewLpDist returns a layer of out units on in inputs for batches of up to
// maxBatch, with weights drawn from N(0, 1) (the authors' init) and p = inf.
func NewLpDist(name string, in, out, maxBatch int, rng *rand.Rand) *LpDist {
	if in < 1 || out < 1 || maxBatch < 1 {
		panic("nn: NewLpDist: sizes must be positive")
	}
	l := &LpDist{In: in, Out: out, MaxBatch: maxBatch, Weight: NewParam(name+".weight", out, in), P: math.Inf(1),
		wp: make([]float32, distk.PackedLen(out, in)), idx: make([]int32, maxBatch*out),
		mx: make([]float32, maxBatch*out), inv: make([]float32, maxBatch*out),
		scratch: make([]float32, distk.GradScratchLen(maxBatch, in))}
	Normal(l.Weight.W, 1, rng)
	return l
}

// IdentityInit sets w[o, o mod In] = -val for every unit o, when In <= Out
// (the authors' identity_val = 10): unit o then starts near x_{o mod In} +
// val, which the mean shift recentres, so a deep stack starts close to the
// identity. It does nothing when In > Out.
func (l *LpDist) IdentityInit(val float32) {
	if l.In > l.Out {
		return
	}
	for o := range l.Out {
		l.Weight.W[o*l.In+o%l.In] = -val
	}
}

// check panics unless 1 <= n <= MaxBatch and the input-side slices hold n
// rows of In and the output-side ones n rows of Out (nil is skipped).
func (l *LpDist) check(n int, in, out [][]float32) {
	if n < 1 || n > l.MaxBatch {
		panic("nn: LpDist: batch size out of range")
	}
	for _, s := range in {
		if s != nil && len(s) < n*l.In {
			panic("nn: LpDist: input-side slice too short")
		}
	}
	for _, s := range out {
		if s != nil && len(s) < n*l.Out {
			panic("nn: LpDist: output-side slice too short")
		}
	}
}

func rows(s ...[]float32) [][]float32 { return s }

// Forward writes the distances y (n x Out) of the n inputs x (n x In) at
// p = l.P. It keeps what Backward needs (the arg-max at p = inf).
func (l *LpDist) Forward(y, x []float32, n int) {
	l.check(n, rows(x), rows(y))
	l.sortQ, l.sort.X = 0, nil // the last forward is no sort forward
	if l.Mask != nil {
		l.maskedForward(y, x, n)
		return
	}
	distk.Pack(l.wp, l.Weight.W, l.Out, l.In)
	l.forward(y, x, l.wp, n, l.In)
}

// forward runs the kernels on n rows of k inputs against the packed wp.
func (l *LpDist) forward(y, x, wp []float32, n, k int) {
	if math.IsInf(l.P, 1) {
		l.inf = distk.Inf{Y: y, Idx: l.idx, X: x, WP: wp, N: n, K: k, M: l.Out}
		l.inf.Run()
		return
	}
	l.fin = distk.Finite{Y: y, Max: l.mx, Inv: l.inv, X: x, WP: wp, N: n, K: k, M: l.Out, P: l.P}
	l.fin.Run()
}

// Backward ACCUMULATES dL/dW into Weight.G and OVERWRITES dx (n x In; nil
// skips it) from dy = dL/dy, given the x and y of the last Forward (same p
// and mask).
func (l *LpDist) Backward(dx, dy, x, y []float32, n int) {
	l.check(n, rows(dx, x), rows(dy, y))
	if l.Mask != nil {
		l.maskedBackward(dx, dy, y, n)
		return
	}
	l.backward(dx, l.Weight.G, dy, x, l.Weight.W, y, l.idx, n, l.In)
}

// backward runs the kernels on n rows of k inputs against w (Out x k).
func (l *LpDist) backward(dx, dw, dy, x, w, y []float32, idx []int32, n, k int) {
	if math.IsInf(l.P, 1) {
		distk.InfGrad(dx, dw, x, w, dy, idx, n, k, l.Out)
		return
	}
	l.grad = distk.FiniteGrad{DX: dx, DW: dw, X: x, W: w, Y: y, G: dy, N: n, K: k, M: l.Out, P: l.P, Scratch: l.scratch}
	l.grad.Run()
}

// Bounds propagates the box [lo, hi] (n x In each) through the layer at
// p = inf: for every x in the box, dLo <= y <= dHi (n x Out), also for the
// float32 Forward (the bounds repeat its rounding monotonically).
func (l *LpDist) Bounds(dLo, dHi, lo, hi []float32, n int) {
	l.check(n, rows(lo, hi), rows(dLo, dHi))
	distk.Pack(l.wp, l.Weight.W, l.Out, l.In)
	l.bound = distk.InfBounds{DLo: dLo, DHi: dHi, Lo: lo, Hi: hi, WP: l.wp, N: n, K: l.In, M: l.Out}
	l.bound.Run()
}

// SortForward is the layer as SortNet sort units at inference (the authors' sort_neuron):
// y_o = (1e-10 + sum_k q(1-q)^(k-1) s_k) / (1 - (1-q)^K) over the K =
// min(In, topK) largest s_k = |x_i - w_oi|. q is the keep-probability; each
// unit is 1-Lipschitz in l_inf (non-negative weights summing to 1 over order
// statistics).
func (l *LpDist) SortForward(y, x []float32, n int, q float64, topK int) {
	l.sortForward(y, x, n, q, topK, false)
}

// SortForwardTracked is SortForward that also records which inputs the
// sorted values came from, as InputGrad needs (slower: pure Go).
func (l *LpDist) SortForwardTracked(y, x []float32, n int, q float64, topK int) {
	l.sortForward(y, x, n, q, topK, true)
}

func (l *LpDist) sortForward(y, x []float32, n int, q float64, topK int, track bool) {
	l.check(n, rows(x), rows(y))
	distk.Pack(l.wp, l.Weight.W, l.Out, l.In)
	k := min(l.In, topK, distk.MaxTopK)
	l.sort = distk.Sort{Y: y, X: x, WP: l.wp, N: n, K: l.In, M: l.Out, TopK: k, Q: q}
	l.sortQ = 0
	if track {
		if l.sortIdx == nil {
			l.sortIdx = make([]int32, l.MaxBatch*l.Out*distk.MaxTopK)
		}
		l.sort.Idx = l.sortIdx
		l.sortQ, l.sortK = q, k
	}
	l.sort.Run()
}

// InputGrad writes dx = (dy/dx)ᵀ·dy (n x In) for the last evaluation
// forward (Forward without a mask at p = inf, or SortForwardTracked) on the
// same x, without touching the weight's gradient: the input gradient
// attacks need.
func (l *LpDist) InputGrad(dx, dy, x []float32, n int) {
	l.check(n, rows(dx, x), rows(dy))
	if l.sortQ > 0 {
		distk.SortGrad(dx, x, l.Weight.W, dy, l.sortIdx, n, l.In, l.Out, l.sortQ, l.sortK)
		return
	}
	if l.Mask != nil || !math.IsInf(l.P, 1) || l.sort.X != nil && l.sort.Idx == nil {
		panic("nn: LpDist.InputGrad after a training forward or an untracked SortForward")
	}
	distk.InfGrad(dx, nil, x, l.Weight.W, dy, l.idx, n, l.In, l.Out)
}

// SortBounds is Bounds for sort units (the authors' bound_sort_neuron): the same weighted top-K
// sum applied to the per-coordinate lower and upper bounds of |x_i - w_oi|.
func (l *LpDist) SortBounds(dLo, dHi, lo, hi []float32, n int, q float64, topK int) {
	l.check(n, rows(lo, hi), rows(dLo, dHi))
	distk.Pack(l.wp, l.Weight.W, l.Out, l.In)
	l.sort = distk.Sort{DLo: dLo, DHi: dHi, Lo: lo, Hi: hi, WP: l.wp, N: n, K: l.In, M: l.Out, TopK: min(l.In, topK, distk.MaxTopK), Q: q}
	l.sort.Run()
}

// SortWeights returns the sort neuron's normalised weights
// q(1-q)^(k-1) / (1 - (1-q)^K), k = 1..K.
func SortWeights(q float64, k int) []float32 {
	c, norm := distk.SortWeights(q, k)
	out := make([]float32, k)
	for i := range out {
		out[i] = c[i] / norm
	}
	return out
}

// DistKernels names the kernel path of the distance layers: "avx512" or "go".
func DistKernels() string { return distk.Path() }

// SetDistKernels chooses the kernel path ("avx512" or "go") and returns the
// previous one, for tests and benchmarks; both give the same bits.
func SetDistKernels(name string) (string, error) { return distk.SetPath(name) }
