package distk

import "certmix/trainer/nn/internal/pool"

// GradChunks is the number of unit ranges the finite-p backward splits a
// layer into, each with its own input-gradient buffer, summed in order at
// the end. It is fixed (not the number of cores) so that the gradients do
// not depend on the machine.
const GradChunks = 4

// FiniteGrad is the backward pass of [Finite] (the authors' norm_dist.py): with
// g = dL/dy and t = g[b,j] · sign(x[b,i] - w[j,i]) ·
// (|x[b,i] - w[j,i]| / y[b,j])^(p-1), DX[b,i] = sum_j t (overwritten) and
// DW[j,i] -= sum_b t (accumulated). W and DW are m x k (unpacked). Scratch
// is GradScratchLen(n, k) values. DX may be nil (no input gradient). Fill
// the fields, then call Run.
type FiniteGrad struct {
	DX, DW, X, W, Y, G []float32
	N, K, M            int
	P                  float64
	Scratch            []float32
}

// GradScratchLen is the scratch a FiniteGrad of n rows of k inputs needs.
func GradScratchLen(n, k int) int { return GradChunks * (n*k + 2*GradRows*GradCols) }

func (f *FiniteGrad) chunks() int { return min(GradChunks, (f.M+GradCols-1)/GradCols) }

// Run computes the pass on the pool's goroutines.
func (f *FiniteGrad) Run() {
	c := f.chunks()
	pool.Chunks(f, c)
	if f.DX == nil {
		return
	}
	nk := f.N * f.K
	dx := f.DX[:nk]
	copy(dx, f.Scratch[:nk])
	for k := 1; k < c; k++ {
		part := f.Scratch[k*(nk+2*GradRows*GradCols):][:nk]
		for i, v := range part {
			dx[i] += v
		}
	}
}

// Do implements pool.Task: the units of chunk c, every row.
func (f *FiniteGrad) Do(c int) {
	nk := f.N * f.K
	buf := f.Scratch[c*(nk+2*GradRows*GradCols):][:nk+2*GradRows*GradCols]
	dx, coef := buf[:nk], buf[nk:]
	clear(dx)
	tiles := (f.M + GradCols - 1) / GradCols
	t0, t1 := c*tiles/f.chunks(), (c+1)*tiles/f.chunks()
	p1 := float32(f.P - 1)
	for t := t0; t < t1; t++ {
		j0 := t * GradCols
		cols := min(GradCols, f.M-j0)
		for b := 0; b < f.N; b += GradRows {
			rows := min(GradRows, f.N-b)
			for r := range rows {
				for q := range cols {
					o := (b+r)*f.M + j0 + q
					coef[2*(r*cols+q)], coef[2*(r*cols+q)+1] = 1/f.Y[o], f.G[o]
				}
			}
			PowGrad(dx[b*f.K:], f.DW[j0*f.K:], f.X[b*f.K:], f.W[j0*f.K:], coef, rows, cols, f.K, f.K, p1)
		}
	}
}

// InfGrad is the backward pass at p = inf (the authors' norm_dist.py): the gradient is
// one-hot at the forward's arg-max, sign(x - w) there (0 on a tie at 0).
// DX is overwritten (n x k; nil: none), DW (m x k) accumulated (nil: none);
// dx sums over j and dw over b in ascending order.
func InfGrad(dx, dw, x, w, g []float32, idx []int32, n, k, m int) {
	if dx != nil {
		clear(dx[:n*k])
	}
	for b := range n {
		for j := range m {
			i := int(idx[b*m+j])
			d, t := x[b*k+i]-w[j*k+i], g[b*m+j]
			switch {
			case d > 0:
			case d < 0:
				t = -t
			default:
				continue
			}
			if dx != nil {
				dx[b*k+i] += t
			}
			if dw != nil {
				dw[j*k+i] -= t
			}
		}
	}
}
