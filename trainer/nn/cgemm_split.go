package nn

import (
	"sync"

	"gonum.org/v1/gonum/blas"

	"certmix/trainer/nn/internal/pool"
)

// cgemmSplit is one complex product C ← alpha·op(A)·op(B) + beta·C (real
// alpha and beta) cut into blocks of splitBlock rows or columns of C and
// computed on the workers of internal/pool, each block by a single-threaded
// Cgemm: the complex twin of Gemm's split (gemm_split.go), for the LOT
// layer's products that are not already inside a parallel loop (its DFTs,
// and Newton–Schulz at a layer with a single frequency). Each caller owns
// one, so that splitting allocates nothing.
type cgemmSplit struct {
	tA, tB        blas.Transpose
	m, n, k       int
	alpha, beta   complex64
	a, b, c       []complex64
	lda, ldb, ldc int
	byCols        bool
	done          sync.WaitGroup
}

// cgemmPar computes the product, split over the cores when it is large
// enough (as Gemm's: 2^22 flops, counting 8 per complex multiply-add).
func cgemmPar(s *cgemmSplit, tA, tB blas.Transpose, m, n, k int, alpha float32, a []complex64, lda int,
	b []complex64, ldb int, beta float32, c []complex64, ldc int) {
	p := parts()
	if p < 2 || 8*float64(m)*float64(n)*float64(k) < splitFlops || max(m, n) < 2*splitBlock {
		Cgemm(tA, tB, m, n, k, complex(alpha, 0), a, lda, b, ldb, complex(beta, 0), c, ldc)
		return
	}
	s.tA, s.tB, s.m, s.n, s.k = tA, tB, m, n, k
	s.alpha, s.beta = complex(alpha, 0), complex(beta, 0)
	s.a, s.b, s.c, s.lda, s.ldb, s.ldc, s.byCols = a, b, c, lda, ldb, ldc, n >= m
	pool.Split(s, (max(m, n)+splitBlock-1)/splitBlock, p, &s.done)
	s.a, s.b, s.c = nil, nil, nil
}

// run computes blocks [lo, hi) of the split.
func (s *cgemmSplit) Run(_, lo, hi int) {
	if s.byCols {
		j0, j1 := lo*splitBlock, min(hi*splitBlock, s.n)
		off := j0 // op(B) = B: columns j0.. of B
		if s.tB != blas.NoTrans {
			off = j0 * s.ldb // op(B) = Bᵀ or Bᴴ: rows j0.. of B
		}
		Cgemm(s.tA, s.tB, s.m, j1-j0, s.k, s.alpha, s.a, s.lda, s.b[off:], s.ldb, s.beta, s.c[j0:], s.ldc)
		return
	}
	i0, i1 := lo*splitBlock, min(hi*splitBlock, s.m)
	off := i0 * s.lda // op(A) = A: rows i0.. of A
	if s.tA != blas.NoTrans {
		off = i0 // op(A) = Aᵀ or Aᴴ: columns i0.. of A
	}
	Cgemm(s.tA, s.tB, i1-i0, s.n, s.k, s.alpha, s.a[off:], s.lda, s.b, s.ldb, s.beta, s.c[i0*s.ldc:], s.ldc)
}
