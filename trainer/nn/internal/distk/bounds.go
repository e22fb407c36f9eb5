package distk

import "certmix/trainer/nn/internal/pool"

// Interval bounds and the sort neuron (the authors' bound_inf_dist and sort_neuron), evaluation only,
// in pure Go on the packed weight. Each bound uses the very float32
// operations of the forward pass it bounds (subtraction, absolute value, max,
// the sort neuron's weighted sum in the same order), and every one of them is
// monotone, so the bounds hold for the float32 forward itself, not only for
// the exact network: for x in [lo, hi], fl|w - x| <= max(fl(hi - w), fl(w - lo))
// and fl|w - x| >= max(fl(lo - w), fl(w - hi), 0).

// InfBounds bounds the p = inf distance over the box [Lo, Hi] (n x k each):
// for every x in the box, DLo[b,j] <= max_i |x_i - w[j,i]| <= DHi[b,j].
type InfBounds struct {
	DLo, DHi, Lo, Hi, WP []float32
	N, K, M              int
}

// Run computes the bounds on the pool's goroutines.
func (f *InfBounds) Run() { pool.Chunks(f, (f.M+TileCols-1)/TileCols) }

// Do implements pool.Task: panel p, every row.
func (f *InfBounds) Do(p int) {
	j0 := p * TileCols
	cols := min(TileCols, f.M-j0)
	wp := f.WP[j0*f.K : (j0+TileCols)*f.K]
	for b := 0; b < f.N; b += TileRowsBounds {
		rows := min(TileRowsBounds, f.N-b)
		o := b*f.M + j0
		InfBoundsTile(f.DLo[o:], f.DHi[o:], f.Lo[b*f.K:], f.Hi[b*f.K:], wp, rows, cols, f.K, f.K, TileCols, f.M)
	}
}

// MaxTopK is the largest truncation of the sort neuron (the authors' 10).
const MaxTopK = 10

// SortWeights returns the sort neuron's weights c_k = q(1-q)^(k-1),
// k = 1..K, and their sum 1 - (1-q)^K, which normalises them (the authors' sort_neuron).
func SortWeights(q float64, k int) (c [MaxTopK]float32, norm float32) {
	w := q
	for i := range k {
		c[i] = float32(w)
		w *= 1 - q
	}
	return c, float32(1 - powInt(1-q, k))
}

func powInt(v float64, k int) float64 {
	r := 1.0
	for range k {
		r *= v
	}
	return r
}

// sortValue is the sort neuron's output from the K largest values s (in
// descending order): (1e-10 + sum_k c_k s_k) / norm, summed in ascending k.
func sortValue(s []float32, c *[MaxTopK]float32, norm float32) float32 {
	acc := float32(1e-10)
	for k, v := range s {
		acc += c[k] * v
	}
	return acc / norm
}

// insert puts v into the descending list top if it is larger than the last.
func insert(top []float32, v float32) {
	k := len(top) - 1
	if !(v > top[k]) {
		return
	}
	for k > 0 && top[k-1] < v {
		top[k] = top[k-1]
		k--
	}
	top[k] = v
}

// insertAt is insert that also keeps the inputs' indices in at.
func insertAt(top []float32, at []int32, v float32, i int32) {
	k := len(top) - 1
	if !(v > top[k]) {
		return
	}
	for k > 0 && top[k-1] < v {
		top[k], at[k] = top[k-1], at[k-1]
		k--
	}
	top[k], at[k] = v, i
}

// Sort is the sort neuron at inference (the authors' sort_neuron): y[b,j] = the weighted sum
// of the TopK largest |x_i - w[j,i]|, and, with Lo and Hi set instead of X,
// its interval bounds DLo <= y <= DHi over the box (the authors' bound_sort_neuron). TopK <= K and
// TopK <= MaxTopK. With Idx set (n x m x TopK), the forward records which
// inputs the sorted values came from, for SortGrad.
type Sort struct {
	Y, X, WP      []float32 // forward: Y from X
	Idx           []int32
	DLo, DHi      []float32 // bounds: from Lo, Hi
	Lo, Hi        []float32
	N, K, M, TopK int
	Q             float64
	c             [MaxTopK]float32
	norm          float32
}

// Run computes the pass on the pool's goroutines.
func (f *Sort) Run() {
	if f.TopK < 1 || f.TopK > min(f.K, MaxTopK) {
		panic("distk: sort neuron truncation out of range")
	}
	f.c, f.norm = SortWeights(f.Q, f.TopK)
	pool.Chunks(f, (f.M+TileCols-1)/TileCols)
}

// Do implements pool.Task: panel p, every row.
func (f *Sort) Do(p int) {
	j0 := p * TileCols
	cols := min(TileCols, f.M-j0)
	wp := f.WP[j0*f.K : (j0+TileCols)*f.K]
	K := f.TopK
	if f.Idx != nil {
		f.withIndices(wp, j0, cols)
		return
	}
	for b := range f.N {
		o := b*f.M + j0
		if f.X != nil {
			kernels.sortTop(f.Y[o:], f.X[b*f.K:], wp, cols, f.K, TileCols, &f.c, f.norm, K)
		} else {
			kernels.sortBounds(f.DLo[o:], f.DHi[o:], f.Lo[b*f.K:], f.Hi[b*f.K:], wp, cols, f.K, TileCols, &f.c, f.norm, K)
		}
	}
}

// withIndices is the forward that also records the sorted values' inputs,
// in pure Go (attacks need it; certificates do not).
func (f *Sort) withIndices(wp []float32, j0, cols int) {
	var top [TileCols][MaxTopK]float32
	var at [TileCols][MaxTopK]int32
	K := f.TopK
	for b := range f.N {
		for c := range cols {
			clear(top[c][:])
			for r := range K {
				at[c][r] = -1 // no input: a zero value
			}
		}
		for i, x := range f.X[b*f.K : (b+1)*f.K] {
			for c, w := range wp[i*TileCols : i*TileCols+cols] {
				insertAt(top[c][:K], at[c][:K], abs32(w-x), int32(i))
			}
		}
		for c := range cols {
			f.Y[b*f.M+j0+c] = sortValue(top[c][:K], &f.c, f.norm)
			copy(f.Idx[(b*f.M+j0+c)*K:], at[c][:K])
		}
	}
}

// SortGrad writes dx (n x k) = the input gradient of the sort neurons of the
// forward that recorded idx (n x m x topK): for each unit, its normalised
// weight c_k/norm times sign(x - w) at the input its k-th value came from,
// times g = dL/dy (index -1: a zero value, no gradient). The weights get no
// gradient: it serves attacks.
func SortGrad(dx, x, w, g []float32, idx []int32, n, k, m int, q float64, topK int) {
	c, norm := SortWeights(q, topK)
	clear(dx[:n*k])
	for b := range n {
		for j := range m {
			gb := g[b*m+j]
			for r, i := range idx[(b*m+j)*topK : (b*m+j+1)*topK] {
				if i < 0 {
					continue
				}
				d := x[b*k+int(i)] - w[j*k+int(i)]
				t := gb * (c[r] / norm)
				switch {
				case d > 0:
					dx[b*k+int(i)] += t
				case d < 0:
					dx[b*k+int(i)] -= t
				}
			}
		}
	}
}
