package nn

import (
	"math"
	"sync"

	"gonum.org/v1/gonum/blas"

	"certmix/trainer/nn/internal/pool"
)

// nsEps is LOT's regulariser: S = M Mᴴ + nsEps·I, and σ = ‖S‖_F + nsEps.
const nsEps = 1e-4

// newtonSchulz orthogonalises a batch of count matrices M (rows×cols, row-major,
// one after the other) as the LOT layer does at every frequency (the authors' lot_ortho_conv.py step
// 5), and differentiates through it:
//
//	S = M Mᴴ + 1e-4·I;  σ = ‖S‖_F + 1e-4;  Y₀ = S/σ, Z₀ = I
//	T times: P = ½(3I − Z Y); Y ← Y P; Z ← P Z
//	M_orth = Z M / √σ
//
// Z approaches (S/σ)^(−1/2) from below, so every singular value of M_orth is
// below one even when the iterations have not converged (TestNewtonSchulz*).
// The first iteration (Z₀ = I) and the last update of Y (unused) are skipped:
// 3T − 3 products of rows×rows matrices forward. With stash, forward keeps
// every Yₖ, Pₖ and Zₖ so that backward can run the iterations in reverse
// (6 products each); without, it uses a few rows×rows buffers. The stash is
// allocated at the first forward that asks for it.
type newtonSchulz[T any, F field[T]] struct {
	f                        F
	count, rows, cols, iters int
	sigma                    []float64
	stashed                  bool
	y, p, z                  [][]T    // stash, count·rows² each: Y_k, P_k (k < iters), Z_k (2 ≤ k ≤ iters; Z₁ = P₀)
	buf                      [][6][]T // scratch of each worker

	split *cgemmSplit // splits each product when there is one matrix (no loop to split)
	done  sync.WaitGroup

	// The running loop's arguments (run).
	backwardPass     bool
	mo, m, gm, gmo   []T
	stashThisForward bool
}

func newNewtonSchulz[T any, F field[T]](count, rows, cols, iters int) *newtonSchulz[T, F] {
	if count < 0 || rows < 1 || cols < 1 || iters < 1 {
		panic("nn: newtonSchulz: invalid size")
	}
	ns := &newtonSchulz[T, F]{count: count, rows: rows, cols: cols, iters: iters, sigma: make([]float64, count), split: new(cgemmSplit)}
	ns.buf = make([][6][]T, min(parts(), max(count, 1)))
	for w := range ns.buf {
		for i := range ns.buf[w] {
			ns.buf[w][i] = make([]T, rows*rows)
		}
	}
	return ns
}

// stashLen is the size of the stash, in elements.
func (ns *newtonSchulz[T, F]) stashLen() int { return (3*ns.iters - 1) * ns.count * ns.rows * ns.rows }

func (ns *newtonSchulz[T, F]) allocStash() {
	if ns.y != nil {
		return
	}
	n := ns.count * ns.rows * ns.rows
	ns.y, ns.p, ns.z = make([][]T, ns.iters), make([][]T, ns.iters), make([][]T, ns.iters+1)
	for k := range ns.iters {
		ns.y[k], ns.p[k] = make([]T, n), make([]T, n)
		if k >= 1 {
			ns.z[k+1] = make([]T, n)
		}
	}
}

// forward writes mo[i] = NS(m[i]) for every matrix i; with stash, it keeps
// what backward needs.
func (ns *newtonSchulz[T, F]) forward(mo, m []T, stash bool) {
	if stash {
		ns.allocStash()
	}
	ns.stashed = stash
	ns.backwardPass, ns.mo, ns.m, ns.stashThisForward = false, mo, m, stash
	pool.Split(ns, ns.count, parts(), &ns.done)
}

// single returns the split that cuts products over the cores when there is
// a single matrix, else nil (the loop over matrices is split instead).
func (ns *newtonSchulz[T, F]) single() *cgemmSplit {
	if ns.count == 1 {
		return ns.split
	}
	return nil
}

// Run runs forwardOne or backwardOne for matrices [lo, hi) with part w's
// scratch (the pool's loop).
func (ns *newtonSchulz[T, F]) Run(w, lo, hi int) {
	rc := ns.rows * ns.cols
	for i := lo; i < hi; i++ {
		if ns.backwardPass {
			ns.backwardOne(w, i, ns.gm[i*rc:][:rc], ns.gmo[i*rc:][:rc], ns.m[i*rc:][:rc], ns.mo[i*rc:][:rc])
		} else {
			ns.forwardOne(w, i, ns.mo[i*rc:][:rc], ns.m[i*rc:][:rc], ns.stashThisForward)
		}
	}
}

func (ns *newtonSchulz[T, F]) forwardOne(w, i int, mo, m []T, stash bool) {
	f, r, c, iters := ns.f, ns.rows, ns.cols, ns.iters
	rr := r * r
	at := func(s [][]T, k int) []T { return s[k][i*rr:][:rr] }
	buf, split := &ns.buf[w], ns.single()
	// Without a stash: Y in buf 0/1, Z in buf 2/3, P in buf 4, Q in buf 5.
	y, p := buf[0], buf[4]
	if stash {
		y, p = at(ns.y, 0), at(ns.p, 0)
	}
	f.gemm(split, blas.NoTrans, blas.ConjTrans, r, r, c, 1, m, c, m, c, 0, y, r)
	f.addDiagonal(y, r, nsEps)
	sigma := math.Sqrt(f.frob2(y)) + nsEps
	ns.sigma[i] = sigma
	f.scale(y, float32(1/sigma))
	f.shiftIdentity(p, y, r, 1.5, -0.5) // P₀ = ½(3I − Y₀), as Z₀ = I
	z := p                              // Z₁ = P₀
	if !stash {
		z = buf[2]
		copy(z, p)
	}
	if iters > 1 {
		yn := buf[1]
		if stash {
			yn = at(ns.y, 1)
		}
		f.gemm(split, blas.NoTrans, blas.NoTrans, r, r, r, 1, y, r, p, r, 0, yn, r) // Y₁ = Y₀ P₀
		y = yn
	}
	for k := 1; k < iters; k++ {
		q := buf[5]
		f.gemm(split, blas.NoTrans, blas.NoTrans, r, r, r, 1, z, r, y, r, 0, q, r)
		p, zn := buf[4], buf[2+k%2] // Z_k is in buf 2+(k+1)%2
		if stash {
			p, zn = at(ns.p, k), at(ns.z, k+1)
		}
		f.shiftIdentity(p, q, r, 1.5, -0.5)
		f.gemm(split, blas.NoTrans, blas.NoTrans, r, r, r, 1, p, r, z, r, 0, zn, r)
		if k < iters-1 {
			yn := buf[(k+1)%2]
			if stash {
				yn = at(ns.y, k+1)
			}
			f.gemm(split, blas.NoTrans, blas.NoTrans, r, r, r, 1, y, r, p, r, 0, yn, r)
			y = yn
		}
		z = zn
	}
	f.gemm(split, blas.NoTrans, blas.NoTrans, r, c, r, float32(1/math.Sqrt(sigma)), z, r, m, c, 0, mo, c)
}

// backward writes into gm the gradient with respect to m of a loss whose
// gradient with respect to mo is gmo, for the m and mo of the last forward,
// which must have stashed.
func (ns *newtonSchulz[T, F]) backward(gm, gmo, m, mo []T) {
	if !ns.stashed {
		panic("nn: newtonSchulz.backward without a stashed forward")
	}
	ns.backwardPass, ns.gm, ns.gmo, ns.m, ns.mo = true, gm, gmo, m, mo
	pool.Split(ns, ns.count, parts(), &ns.done)
}

func (ns *newtonSchulz[T, F]) backwardOne(w, i int, gm, gmo, m, mo []T) {
	f, r, c, iters := ns.f, ns.rows, ns.cols, ns.iters
	rr := r * r
	at := func(s [][]T, k int) []T { return s[k][i*rr:][:rr] }
	zOf := func(k int) []T { // Z_k, k ≥ 1
		if k == 1 {
			return at(ns.p, 0)
		}
		return at(ns.z, k)
	}
	sigma := ns.sigma[i]
	s := 1 / math.Sqrt(sigma)
	buf, split := &ns.buf[w], ns.single()
	gz, gy, gp, gzn, gyn := buf[0], buf[1], buf[2], buf[3], buf[4]
	// M_orth = s·Z_T M.
	f.gemm(split, blas.NoTrans, blas.ConjTrans, r, r, c, float32(s), gmo, c, m, c, 0, gz, r)
	f.gemm(split, blas.ConjTrans, blas.NoTrans, r, c, r, float32(s), zOf(iters), r, gmo, c, 0, gm, c)
	gs := f.dotRe(gmo, mo) / s
	hasGY := false // ∂L/∂Y_T = 0: Y_T is never used
	for k := iters - 1; k >= 1; k-- {
		zk, yk, pk := zOf(k), at(ns.y, k), at(ns.p, k)
		// Z_{k+1} = P Z_k, Y_{k+1} = Y_k P, P = 1.5I − 0.5 Z_k Y_k.
		f.gemm(split, blas.NoTrans, blas.ConjTrans, r, r, r, 1, gz, r, zk, r, 0, gp, r)
		if hasGY {
			f.gemm(split, blas.ConjTrans, blas.NoTrans, r, r, r, 1, yk, r, gy, r, 1, gp, r)
			f.gemm(split, blas.NoTrans, blas.ConjTrans, r, r, r, 1, gy, r, pk, r, 0, gyn, r)
		}
		f.gemm(split, blas.ConjTrans, blas.NoTrans, r, r, r, 1, pk, r, gz, r, 0, gzn, r)
		f.scale(gp, -0.5) // ∂L/∂(Z_k Y_k)
		f.gemm(split, blas.NoTrans, blas.ConjTrans, r, r, r, 1, gp, r, yk, r, 1, gzn, r)
		beta := float32(0)
		if hasGY {
			beta = 1
		}
		f.gemm(split, blas.ConjTrans, blas.NoTrans, r, r, r, 1, zk, r, gp, r, beta, gyn, r)
		gz, gzn = gzn, gz
		gy, gyn = gyn, gy
		hasGY = true
	}
	// Z₁ = P₀, Y₁ = Y₀ P₀, P₀ = 1.5I − 0.5 Y₀: gz is ∂L/∂P₀'s Z part.
	y0, p0 := at(ns.y, 0), at(ns.p, 0)
	gy0 := gyn
	clear(gy0)
	if hasGY {
		f.gemm(split, blas.ConjTrans, blas.NoTrans, r, r, r, 1, y0, r, gy, r, 1, gz, r)
		f.gemm(split, blas.NoTrans, blas.ConjTrans, r, r, r, 1, gy, r, p0, r, 0, gy0, r)
	}
	f.axpy(gy0, -0.5, gz) // ∂L/∂Y₀ = ∂L/∂(S/σ)
	// Y₀ = S/σ, σ = ‖S‖_F + ε, s = σ^(−1/2), S = M Mᴴ + εI.
	gsigma := -f.dotRe(gy0, y0)/sigma - 0.5*gs*math.Pow(sigma, -1.5)
	f.scale(gy0, float32(1/sigma))
	f.axpy(gy0, float32(gsigma*sigma/(sigma-nsEps)), y0)
	f.hermSum(gp, gy0, r)
	f.gemm(split, blas.NoTrans, blas.NoTrans, r, c, r, 1, gp, r, m, c, 1, gm, c)
}
