//go:build amd64 && !purego

package distk

import (
	"errors"

	"golang.org/x/sys/cpu"
)

//go:generate sh -c "cd asm && go run . -out ../kernels_amd64.s -stubs ../kernels_amd64.go -pkg distk"

// haveAVX512 reports that the CPU and OS support the instructions the
// generated kernels use: AVX-512 foundation and BMI2 (see the Requires lines
// in kernels_amd64.s).
var haveAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasBMI2

var errNoAVX512 = errors.New("this CPU lacks AVX-512F or BMI2")

func init() {
	if haveAVX512 {
		kernels = avx512Kernels
	}
}

var avx512Kernels = distKernels{name: "avx512", infArgmax: infArgmaxAVX512, infMax: infMaxAVX512,
	powSum: powSumAVX512, powGrad: powGradAVX512, infBounds: infBoundsAVX512,
	sortTop: sortTopAVX512, sortBounds: sortBoundsAVX512}

// colMask has one bit per column of a tile.
func colMask(cols int) uint32 { return uint32(uint64(1)<<cols - 1) }

var argmaxTiles = [...]func(y *float32, idx *int32, x, w *float32, k, ldx, ldw, ldy int, mask uint32){
	infArgmax1, infArgmax2, infArgmax3, infArgmax4, infArgmax5, infArgmax6}

var maxTiles = [...]func(y *float32, x, w *float32, k, ldx, ldw, ldy int, mask uint32){
	infMax1, infMax2, infMax3, infMax4, infMax5, infMax6, infMax7, infMax8}

var powSumTiles = [...]func(s, inv *float32, x, w *float32, k, ldx, ldw, ldy int, mask uint32, p float32){
	powSum1, powSum2, powSum3, powSum4}

var powGradTiles = [GradRows][GradCols]func(dx, dw, x, w, coef *float32, k, ld int, p1 float32){
	{powGrad1x1, powGrad1x2, powGrad1x3, powGrad1x4},
	{powGrad2x1, powGrad2x2, powGrad2x3, powGrad2x4},
	{powGrad3x1, powGrad3x2, powGrad3x3, powGrad3x4},
	{powGrad4x1, powGrad4x2, powGrad4x3, powGrad4x4}}

var boundsTiles = [...]func(dlo, dhi *float32, lo, hi, w *float32, k, ldx, ldw, ldy int, mask uint32){
	infBounds1, infBounds2, infBounds3, infBounds4}

// The wrappers check the slices' extents once, so that the assembly, which
// reads x[0:(rows-1)*ldx+k] and wT[0:(k-1)*ldw+cols] and writes y and idx
// [0:(rows-1)*ldy+cols], stays inside them.
func checkTile(ny, nx, nw, rows, cols, k, ldx, ldw, ldy int) {
	if rows < 1 || cols < 1 || cols > TileCols || k < 1 ||
		nx < (rows-1)*ldx+k || nw < (k-1)*ldw+cols || ny < (rows-1)*ldy+cols {
		panic("distk: distance tile out of range")
	}
}

func infArgmaxAVX512(y []float32, idx []int32, x, wT []float32, rows, cols, k, ldx, ldw, ldy int) {
	checkTile(min(len(y), len(idx)), len(x), len(wT), rows, cols, k, ldx, ldw, ldy)
	argmaxTiles[rows-1](&y[0], &idx[0], &x[0], &wT[0], k, ldx, ldw, ldy, colMask(cols))
}

func infMaxAVX512(y []float32, x, wT []float32, rows, cols, k, ldx, ldw, ldy int) {
	checkTile(len(y), len(x), len(wT), rows, cols, k, ldx, ldw, ldy)
	maxTiles[rows-1](&y[0], &x[0], &wT[0], k, ldx, ldw, ldy, colMask(cols))
}

func powSumAVX512(s, inv, x, wT []float32, rows, cols, k, ldx, ldw, ldy int, p float32) {
	checkTile(min(len(s), len(inv)), len(x), len(wT), rows, cols, k, ldx, ldw, ldy)
	powSumTiles[rows-1](&s[0], &inv[0], &x[0], &wT[0], k, ldx, ldw, ldy, colMask(cols), p)
}

func powGradAVX512(dx, dw, x, w, coef []float32, rows, cols, k, ld int, p1 float32) {
	if rows < 1 || rows > GradRows || cols < 1 || cols > GradCols || k < 1 || ld < k ||
		min(len(dx), len(x)) < (rows-1)*ld+k || min(len(dw), len(w)) < (cols-1)*ld+k || len(coef) < 2*rows*cols {
		panic("distk: backward tile out of range")
	}
	powGradTiles[rows-1][cols-1](&dx[0], &dw[0], &x[0], &w[0], &coef[0], k, ld, p1)
}

func infBoundsAVX512(dlo, dhi, lo, hi, wT []float32, rows, cols, k, ldx, ldw, ldy int) {
	checkTile(min(len(dlo), len(dhi)), min(len(lo), len(hi)), len(wT), rows, cols, k, ldx, ldw, ldy)
	boundsTiles[rows-1](&dlo[0], &dhi[0], &lo[0], &hi[0], &wT[0], k, ldx, ldw, ldy, colMask(cols))
}

// sortTopAVX512 runs the assembly for the authors' truncation K = 10 and
// the Go twin for any other.
func sortTopAVX512(y, x, wT []float32, cols, k, ldw int, c *[MaxTopK]float32, norm float32, topK int) {
	if topK != 10 {
		sortTopGo(y, x, wT, cols, k, ldw, c, norm, topK)
		return
	}
	checkTile(len(y), len(x), len(wT), 1, cols, k, k, ldw, cols)
	sortTop10(&y[0], &x[0], &wT[0], k, ldw, colMask(cols), &c[0], norm)
}

// sortBoundsAVX512 runs the assembly (16 units a call) for K = 10.
func sortBoundsAVX512(dlo, dhi, lo, hi, wT []float32, cols, k, ldw int, c *[MaxTopK]float32, norm float32, topK int) {
	if topK != 10 {
		sortBoundsGo(dlo, dhi, lo, hi, wT, cols, k, ldw, c, norm, topK)
		return
	}
	checkTile(min(len(dlo), len(dhi)), min(len(lo), len(hi)), len(wT), 1, cols, k, k, ldw, cols)
	for u := 0; u < cols; u += 16 {
		sortBounds10(&dlo[u], &dhi[u], &lo[0], &hi[0], &wT[u], k, ldw, colMask(min(16, cols-u)), &c[0], norm)
	}
}
