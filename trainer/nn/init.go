package nn

import (
	"math/rand/v2"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// Orthogonal fills w, a rows×cols row-major matrix, with a (semi-)orthogonal
// matrix as PyTorch's nn.init.orthogonal_ does: Householder QR of a tall m×k
// Gaussian matrix (m = max(rows, cols), k = min), the k columns of Q multiplied by
// the signs of diag(R) so that the result is uniformly (Haar) distributed, then
// transposed when rows < cols. Afterwards W Wᵀ = I when rows ≤ cols and Wᵀ W = I
// otherwise. For a conv weight, rows = Cout and cols = Cin·K·K. Only the thin Q is
// formed (LAPACK geqrf + orgqr, as gonum/mat's QR does internally, but without its
// full m×m Q), so the 512×4096 neck of LiResNet-L takes well under a second.
func Orthogonal(w []float32, rows, cols int, rng *rand.Rand) {
	if len(w) != rows*cols {
		panic("nn: Orthogonal: len(w) != rows*cols")
	}
	m, k := max(rows, cols), min(rows, cols)
	a := blas64.General{Rows: m, Cols: k, Stride: k, Data: make([]float64, m*k)}
	for i := range a.Data {
		a.Data[i] = rng.NormFloat64()
	}
	tau := make([]float64, k)
	work := []float64{0}
	lapack64.Geqrf(a, tau, work, -1)
	work = make([]float64, int(work[0]))
	lapack64.Geqrf(a, tau, work, len(work))
	sign := make([]float64, k)
	for j := range sign {
		sign[j] = 1
		if a.Data[j*k+j] < 0 { // R is the upper triangle of the factored a
			sign[j] = -1
		}
	}
	lapack64.Orgqr(a, tau, work, -1)
	if n := int(work[0]); n > len(work) {
		work = make([]float64, n)
	}
	lapack64.Orgqr(a, tau, work, len(work))
	for i := 0; i < m; i++ {
		for j := 0; j < k; j++ {
			v := float32(sign[j] * a.Data[i*k+j])
			if rows < cols {
				w[j*cols+i] = v // W = Qᵀ
			} else {
				w[i*cols+j] = v
			}
		}
	}
}

// Uniform fills w with independent draws from U(-bound, bound), PyTorch's default
// for Linear weights and for conv and linear biases with bound = 1/√fan_in.
func Uniform(w []float32, bound float64, rng *rand.Rand) {
	for i := range w {
		w[i] = float32((2*rng.Float64() - 1) * bound)
	}
}

// Normal fills w with independent draws from N(0, std²), e.g. the LiResNet block
// kernel V ~ N(0,1)/(9W).
func Normal(w []float32, std float64, rng *rand.Rand) {
	for i := range w {
		w[i] = float32(rng.NormFloat64() * std)
	}
}
