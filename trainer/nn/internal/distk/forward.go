package distk

import (
	"math"

	"certmix/trainer/nn/internal/pool"
)

// The forward drivers: whole layers from tiles, split across goroutines by
// panels of TileCols output units (the split never changes a result).

// PackedLen is the length of the packed weight of m units of k inputs.
func PackedLen(m, k int) int { return (m + TileCols - 1) / TileCols * TileCols * k }

// Pack writes w (m x k, one row per output unit, PyTorch's layout) into
// wp as panels of TileCols units: panel p holds w[p*TileCols+c][i] at
// wp[p*TileCols*k + i*TileCols + c], zero for units past m. Each forward tile
// then streams one contiguous panel (a plain transpose would put the rows of
// a 1024-wide layer 4 KiB apart, all in one cache set).
func Pack(wp, w []float32, m, k int) {
	for p := 0; p*TileCols < m; p++ {
		panel := wp[p*TileCols*k : (p+1)*TileCols*k]
		cols := min(TileCols, m-p*TileCols)
		for c := range cols {
			row := w[(p*TileCols+c)*k : (p*TileCols+c+1)*k]
			for i, v := range row {
				panel[i*TileCols+c] = v
			}
		}
		for c := cols; c < TileCols; c++ {
			for i := range k {
				panel[i*TileCols+c] = 0
			}
		}
	}
}

// Inf is a forward pass at p = inf: y[b,j] = max_i |x[b,i] - w[j,i]| for n
// rows of x (n x k) against the packed weight of m units, and, when Idx is
// not nil, the arg-max idx[b,j] (the first i attaining the max). Fill the
// fields, then call Run; the struct is reusable and Run allocates nothing.
type Inf struct {
	Y       []float32 // n x m
	Idx     []int32   // n x m, or nil
	X, WP   []float32 // n x k; Pack(WP, w, m, k)
	N, K, M int
}

// Run computes the pass on the pool's goroutines.
func (f *Inf) Run() { pool.Chunks(f, (f.M+TileCols-1)/TileCols) }

// Do implements pool.Task: panel p, every row.
func (f *Inf) Do(p int) {
	j0 := p * TileCols
	cols := min(TileCols, f.M-j0)
	wp := f.WP[j0*f.K : (j0+TileCols)*f.K]
	if f.Idx == nil {
		for b := 0; b < f.N; b += TileRowsMax {
			rows := min(TileRowsMax, f.N-b)
			InfMax(f.Y[b*f.M+j0:], f.X[b*f.K:], wp, rows, cols, f.K, f.K, TileCols, f.M)
		}
		return
	}
	for b := 0; b < f.N; b += TileRowsArgmax {
		rows := min(TileRowsArgmax, f.N-b)
		InfArgmax(f.Y[b*f.M+j0:], f.Idx[b*f.M+j0:], f.X[b*f.K:], wp, rows, cols, f.K, f.K, TileCols, f.M)
	}
}

// Finite is a forward pass at a finite p (the authors' norm_dist.py, max-normalised):
// with m = max(1e-10, max_i |x[b,i] - w[j,i]|),
// y[b,j] = m · (sum_i Pow(|x[b,i] - w[j,i]| / m, p))^(1/p). Max and Inv are
// n x m scratch. Fill the fields, then call Run.
type Finite struct {
	Y, Max, Inv []float32 // n x m each
	X, WP       []float32 // n x k; Pack(WP, w, m, k)
	N, K, M     int
	P           float64
	inf         Inf
}

// MinMax is the floor of the max in the finite-p form (the authors' 1e-10).
const MinMax = 1e-10

// Run computes the pass on the pool's goroutines.
func (f *Finite) Run() {
	f.inf = Inf{Y: f.Max, X: f.X, WP: f.WP, N: f.N, K: f.K, M: f.M}
	f.inf.Run()
	for i, m := range f.Max[:f.N*f.M] {
		m = max(m, MinMax)
		f.Max[i], f.Inv[i] = m, 1/m
	}
	pool.Chunks(f, (f.M+TileCols-1)/TileCols)
	inv := 1 / f.P
	for i, s := range f.Y[:f.N*f.M] {
		f.Y[i] = float32(float64(f.Max[i]) * math.Pow(float64(s), inv))
	}
}

// Do implements pool.Task: the power sums of panel p.
func (f *Finite) Do(p int) {
	j0 := p * TileCols
	cols := min(TileCols, f.M-j0)
	wp := f.WP[j0*f.K : (j0+TileCols)*f.K]
	for b := 0; b < f.N; b += TileRowsPow {
		rows := min(TileRowsPow, f.N-b)
		o := b*f.M + j0
		PowSum(f.Y[o:], f.Inv[o:], f.X[b*f.K:], wp, rows, cols, f.K, f.K, TileCols, f.M, float32(f.P))
	}
}
