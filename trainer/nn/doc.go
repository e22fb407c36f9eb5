// Package nn is the compute core of the paper's models: a few explicit layers
// with Forward and Backward side by side, in the manner of llm.c: the
// convolutions (im2col and Winograd), linear layers, MinMax and power
// iterations of LiResNet (GloroNet); the l_p-distance layer (LpDist: finite p,
// l_inf with arg-max, sort units, input masks, interval bounds) and MeanShift
// for l_inf-dist Net and SortNet; and the LOT orthogonal convolution of
// LipConvnet (lot.go: matrix DFTs in dft.go, Newton–Schulz forward and
// backward in newtonschulz.go, generic over real and complex frequencies
// through field.go, its proven Lipschitz bound in lot_bound.go).
//
// Conventions shared by every layer:
//   - float32 throughout; activations are flat []float32 slices in NCHW order
//     (or N×F for flat features), and the batch size n is passed to each call.
//   - Forward(out, in, n) writes out. Backward(dIn, dOut, in, n) ACCUMULATES the
//     parameter gradients into each Param's G and OVERWRITES dIn (skipped when dIn
//     is nil). Callers zero gradients with ZeroGrads between steps.
//   - Buffers are owned by the layer and allocated once by its constructor; Forward,
//     Backward and Transpose allocate nothing (TestNoAllocs).
//   - Layers are not safe for concurrent use: a layer's scratch is shared by its calls.
//     Inside a call, split products, the Winograd transforms, LOT's loops over
//     frequencies and the distance kernels run on one set of long-lived worker
//     goroutines (internal/pool) that sleep when idle; handing them work
//     allocates nothing.
//   - All matrix products go through Gemm (gemm.go) and, complex, Cgemm (cgemm.go),
//     the seams a GPU backend replaces. With cgo the default is OpenBLAS (linked
//     with -lopenblas, Debian package libopenblas-dev), one thread per call, with
//     large products split over the GOMAXPROCS cores by Gemm itself (gemm_split.go
//     says why) and by the LOT layer for complex ones; complex products go through
//     a small allocation-free wrapper (cgemm_cgo.go). With CGO_ENABLED=0 or -tags
//     noopenblas it is gonum's pure-Go BLAS, ten to twenty-five times slower.
//   - Convolutions are behind the Conv interface: ConvOp (im2col and Gemm, any
//     geometry, the exact operator that power iteration and certification use)
//     and Winograd (F(2×2, 3×3) for 3×3 stride-1 convs, 2.25 times fewer
//     multiplies, for training). Winograd's tile transforms for 16×16 planes with
//     padding 1 run as AVX2 kernels (internal/wino) where the CPU has AVX2.
//   - A kernel can come from its owner: ConvOp, LinearForward and friends take the
//     weight as an argument (the LiResNet block convolves with I + A·V/√D), and
//     Conv2d and Linear are thin owners of their Params around them.
//
// Where each guarantee is tested:
//   - Backward equals central finite differences of a float64 reference, for input
//     and parameter gradients: TestConvGrad, TestLinearForwardGrad, TestMinMax.
//   - Conv Forward equals a direct convolution and Transpose is its exact adjoint,
//     <conv(x), y> = <x, convᵀ(y)>, for strides 1, 2, 4 and the LiResNet shapes:
//     TestConvForward, TestConvAdjoint.
//   - PowerIteration converges to the largest singular value of the explicit operator
//     matrix, and its weight gradient is d‖Av‖/dW with v fixed: TestPowerIteration*.
//   - Orthogonal gives W Wᵀ = I or Wᵀ W = I: TestOrthogonal.
//   - Winograd agrees with ConvOp (forward, input, kernel and bias gradients) within
//     float32 rounding on awkward sizes and the LiResNet block, and its gradients
//     equal finite differences: TestWinogradMatchesConv, TestWinogradGrad. The AVX2
//     kernels equal their Go twins exactly: TestWinogradKernelsMatchGo.
//   - OpenBLAS (split over the cores and not) and pure Go agree, and a split product
//     equals the whole: TestGemmBackendsAgree, TestSplitProduct, TestCgemmBackendsAgree.
//     Speed: BenchmarkSgemm, BenchmarkCgemm3m, BenchmarkConvBlock (a LiResNet block
//     conv, batch 256), BenchmarkWinograd (the same conv by im2col and by Winograd),
//     BenchmarkIm2col, BenchmarkDFT, BenchmarkLOTStep.
//   - LOT: the authors' three reference layers are reproduced, outputs and the
//     gradients of weight, bias and input (TestLOTReference); the DFTs equal a
//     direct DFT and are pairwise adjoint (TestDFTForward, TestDFTAdjoint);
//     every layer's exact spectral norm (float64 SVD of its matrix) is at most 1
//     for identity and random kernels, so it is 1-Lipschitz whether or not
//     Newton–Schulz converged (TestLOTSpectralNorm, TestLOTLipschitzPairs), and
//     LipschitzBound proves a bound at least that norm (TestLOTLipschitzBound);
//     orthogonal kernels preserve norms (TestLOTPreservesNorms); gradients match
//     central differences where the reference has no case (TestLOTGrad); a
//     training step allocates nothing (TestLOTNoAllocs).
//   - The distance layers run on internal/distk's tile kernels: AVX-512 assembly
//     generated with avo (go generate ./trainer/nn/internal/distk) where the CPU
//     has AVX-512F and BMI2, pure Go otherwise, bit for bit the same results on
//     awkward sizes (distk.TestKernelsAgree), split across all cores by panels
//     of 32 units (the split never changes a result). DistKernels names the path.
//   - LpDist at p = inf is the max, finite p approaches it from above, gradients
//     at p = 8 equal finite differences, p = inf's is one-hot at the arg-max; sort
//     units with q = 1 equal l_inf units; sort weights sum to 1; masked units are
//     distances over their group's subset; interval bounds contain the float32
//     forward of random points of the box, corners included: lpdist_test.go.
//     Speed: BenchmarkLpDist (B=128, 1024x1024, G |x - w| per second).
package nn
