package nn

import (
	"math/rand/v2"
	"slices"

	"certmix/trainer/nn/internal/distk"

	"certmix/trainer/nn/internal/pool"
)

// InputMask is SortNet's training-time "dropout" (SortNet's norm_dist module): one count K of
// kept inputs per layer per step, and for every group of Group consecutive
// samples its own uniformly random subset of K inputs; a unit's output for a
// sample is its distance over that subset only. With keep-probability q,
// K ~ Binomial(In, q).
type InputMask struct {
	In, Group int
	// Count is the size K of every subset this step.
	Count int
	// Subsets[g][:Count] are the kept inputs of group g, ascending.
	Subsets [][]int32
	perm    []int32
}

// NewInputMask returns a mask over in inputs for batches of up to maxBatch
// samples in groups of group (the authors' 32).
func NewInputMask(in, maxBatch, group int) *InputMask {
	m := &InputMask{In: in, Group: group, perm: make([]int32, in)}
	for range (maxBatch + group - 1) / group {
		m.Subsets = append(m.Subsets, make([]int32, in))
	}
	return m
}

// Groups is the number of groups of n samples.
func (m *InputMask) Groups(n int) int { return (n + m.Group - 1) / m.Group }

// Draw draws this step's count K ~ Binomial(In, q) (the number of In uniform
// draws below q, at least 1) and, for each group of n samples, a uniform
// subset of K inputs, all from rng. It allocates nothing.
func (m *InputMask) Draw(rng *rand.Rand, n int, q float64) {
	k := 0
	for range m.In {
		if rng.Float64() < q {
			k++
		}
	}
	m.Count = max(k, 1)
	for g := range m.Groups(n) {
		for i := range m.perm {
			m.perm[i] = int32(i)
		}
		for i := range m.Count { // partial Fisher-Yates
			j := i + rng.IntN(m.In-i)
			m.perm[i], m.perm[j] = m.perm[j], m.perm[i]
		}
		s := m.Subsets[g][:m.Count]
		copy(s, m.perm[:m.Count])
		slices.Sort(s)
	}
}

// maskBuffers are the compacted copies a masked layer works on: the kept
// inputs of every sample (row stride Count) and, per group, the kept
// columns of the weight, packed and plain, and their gradient.
type maskBuffers struct {
	xs, dxs    []float32 // MaxBatch x In
	ws, dws    []float32 // Out x In
	wps        []float32 // packed
	gatherTask gatherCols
}

// gatherCols copies the kept columns of w into ws (Out x K), in parallel.
type gatherCols struct {
	ws, w []float32
	cols  []int32
	in    int
}

func (g *gatherCols) Do(o int) {
	row, dst := g.w[o*g.in:(o+1)*g.in], g.ws[o*len(g.cols):(o+1)*len(g.cols)]
	for i, c := range g.cols {
		dst[i] = row[c]
	}
}

func (l *LpDist) maskBuffers() *maskBuffers {
	if l.m == nil {
		l.m = &maskBuffers{xs: make([]float32, l.MaxBatch*l.In), dxs: make([]float32, l.MaxBatch*l.In),
			ws: make([]float32, l.Out*l.In), dws: make([]float32, l.Out*l.In), wps: make([]float32, distk.PackedLen(l.Out, l.In))}
	}
	return l.m
}

// gather fills mb.ws with the columns of group g's subset.
func (l *LpDist) gather(mb *maskBuffers, cols []int32) {
	mb.gatherTask = gatherCols{ws: mb.ws, w: l.Weight.W, cols: cols, in: l.In}
	pool.Chunks(&mb.gatherTask, l.Out)
}

func (l *LpDist) maskedForward(y, x []float32, n int) {
	mb, m := l.maskBuffers(), l.Mask
	k := m.Count
	for g := range m.Groups(n) {
		b0, b1 := g*m.Group, min(n, (g+1)*m.Group)
		cols := m.Subsets[g][:k]
		for b := b0; b < b1; b++ {
			src, dst := x[b*l.In:(b+1)*l.In], mb.xs[b*k:(b+1)*k]
			for i, c := range cols {
				dst[i] = src[c]
			}
		}
		l.gather(mb, cols)
		distk.Pack(mb.wps, mb.ws, l.Out, k)
		l.forwardRows(y, mb.xs, mb.wps, b0, b1, k)
	}
}

// forwardRows runs the forward for rows b0..b1-1 of the compacted input.
func (l *LpDist) forwardRows(y, xs, wp []float32, b0, b1, k int) {
	idx := l.idx
	l.idx = idx[b0*l.Out:]
	mx, inv := l.mx, l.inv
	l.mx, l.inv = mx[b0*l.Out:], inv[b0*l.Out:]
	l.forward(y[b0*l.Out:], xs[b0*k:], wp, b1-b0, k)
	l.idx, l.mx, l.inv = idx, mx, inv
}

func (l *LpDist) maskedBackward(dx, dy, y []float32, n int) {
	mb, m := l.maskBuffers(), l.Mask
	k := m.Count
	if dx != nil {
		clear(dx[:n*l.In])
	}
	var dxs []float32
	for g := range m.Groups(n) {
		b0, b1 := g*m.Group, min(n, (g+1)*m.Group)
		cols := m.Subsets[g][:k]
		l.gather(mb, cols)
		dws := mb.dws[:l.Out*k]
		clear(dws)
		if dx != nil {
			dxs = mb.dxs[b0*k:]
		}
		l.backward(dxs, dws, dy[b0*l.Out:], mb.xs[b0*k:], mb.ws[:l.Out*k], y[b0*l.Out:], l.idx[b0*l.Out:], b1-b0, k)
		for o := range l.Out {
			src, dst := dws[o*k:(o+1)*k], l.Weight.G[o*l.In:(o+1)*l.In]
			for i, c := range cols {
				dst[c] += src[i]
			}
		}
		if dx != nil {
			for b := b0; b < b1; b++ {
				src, dst := mb.dxs[b*k:(b+1)*k], dx[b*l.In:(b+1)*l.In]
				for i, c := range cols {
					dst[c] = src[i]
				}
			}
		}
	}
}
