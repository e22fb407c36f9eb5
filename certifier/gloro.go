// Package certifier states what a trained model guarantees and tries to break
// those guarantees.
//
// It is model-agnostic: a model enters either as its logits (certification
// from margins, [Certify], [GloRo]) or through the small [Classifier]
// interface (attacks, [PGD], [LipschitzProbe]). The trainer's models satisfy
// Classifier; this package never imports the trainer.
//
// Guarantees and where they are tested:
//
//   - Soundness and tightness of the ℓ2 margin certificate: for a linear model
//     whose margin Lipschitz constants are exact, the radius from [Certify]
//     equals the distance to the decision boundary (gloro_test.go), and PGD
//     never changes a prediction inside 0.95·r but does at 1.05·r
//     (attack_test.go).
//   - Rounding: [CertifyMarginsRounded] takes a model's proven bound on the
//     floating-point error of its margins (at the image and within the
//     radius) and returns radii that hold for the program, not only for the
//     network in exact arithmetic (rounding_test.go; the trainer's models
//     supply and test the bounds).
//   - Certified means radius > ε, the same strict inequality as the GloRo test
//     y_c > y_⊥ (gloro_test.go, boundary case y_c − y_j = ε·K_cj).
//   - The statistics are exact counts on hand-made result sets (stats_test.go);
//     CSV and JSON round-trip bit for bit (output_test.go).
//   - Attacks and probes are deterministic for a fixed seed.
//   - ℓ∞: [PGDOptions] Norm "linf" runs sign-gradient PGD within the cube
//     (bounds rounded inwards, so |x' − x| <= r holds exactly); against linear
//     models' exact ℓ∞ radii it never succeeds within 0.95·r and always at
//     1.05·r (linf_test.go). Interval-bound certificates enter as
//     [Result.IBP] and count at every ε <= IBP (linf_test.go); the trainer
//     tests them against this attack on trained ℓ∞ models.
//
// The paper's analyses (Altstidl et al. 2023): clean and certified accuracy
// (Tables 1–4), the distribution of certified radii split into correctly and
// incorrectly classified images (Fig. 5, [RadiusCurve], [PlotRadiusCurve]) and
// the correct/certified confusion (Fig. 7, [Confusion], [PlotConfusion]).
package certifier

import (
	"errors"
	"fmt"
	"math"
)

// ErrShape reports inputs whose lengths do not agree with each other or with
// the number of classes.
var ErrShape = errors.New("certifier: shape mismatch")

// Result is the certificate of one image: its label, the model's prediction
// (the arg-max logit, lowest index on ties) and the ℓ2 radius around the image
// within which that prediction cannot change. A misclassified image still has
// a radius: it is how robustly the model is wrong.
//
// Radius is 0 when the prediction is tied with another class and +Inf when no
// margin of the prediction can change at all (every K_cj = 0).
type Result struct {
	Label      int
	Prediction int
	Radius     float64
	// IBP is the largest radius at which interval bound propagation (ℓ∞
	// models, the authors' certified_test) certified the prediction, 0 if none was checked or
	// none passed. Boxes grow with the radius, so the prediction is
	// certified at every ε <= IBP, typically a tighter certificate than
	// Radius. ℓ2 models leave it 0.
	IBP float64
}

// Correct reports whether the prediction equals the label.
func (r Result) Correct() bool { return r.Label == r.Prediction }

// CertifiedRadius is the largest radius known to be certified,
// max(Radius, IBP).
func (r Result) CertifiedRadius() float64 { return max(r.Radius, r.IBP) }

// Certified reports whether the prediction is certified at ε, i.e. Radius > ε.
//
// The inequality is strict so that it agrees with GloRo's rule "certified iff
// y_c > y_⊥": y_c > y_j + ε·K_cj for all j ≠ c is, for K_cj > 0, the same as
// (y_c − y_j)/K_cj > ε. A point exactly on the ε-sphere's boundary case
// (y_c − y_j = ε·K_cj) is therefore not certified. Certified says nothing
// about correctness; certified accuracy needs both ([Result.Correct]).
// Interval bounds certify the closed ball: Certified also holds when
// 0 < eps <= IBP.
func (r Result) Certified(eps float64) bool { return r.Radius > eps || (r.IBP > 0 && eps <= r.IBP) }

// MarginLipschitz returns an upper bound K_cj on the ℓ2 Lipschitz constant of
// the margin function x ↦ y_c(x) − y_j(x). It must be symmetric, non-negative
// and not NaN.
type MarginLipschitz func(c, j int) float64

// CertifyMargins computes, for n = len(labels) images with logits laid out
// image-major (n × classes), the prediction c and the certified radius
//
//	r = min_{j≠c} (y_c − y_j) / K_cj
//
// where K_cj = lip(c, j). Arithmetic is in float64. Edge cases: a tie for the
// top logit gives r = 0 (the prediction is ambiguous, so nothing is
// certified); a pair with K_cj = 0 and y_c > y_j never limits the radius
// (the term is +Inf); K_cj = +Inf gives a term of 0.
//
// It is the margin-based certificate shared by all Lipschitz models: GloRo
// ([GloRo]), and e.g. LOT with K_cj = √2·K.
func CertifyMargins[T float32 | float64](logits []T, labels []int, classes int, lip MarginLipschitz) ([]Result, error) {
	n := len(labels)
	if classes < 2 {
		return nil, fmt.Errorf("certify: %d classes, want at least 2: %w", classes, ErrShape)
	}
	if len(logits) != n*classes {
		return nil, fmt.Errorf("certify: %d logits for %d images of %d classes: %w", len(logits), n, classes, ErrShape)
	}
	out := make([]Result, n)
	for i := range n {
		y := logits[i*classes : (i+1)*classes]
		if labels[i] < 0 || labels[i] >= classes {
			return nil, fmt.Errorf("certify: image %d: label %d outside [0,%d): %w", i, labels[i], classes, ErrShape)
		}
		c, err := Argmax(y)
		if err != nil {
			return nil, fmt.Errorf("certify: image %d: %w", i, err)
		}
		r, err := marginRadius(y, c, lip)
		if err != nil {
			return nil, fmt.Errorf("certify: image %d: %w", i, err)
		}
		out[i] = Result{Label: labels[i], Prediction: c, Radius: r}
	}
	return out, nil
}

// argmax returns the index of the largest logit, the lowest index on ties,
// and fails on NaN (a NaN logit makes any certificate meaningless).
func Argmax[T float32 | float64](y []T) (int, error) {
	c := 0
	for j, v := range y {
		if v != v {
			return 0, fmt.Errorf("logit %d is NaN", j)
		}
		if v > y[c] {
			c = j
		}
	}
	return c, nil
}

// marginRadius is min_{j≠c} (y_c − y_j)/K_cj with the edge cases of
// CertifyMargins.
func marginRadius[T float32 | float64](y []T, c int, lip MarginLipschitz) (float64, error) {
	r := math.Inf(1)
	yc := float64(y[c])
	for j := range y {
		if j == c {
			continue
		}
		k := lip(c, j)
		if k < 0 || math.IsNaN(k) {
			return 0, fmt.Errorf("margin Lipschitz bound K_%d%d = %v, want >= 0", c, j, k)
		}
		m := yc - float64(y[j])
		var t float64
		switch {
		case m <= 0: // tie with the prediction (c is the arg-max, so m >= 0)
			t = 0
		case k == 0:
			t = math.Inf(1)
		default:
			t = m / k // +Inf bound gives 0
		}
		r = min(r, t)
	}
	return r, nil
}

// GloRo certifies ℓ2 GloRo networks (Leino et al. 2021): logits
// y = Ŵ·h(x) + b where h, the sub-network, is K-Lipschitz and Ŵ (C × F) is
// the head. The margin y_c − y_j is then K·‖ŵ_c − ŵ_j‖-Lipschitz, with the
// pairwise row distances precomputed once.
//
// Pass the head rows the model actually multiplies with: the row-normalised
// ŵ_j = w_j/‖w_j‖ for last-layer normalisation (LLN, the LiResNet default),
// the raw rows otherwise. K must be the sub-network's bound evaluated as at
// test time (500 power iterations in the reference code); power iteration
// under-estimates spectral norms, so an unconverged K makes the certificate
// unsound (see [PGD] and [LipschitzProbe] for checks).
type GloRo struct {
	k       float64
	classes int
	dist    []float64 // classes × classes, ‖ŵ_c − ŵ_j‖₂
}

// NewGloRo validates K and the head (classes × features, row-major) and
// precomputes K_cj = K·‖ŵ_c − ŵ_j‖₂ in float64, rounded up: each is at
// least the exact product of K and the distance of the float32 rows.
func NewGloRo(k float64, head []float32, classes int) (*GloRo, error) {
	if k < 0 || math.IsNaN(k) || math.IsInf(k, 0) {
		return nil, fmt.Errorf("gloro: Lipschitz constant K = %v, want finite and >= 0", k)
	}
	if classes < 2 {
		return nil, fmt.Errorf("gloro: %d classes, want at least 2: %w", classes, ErrShape)
	}
	if len(head) == 0 || len(head)%classes != 0 {
		return nil, fmt.Errorf("gloro: head of %d weights is not %d rows: %w", len(head), classes, ErrShape)
	}
	f := len(head) / classes
	if f >= 1<<20 {
		return nil, fmt.Errorf("gloro: head rows of %d features, want fewer than 2^20 (the rounding bound of K_cj assumes it): %w", f, ErrShape)
	}
	for i, v := range head {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("gloro: head weight [%d,%d] = %v", i/f, i%f, v)
		}
	}
	g := &GloRo{k: k, classes: classes, dist: make([]float64, classes*classes)}
	// Each K_cj is an upper bound on the exact K·‖ŵ_c − ŵ_j‖ in floating
	// point (u = 2^−53). Each difference of two float32 weights and its
	// square round at most once each in float64 (no underflow or overflow:
	// float32 magnitudes lie in [2^−149, 2^128)), the sum of f squares adds
	// a relative error of at most γ_(f−1), the square root and the product
	// with K one rounding each: the computed value is at least the exact one
	// times 1 − (f+6)u, for any f below 2^20. Scaling it by 1 + (f+8)u (one
	// more rounding) and stepping up one ulp gives an upper bound.
	up := 1 + float64(f+8)*0x1p-53
	for c := range classes {
		wc := head[c*f : (c+1)*f]
		for j := c + 1; j < classes; j++ {
			wj := head[j*f : (j+1)*f]
			var s float64
			for t := range f {
				d := float64(wc[t]) - float64(wj[t])
				s += d * d
			}
			d := math.Nextafter(k*math.Sqrt(s)*up, math.Inf(1))
			g.dist[c*classes+j] = d
			g.dist[j*classes+c] = d
		}
	}
	return g, nil
}

// Classes is the number of classes C of the head.
func (g *GloRo) Classes() int { return g.classes }

// K is the sub-network Lipschitz constant the certificate uses.
func (g *GloRo) K() float64 { return g.k }

// MarginLipschitz returns K_cj = K·‖ŵ_c − ŵ_j‖₂ (0 for c = j). It has the
// signature of [MarginLipschitz], so it can be passed to [CertifyMargins] and
// [LipschitzProbe].
func (g *GloRo) MarginLipschitz(c, j int) float64 { return g.dist[c*g.classes+j] }

// Certify returns per-image results for logits (len(labels) × C) as
// [CertifyMargins] with K_cj = K·‖ŵ_c − ŵ_j‖.
func (g *GloRo) Certify(logits []float32, labels []int) ([]Result, error) {
	return CertifyMargins(logits, labels, g.classes, g.MarginLipschitz)
}

// BottomLogit returns the prediction c of one image's logits (length C) and
// GloRo's bottom logit
//
//	y_⊥ = max_{j≠c} (y_j + ε·K_cj),
//
// the largest logit any class other than c can reach within the ε-ball. The
// GloRo network's output is [y, y_⊥]; the image is certified iff y_c > y_⊥.
func (g *GloRo) BottomLogit(logits []float32, eps float64) (prediction int, bottom float64, err error) {
	if len(logits) != g.classes {
		return 0, 0, fmt.Errorf("gloro: %d logits, want %d: %w", len(logits), g.classes, ErrShape)
	}
	if eps < 0 || math.IsNaN(eps) {
		return 0, 0, fmt.Errorf("gloro: ε = %v, want >= 0", eps)
	}
	c, err := Argmax(logits)
	if err != nil {
		return 0, 0, fmt.Errorf("gloro: %w", err)
	}
	bottom = math.Inf(-1)
	for j, v := range logits {
		if j == c {
			continue
		}
		t := float64(v)
		if eps > 0 { // avoids 0·Inf
			t += eps * g.MarginLipschitz(c, j)
		}
		bottom = max(bottom, t)
	}
	return c, bottom, nil
}

// Certify is the one-call form of [NewGloRo] followed by [GloRo.Certify]:
// logits are len(labels) × classes, head is classes × F (the head rows the
// model multiplies with, row-normalised under LLN) and k the sub-network's
// Lipschitz constant.
func Certify(logits []float32, labels []int, k float64, head []float32, classes int) ([]Result, error) {
	g, err := NewGloRo(k, head, classes)
	if err != nil {
		return nil, err
	}
	return g.Certify(logits, labels)
}

// NormalizeRows returns a copy of w (rows × len(w)/rows) with every row
// divided by its ℓ2 norm, the last-layer normalisation (LLN) of LiResNet.
// A zero row stays zero.
func NormalizeRows(w []float32, rows int) ([]float32, error) {
	if rows < 1 || len(w)%rows != 0 {
		return nil, fmt.Errorf("normalize rows: %d weights are not %d rows: %w", len(w), rows, ErrShape)
	}
	f := len(w) / rows
	out := make([]float32, len(w))
	for r := range rows {
		row := w[r*f : (r+1)*f]
		var s float64
		for _, v := range row {
			s += float64(v) * float64(v)
		}
		if s == 0 {
			continue
		}
		inv := 1 / math.Sqrt(s)
		for t, v := range row {
			out[r*f+t] = float32(float64(v) * inv)
		}
	}
	return out, nil
}
