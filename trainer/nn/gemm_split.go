package nn

import (
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"certmix/trainer/nn/internal/pool"
)

// Products are split over the cores by Go, not by OpenBLAS. OpenBLAS's
// threads wait for work by spinning on sched_yield (for about 2^28 cycles
// after each product), so between the products of a training step, where Go
// code (Winograd transforms, activations) wants both cores, its idle thread
// took one: 27% of the L6W128 step's CPU time went to that spinning. On a
// machine shared with other work a product that OpenBLAS splits also waits for
// its slowest thread at every synchronisation: the step took 11-21 s at a
// load of 16, against 8.5-12 s split by Go. So with cgo, gemm_cgo.go runs
// OpenBLAS on one thread per call and sets splitGemm; Gemm cuts each large
// product into column (or row) blocks computed in parallel on the workers of
// internal/pool, which sleep when idle; and a layer with independent products
// (Winograd's 16 taps) hands whole ones to the cores (gemmWhole). On an idle
// machine the step is as fast as with OpenBLAS's threads, or a little faster
// (1.75-1.87 s against 2.05-2.17 s, interleaved runs).

// splitGemm is set when the default backend is single-threaded and Gemm should
// split products over the cores itself.
var splitGemm bool

// splitFlops is the least product (2·m·n·k) that Gemm splits: below it one
// core finishes before the others would have started.
const splitFlops = 1 << 22

// splitBlock is the granularity of a split, in rows or columns of C, so that
// every part keeps whole SIMD panels.
const splitBlock = 16

// gemmSplit holds the product being split. A Gemm that finds it taken (a
// concurrent caller, or a Gemm inside a worker) computes unsplit.
var gemmSplit struct {
	sync.Mutex
	task gemmTask
	done sync.WaitGroup
}

// gemmTask is one product C ← alpha·op(A)·op(B) + beta·C, split along the
// columns of C (byCols) or its rows, in blocks of splitBlock.
type gemmTask struct {
	g             Gemmer
	tA, tB        blas.Transpose
	m, n, k       int
	alpha, beta   float32
	a, b, c       []float32
	lda, ldb, ldc int
	byCols        bool
}

// splitProduct computes the product over the cores when it is large enough
// and nothing else is splitting, and reports whether it did.
func splitProduct(g Gemmer, tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) bool {
	p := parts()
	if p < 2 || 2*float64(m)*float64(n)*float64(k) < splitFlops || max(m, n) < 2*splitBlock {
		return false
	}
	if !gemmSplit.TryLock() {
		return false
	}
	defer gemmSplit.Unlock()
	t := &gemmSplit.task
	*t = gemmTask{g: g, tA: tA, tB: tB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: a, b: b, c: c, lda: lda, ldb: ldb, ldc: ldc, byCols: n >= m}
	blocks := (max(m, n) + splitBlock - 1) / splitBlock
	pool.Split(t, blocks, p, &gemmSplit.done)
	*t = gemmTask{}
	return true
}

// run computes blocks [lo, hi) of the split: columns or rows
// [lo·splitBlock, hi·splitBlock) of C.
func (t *gemmTask) Run(_, lo, hi int) {
	if t.byCols {
		j0, j1 := lo*splitBlock, min(hi*splitBlock, t.n)
		off := j0 // op(B) = B: columns j0.. of B
		if t.tB == blas.Trans {
			off = j0 * t.ldb // op(B) = Bᵀ: rows j0.. of B
		}
		b := t.b[off:]
		t.g.Sgemm(t.tA, t.tB, t.m, j1-j0, t.k, t.alpha, t.a, t.lda, b, t.ldb, t.beta, t.c[j0:], t.ldc)
		return
	}
	i0, i1 := lo*splitBlock, min(hi*splitBlock, t.m)
	off := i0 * t.lda // op(A) = A: rows i0.. of A
	if t.tA == blas.Trans {
		off = i0 // op(A) = Aᵀ: columns i0.. of A
	}
	a := t.a[off:]
	t.g.Sgemm(t.tA, t.tB, i1-i0, t.n, t.k, t.alpha, a, t.lda, t.b, t.ldb, t.beta, t.c[i0*t.ldc:], t.ldc)
}

// concurrentGemm reports whether the products go to the default BLAS, which
// takes concurrent calls (OpenBLAS, run single-threaded per call): then a
// layer with independent products (Winograd's 16 taps) hands whole ones to
// the cores itself, through gemmWhole.
func concurrentGemm() bool { return gemmer == nil && splitGemm }

// gemmWhole is Gemm without splitting, for products that a layer already
// computes in parallel.
func gemmWhole(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	if !concurrentGemm() {
		Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if m == 0 || n == 0 {
		return
	}
	tA, tB := blas.NoTrans, blas.NoTrans
	if transA {
		tA = blas.Trans
	}
	if transB {
		tB = blas.Trans
	}
	blas32.Implementation().Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
