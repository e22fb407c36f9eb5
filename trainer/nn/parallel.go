package nn

import (
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
)

// A rangeJob is a loop body over [lo, hi) that worker (an index below
// Workers()) runs with the worker's own scratch.
type rangeJob interface {
	runRange(worker, lo, hi int)
}

// pool is the package's goroutines for the LOT layer's loops over
// frequencies: Newton–Schulz per frequency and the per-frequency products.
// They run the BLAS single-threaded (setBLASThreads), so that the cores split
// the frequencies between them instead of OpenBLAS splitting each small
// product: on these sizes OpenBLAS's own threads spend as much CPU waiting
// as working (BenchmarkLOTStep's CPU time halves), which on a shared machine
// is time taken from everyone else. Loops of one item, and every other
// product of the package, keep OpenBLAS's threads.
var pool struct {
	once  sync.Once
	n     int
	tasks chan poolTask
	wg    sync.WaitGroup
	mu    sync.Mutex // one parallel loop at a time
}

type poolTask struct {
	job            rangeJob
	worker, lo, hi int
}

// Workers is the number of goroutines a parallel loop uses, GOMAXPROCS at
// the first call, at most 8.
func Workers() int {
	pool.once.Do(func() {
		pool.n = min(runtime.GOMAXPROCS(0), 8)
		pool.tasks = make(chan poolTask)
		for range pool.n - 1 {
			go func() {
				for t := range pool.tasks {
					t.job.runRange(t.worker, t.lo, t.hi)
					pool.wg.Done()
				}
			}()
		}
	})
	return pool.n
}

// parallelRange runs job over [0, n) split into contiguous parts, one per
// worker, and returns when all are done. It allocates nothing.
func parallelRange(job rangeJob, n int) {
	w := min(Workers(), n)
	if w <= 1 {
		job.runRange(0, 0, n)
		return
	}
	pool.mu.Lock()
	defer pool.mu.Unlock()
	prev := setBLASThreads(1)
	pool.wg.Add(w - 1)
	for i := 1; i < w; i++ {
		pool.tasks <- poolTask{job, i, i * n / w, (i + 1) * n / w}
	}
	job.runRange(0, 0, n/w)
	pool.wg.Wait()
	setBLASThreads(prev)
}

// gemmJob is one matrix product split by rows of C (or by columns when C has
// fewer rows than workers) across the pool; real or complex.
type gemmJob struct {
	complex       bool
	tA, tB        bool // real: transpose flags
	ctA, ctB      blasTranspose
	m, n, k       int
	alpha, beta   float32
	a, b, c       []float32
	ca, cb, cc    []complex64
	lda, ldb, ldc int
	byColumns     bool
}

type blasTranspose = byte // 'N', 'T' or 'C', as gonum's blas.Transpose

func (g *gemmJob) runRange(_, lo, hi int) {
	m, n := g.m, g.n
	if g.byColumns {
		n = hi - lo
	} else {
		m = hi - lo
	}
	if !g.complex {
		a, b, c := g.a, g.b, g.c
		if g.byColumns {
			b, c = colSlice32(b, lo, g.tB, g.ldb), c[lo:]
		} else {
			a, c = rowSlice32(a, lo, g.tA, g.lda), c[lo*g.ldc:]
		}
		Gemm(g.tA, g.tB, m, n, g.k, g.alpha, a, g.lda, b, g.ldb, g.beta, c, g.ldc)
		return
	}
	a, b, c := g.ca, g.cb, g.cc
	tA, tB := blas.Transpose(g.ctA), blas.Transpose(g.ctB)
	if g.byColumns {
		b, c = colSliceC(b, lo, tB != blas.NoTrans, g.ldb), c[lo:]
	} else {
		a, c = rowSliceC(a, lo, tA != blas.NoTrans, g.lda), c[lo*g.ldc:]
	}
	Cgemm(tA, tB, m, n, g.k, complex(g.alpha, 0), a, g.lda, b, g.ldb, complex(g.beta, 0), c, g.ldc)
}

// rowSlice32 is op(A) from row lo on: A[lo·lda:] or, transposed, A[lo:].
func rowSlice32(a []float32, lo int, trans bool, lda int) []float32 {
	if trans {
		return a[lo:]
	}
	return a[lo*lda:]
}

// colSlice32 is op(B) from column lo on.
func colSlice32(b []float32, lo int, trans bool, ldb int) []float32 {
	if trans {
		return b[lo*ldb:]
	}
	return b[lo:]
}

func rowSliceC(a []complex64, lo int, trans bool, lda int) []complex64 {
	if trans {
		return a[lo:]
	}
	return a[lo*lda:]
}

func colSliceC(b []complex64, lo int, trans bool, ldb int) []complex64 {
	if trans {
		return b[lo*ldb:]
	}
	return b[lo:]
}

// split runs the product over the pool along the longer of C's sides.
func (g *gemmJob) split() {
	g.byColumns = g.n > g.m
	if g.byColumns {
		parallelRange(g, g.n)
	} else {
		parallelRange(g, g.m)
	}
}

// gemmPar is Gemm with C's rows (or columns) split across the pool's
// workers, each product single-threaded. job is the caller's own scratch.
func gemmPar(job *gemmJob, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	*job = gemmJob{tA: transA, tB: transB, m: m, n: n, k: k, alpha: alpha, a: a, b: b, c: c, lda: lda, ldb: ldb, ldc: ldc, beta: beta}
	job.split()
}

// cgemmPar is Cgemm split the same way, for real alpha and beta.
func cgemmPar(job *gemmJob, tA, tB blas.Transpose, m, n, k int, alpha float32, a []complex64, lda int,
	b []complex64, ldb int, beta float32, c []complex64, ldc int) {
	*job = gemmJob{complex: true, ctA: byte(tA), ctB: byte(tB), m: m, n: n, k: k, alpha: alpha, ca: a, cb: b, cc: c, lda: lda, ldb: ldb, ldc: ldc, beta: beta}
	job.split()
}
