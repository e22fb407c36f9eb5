package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"gonum.org/v1/gonum/blas"

	"certmix/trainer/nn/internal/pool"
)

// LOT is the layer-wise orthogonal convolution of Xu, Li & Li (NeurIPS 2022),
// the authors' lot_ortho_conv.py: a K×K convolution whose kernel is orthogonalised frequency by
// frequency, so that the layer is at most 1-Lipschitz in ℓ2 (and norm
// preserving when square). For an input of InC channels of Size×Size:
//
//  1. stride 2: space-to-depth, X'[b, 4c+2k₁+k₂, i, j] = X[b, c, 2i+k₁, 2j+k₂],
//     so the conv sees Cin = 4·InC channels of N = Size/2 (else Cin = InC, N = Size);
//  2. zero padding by ⌊K/2⌋ to n×n and the DFT of every plane (RealDFT2);
//  3. per frequency, the kernel's Cout×Cin matrix M = Σ W[·,·,p,q] e^{+2πi(u(p−r)+v(q−r))/n}
//     (the conjugate spectrum with LOT's phase shift: a centred cross-correlation);
//  4. M_orth = Newton–Schulz(M) ≈ (M Mᴴ)^(−1/2) M (newtonSchulz, Iters iterations);
//  5. Ŷ = M_orth X̂, the inverse DFT, cropped to N×N, plus the bias.
//
// Real inputs and kernels have Hermitian spectra, so only the half spectrum is
// computed, and of it only one of each conjugate pair; at the frequencies
// where the spectrum is real (2u ≡ 2v ≡ 0 mod n) the iterations run in real
// arithmetic. Forward and Backward follow the nn conventions with one
// difference: Backward uses the spectrum kept by the last Forward instead of
// its input.
//
// Training (Forward with train) recomputes M_orth and keeps the Newton–Schulz
// iterates for Backward; evaluation reuses M_orth as long as the weights are
// those it was computed from (a copy is compared), so a frozen layer
// orthogonalises once.
type LOT struct {
	InC, Size            int // the layer's input: channels and height = width
	Cin, Cout, K, Stride int // the orthogonal conv (Cin = InC·Stride²)
	N                    int // the conv's spatial size, Size/Stride
	Iters                int // Newton–Schulz iterations (10)
	Weight               *Param
	Bias                 *Param

	dft      *RealDFT2
	maxBatch int

	// The half spectrum's frequencies f = u·Half + v: each is computed as
	// unique frequency rep[f], conjugated when conj[f].
	rep       []int
	conj      []bool
	uniq      []int // the half-spectrum frequency of each unique one: nR real ones first
	nR, nC    int
	phase     []float32 // K²×2U: cos and sin of the kernel's phase at unique frequency j
	km, gkm   []float32 // Cout·Cin × 2U: M at the unique frequencies (complex interleaved) and its gradient
	mR, moR   []float32 // nR × Cout×Cin: M and M_orth where they are real
	mC, moC   []complex64
	gmR, gmoR []float32
	gmC, gmoC []complex64
	nsR       *newtonSchulz[float32, real32]
	nsC       *newtonSchulz[complex64, complex32]
	mo, gmo   []complex64 // F × Cout×Cin: M_orth (and its gradient) at every half-spectrum frequency
	moW       []float32   // the weights mo was computed from
	moValid   bool
	bound     float64     // LipschitzBound of mo, 0 until computed
	xs, dxs   []float32   // space-to-depth input and its gradient
	xhat, gx  []complex64 // F × Cin×B spectra of the input and of its gradient
	zhat      []complex64 // F × Cout×B: output spectrum, and in Backward its gradient
	lastN     int
	lastTrain bool
	products  *lotProducts
}

// NewLOT makes a LOT layer named name (params name.weight, Cout×Cin×K×K, and
// name.bias) for inputs of inC channels of size×size and batches of up to
// maxBatch. Square layers (Cout = Cin) start at the identity with zero bias
// (LOT's init); the others as PyTorch's Conv2d, U(±1/√(Cin·K·K)), from rng.
func NewLOT(name string, inC, cout, k, stride, size, maxBatch, iters int, rng *rand.Rand) *LOT {
	if inC < 1 || cout < 1 || k < 1 || k%2 == 0 || stride < 1 || size < 1 || size%stride != 0 || maxBatch < 1 || iters < 1 {
		panic("nn: NewLOT: invalid geometry")
	}
	l := &LOT{InC: inC, Size: size, Cin: inC * stride * stride, Cout: cout, K: k, Stride: stride, N: size / stride,
		Iters: iters, maxBatch: maxBatch}
	l.Weight = NewParam(name+".weight", cout, l.Cin, k, k)
	l.Bias = NewParam(name+".bias", cout)
	if cout == l.Cin {
		for o := range cout {
			l.Weight.W[(o*l.Cin+o)*k*k+k*k/2] = 1
		}
	} else {
		bound := 1 / math.Sqrt(float64(l.Cin*k*k))
		Uniform(l.Weight.W, bound, rng)
		Uniform(l.Bias.W, bound, rng)
	}
	r := k / 2
	l.dft = NewRealDFT2(l.N, r, maxBatch*max(l.Cin, cout))
	l.plan()
	oc, F, U := cout*l.Cin, l.dft.Frequencies(), l.nR+l.nC
	l.phase = make([]float32, k*k*2*U)
	for j, f := range l.uniq {
		u, v := f/l.dft.Half, f%l.dft.Half
		for p := range k {
			for q := range k {
				c, s := unitRoot(u*(p-r)+v*(q-r), l.dft.Len)
				l.phase[(p*k+q)*2*U+2*j], l.phase[(p*k+q)*2*U+2*j+1] = float32(c), float32(s)
			}
		}
	}
	l.km = make([]float32, oc*2*U)
	l.gkm = l.km // M's gradient is formed after M is no longer needed
	l.mR, l.moR, l.gmR, l.gmoR = make([]float32, l.nR*oc), make([]float32, l.nR*oc), make([]float32, l.nR*oc), make([]float32, l.nR*oc)
	l.mC, l.moC, l.gmC, l.gmoC = make([]complex64, l.nC*oc), make([]complex64, l.nC*oc), make([]complex64, l.nC*oc), make([]complex64, l.nC*oc)
	l.nsR = newNewtonSchulz[float32, real32](l.nR, cout, l.Cin, iters)
	l.nsC = newNewtonSchulz[complex64, complex32](l.nC, cout, l.Cin, iters)
	l.mo, l.gmo = make([]complex64, F*oc), make([]complex64, F*oc)
	l.moW = make([]float32, len(l.Weight.W))
	if stride > 1 {
		l.xs, l.dxs = make([]float32, maxBatch*l.Cin*l.N*l.N), make([]float32, maxBatch*l.Cin*l.N*l.N)
	}
	l.xhat, l.gx = make([]complex64, F*l.Cin*maxBatch), make([]complex64, F*l.Cin*maxBatch)
	l.zhat = make([]complex64, F*cout*maxBatch)
	l.products = &lotProducts{l: l}
	return l
}

// lotProducts is the loop over frequencies of a LOT layer's per-frequency
// products, run by the worker pool (internal/pool): the output spectrum (Ŷ = M_orth X̂), the
// input's gradient (M_orthᴴ ∂Ŷ) and M_orth's gradient (∂Ŷ X̂ᴴ).
type lotProducts struct {
	l    *LOT
	n    int
	what int
	done sync.WaitGroup
}

const (
	outputSpectrum = iota
	inputGradient
	kernelGradient
)

func (p *lotProducts) start(what, n int) {
	p.what, p.n = what, n
	pool.Split(p, p.l.dft.Frequencies(), parts(), &p.done)
}

// Run computes frequencies [lo, hi) (the pool's loop).
func (p *lotProducts) Run(_, lo, hi int) {
	l, n := p.l, p.n
	ci, co := l.Cin, l.Cout
	for f := lo; f < hi; f++ {
		switch p.what {
		case outputSpectrum:
			Cgemm(blas.NoTrans, blas.NoTrans, co, n, ci, 1, l.mo[f*co*ci:], ci, l.xhat[f*ci*n:], n, 0, l.zhat[f*co*n:], n)
		case inputGradient:
			Cgemm(blas.ConjTrans, blas.NoTrans, ci, n, co, 1, l.mo[f*co*ci:], ci, l.zhat[f*co*n:], n, 0, l.gx[f*ci*n:], n)
		case kernelGradient:
			Cgemm(blas.NoTrans, blas.ConjTrans, co, ci, n, 1, l.zhat[f*co*n:], n, l.xhat[f*ci*n:], n, 0, l.gmo[f*co*ci:], ci)
		}
	}
}

// plan sorts the half spectrum's frequencies into real ones, one of each
// conjugate pair, and the conjugates of those (in the columns v = 0 and n/2).
func (l *LOT) plan() {
	n, h := l.dft.Len, l.dft.Half
	F := n * h
	l.rep, l.conj = make([]int, F), make([]bool, F)
	var real, cplx []int
	for u := range n {
		for v := range h {
			f := u*h + v
			uc, vc := (n-u)%n, (n-v)%n
			switch {
			case uc == u && vc == v:
				real = append(real, f)
			case vc == v && uc < u: // the conjugate of (uc, v), which is kept
				l.conj[f] = true
			default:
				cplx = append(cplx, f)
			}
		}
	}
	l.nR, l.nC = len(real), len(cplx)
	l.uniq = append(real, cplx...)
	idx := make([]int, F)
	for j, f := range l.uniq {
		idx[f] = j
	}
	for u := range n {
		for v := range h {
			f := u*h + v
			if l.conj[f] {
				l.rep[f] = idx[((n-u)%n)*h+v]
			} else {
				l.rep[f] = idx[f]
			}
		}
	}
}

// InLen is the length of one input image, InC·Size·Size.
func (l *LOT) InLen() int { return l.InC * l.Size * l.Size }

// OutLen is the length of one output image, Cout·N·N.
func (l *LOT) OutLen() int { return l.Cout * l.N * l.N }

// Params lists weight and bias.
func (l *LOT) Params() []*Param { return []*Param{l.Weight, l.Bias} }

// StashBytes is the memory the training Newton–Schulz iterates take.
func (l *LOT) StashBytes() int { return 4*l.nsR.stashLen() + 8*l.nsC.stashLen() }

// Orthogonalize computes M_orth from the current weights unless it is
// already that of these weights; with train it always recomputes and keeps
// the iterates for Backward.
func (l *LOT) Orthogonalize(train bool) {
	if !train && l.moValid && slices.Equal(l.moW, l.Weight.W) {
		return
	}
	oc, U := l.Cout*l.Cin, l.nR+l.nC
	kk := l.K * l.K
	Gemm(false, false, oc, 2*U, kk, 1, l.Weight.W, kk, l.phase, 2*U, 0, l.km, 2*U)
	km := l.km
	for i := range oc {
		row := km[i*2*U:][:2*U]
		for j := range l.nR {
			l.mR[j*oc+i] = row[2*j]
		}
		for j := range l.nC {
			l.mC[j*oc+i] = complex(row[2*(l.nR+j)], row[2*(l.nR+j)+1])
		}
	}
	l.nsR.forward(l.moR, l.mR, train)
	l.nsC.forward(l.moC, l.mC, train)
	for f, j := range l.rep {
		dst := l.mo[f*oc:][:oc]
		switch {
		case j < l.nR:
			for i, v := range l.moR[j*oc:][:oc] {
				dst[i] = complex(v, 0)
			}
		case l.conj[f]:
			for i, v := range l.moC[(j-l.nR)*oc:][:oc] {
				dst[i] = complex(real(v), -imag(v))
			}
		default:
			copy(dst, l.moC[(j-l.nR)*oc:][:oc])
		}
	}
	copy(l.moW, l.Weight.W)
	l.moValid, l.bound = true, 0
}

// Forward computes out (n × Cout×N×N) from in (n × InC×Size×Size). With train
// it orthogonalises afresh and prepares Backward's parameter gradients;
// without, it uses the cached M_orth (evaluation), and a following Backward
// gives the input gradient only.
func (l *LOT) Forward(out, in []float32, n int, train bool) {
	if n > l.maxBatch || len(in) < n*l.InLen() || len(out) < n*l.OutLen() {
		panic("nn: LOT.Forward: bad slice length or batch")
	}
	l.Orthogonalize(train)
	l.lastN, l.lastTrain = n, train
	xs := in
	if l.Stride > 1 {
		xs = l.xs
		spaceToDepth(xs, in, n, l.InC, l.Size, l.Stride)
	}
	ci, co := l.Cin, l.Cout
	l.dft.Forward(l.xhat, xs, n, ci)
	l.products.start(outputSpectrum, n)
	l.dft.Inverse(out, l.zhat, n, co)
	p := l.N * l.N
	for i := range n * co {
		b, row := l.Bias.W[i%co], out[i*p:][:p]
		for j := range row {
			row[j] += b
		}
	}
}

// Backward takes dOut = ∂L/∂out for the n images of the last Forward. After a
// training Forward it ACCUMULATES the gradients of weight (through the inverse
// DFT, the per-frequency products, the Newton–Schulz iterations and the
// kernel's DFT) and bias; after an evaluation Forward it leaves them alone. It
// WRITES ∂L/∂in into dIn unless dIn is nil.
func (l *LOT) Backward(dIn, dOut []float32, n int) {
	if n != l.lastN || len(dOut) < n*l.OutLen() || (dIn != nil && len(dIn) < n*l.InLen()) {
		panic("nn: LOT.Backward: bad slice length or batch other than the last Forward's")
	}
	ci, co := l.Cin, l.Cout
	l.dft.InverseT(l.zhat, dOut, n, co) // zhat now holds ∂L/∂Ŷ
	if dIn != nil {
		l.products.start(inputGradient, n)
		if l.Stride > 1 {
			l.dft.ForwardT(l.dxs, l.gx, n, ci)
			depthToSpace(dIn, l.dxs, n, l.InC, l.Size, l.Stride)
		} else {
			l.dft.ForwardT(dIn, l.gx, n, ci)
		}
	}
	if !l.lastTrain {
		return
	}
	p := l.N * l.N
	for i := range n * co {
		var s float32
		for _, v := range dOut[i*p:][:p] {
			s += v
		}
		l.Bias.G[i%co] += s
	}
	oc := co * ci
	l.products.start(kernelGradient, n)
	clear(l.gmoC)
	for f, j := range l.rep {
		g := l.gmo[f*oc:][:oc]
		switch {
		case j < l.nR:
			for i, v := range g {
				l.gmoR[j*oc+i] = real(v)
			}
		case l.conj[f]:
			dst := l.gmoC[(j-l.nR)*oc:][:oc]
			for i, v := range g {
				dst[i] += complex(real(v), -imag(v))
			}
		default:
			dst := l.gmoC[(j-l.nR)*oc:][:oc]
			for i, v := range g {
				dst[i] += v
			}
		}
	}
	l.nsR.backward(l.gmR, l.gmoR, l.mR, l.moR)
	l.nsC.backward(l.gmC, l.gmoC, l.mC, l.moC)
	U := l.nR + l.nC
	for i := range oc {
		row := l.gkm[i*2*U:][:2*U]
		for j := range l.nR {
			row[2*j], row[2*j+1] = l.gmR[j*oc+i], 0
		}
		for j := range l.nC {
			v := l.gmC[j*oc+i]
			row[2*(l.nR+j)], row[2*(l.nR+j)+1] = real(v), imag(v)
		}
	}
	kk := l.K * l.K
	Gemm(false, true, oc, kk, 2*U, 1, l.gkm, 2*U, l.phase, 2*U, 1, l.Weight.G, kk)
}

// spaceToDepth writes dst[b][c·s²+k₁·s+k₂][i][j] = src[b][c][s·i+k₁][s·j+k₂]
// (einops "b c (w k1) (h k2) -> b (c k1 k2) w h").
func spaceToDepth[T any](dst, src []T, n, c, size, s int) {
	m := size / s
	for b := range n {
		for ch := range c {
			plane := src[(b*c+ch)*size*size:][:size*size]
			for k1 := range s {
				for k2 := range s {
					out := dst[((b*c+ch)*s*s+k1*s+k2)*m*m:][:m*m]
					for i := range m {
						for j := range m {
							out[i*m+j] = plane[(s*i+k1)*size+s*j+k2]
						}
					}
				}
			}
		}
	}
}

// depthToSpace is spaceToDepth's inverse (and, a permutation, its adjoint).
func depthToSpace(dst, src []float32, n, c, size, s int) {
	m := size / s
	for b := range n {
		for ch := range c {
			plane := dst[(b*c+ch)*size*size:][:size*size]
			for k1 := range s {
				for k2 := range s {
					in := src[((b*c+ch)*s*s+k1*s+k2)*m*m:][:m*m]
					for i := range m {
						for j := range m {
							plane[(s*i+k1)*size+s*j+k2] = in[i*m+j]
						}
					}
				}
			}
		}
	}
}
