// Package nn is the compute core of the LiResNet/GloroNet models: a few explicit
// layers with Forward and Backward side by side, in the manner of llm.c.
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
//   - All matrix products go through Gemm (gemm.go), the one seam a GPU backend replaces.
//     With cgo the default is OpenBLAS (linked with -lopenblas, Debian package
//     libopenblas-dev); with CGO_ENABLED=0 or -tags noopenblas it is gonum's
//     pure-Go BLAS, about ten times slower.
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
//   - OpenBLAS and pure Go agree: TestGemmBackendsAgree. Speed: BenchmarkSgemm,
//     BenchmarkConvBlock (a LiResNet block conv, batch 256), BenchmarkIm2col.
package nn
