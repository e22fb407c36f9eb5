package certifier

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Classifier is what the certifier needs of a trained model.
//
// Rows must be independent (a model in evaluation mode: no batch statistics),
// because attacks batch restarts and images of different origin together.
type Classifier interface {
	Classes() int
	InputSize() int                       // values per image (C*H*W), images in [0,1]
	Logits(dst, x []float32, n int) error // dst: n*Classes()
	// InputGradient writes into dx the gradient wrt x of sum_i sum_j dlogits[i*C+j] * logits_j(x_i).
	InputGradient(dx, x, dlogits []float32, n int) error
}

// PGDOptions configures [PGD]. Zero fields take the defaults.
type PGDOptions struct {
	// Norm is the threat model: "l2" (the default) or "linf". Under linf
	// the steps follow the gradient's sign, every iterate stays within
	// max_t |x'_t - x_t| <= r, random starts are uniform in the cube, and
	// target classes are ranked by the linearised distance with the dual
	// (l1) norm of the gradient.
	Norm string
	// Steps per restart (default 100).
	Steps int
	// Restarts per image (default 5). The first starts at the clean image
	// and maximises the margin max_{j≠c} y_j − y_c; the others start at a
	// uniform random point of the ball (clipped to the box) and each targets
	// one class j, maximising y_j − y_c (see Untargeted).
	Restarts int
	// Untargeted makes every restart maximise max_{j≠c} y_j − y_c. By
	// default restart k ≥ 1 targets the class with the k-th smallest
	// linearised distance (y_c − y_j)/‖∇(y_c − y_j)‖ at the clean image (the
	// MultiTargeted attack of Gowal et al. 2019): the max-margin objective
	// follows the runner-up class, which need not be the one whose boundary
	// is nearest, and can stall at a local maximum on the sphere.
	Untargeted bool
	// StepScale sets the step size to StepScale·r/Steps (default 2.5, so a
	// restart can cross the ball more than twice).
	StepScale float64
	// BatchSize is the number of rows per model call (default 256); the
	// restarts of one image always share a call.
	BatchSize int
	// Seed makes the random starts reproducible.
	Seed uint64
}

func (o PGDOptions) withDefaults() PGDOptions {
	if o.Steps <= 0 {
		o.Steps = 100
	}
	if o.Restarts <= 0 {
		o.Restarts = 5
	}
	if o.StepScale <= 0 {
		o.StepScale = 2.5
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.Norm == "" {
		o.Norm = "l2"
	}
	return o
}

// AttackResult is the outcome of [PGD] on one image.
type AttackResult struct {
	// Success reports that some point within the ball (and the box) is
	// classified differently from the clean image.
	Success bool
	// Clean is the prediction at the clean image, Prediction the one at
	// Adversarial.
	Clean, Prediction int
	// Adversarial is the first point found that changes the prediction, or,
	// without success, the point with the largest margin.
	Adversarial []float32
	// Margin is max_{j≠c} y_j − y_c at Adversarial (c = Clean).
	Margin float64
	// Distance is ‖Adversarial − x‖ in the attack's norm, at most the
	// attack radius.
	Distance float64
}

// PGD runs an ℓ2 projected-gradient attack on each of the len(radii) images
// in x (image-major, InputSize() values each): it tries to change the clean
// prediction c with normalised-gradient ascent steps on the margin (see
// [PGDOptions] for the objectives of the restarts), keeping every iterate
// within ‖x' − x‖₂ <= radii[i] and x' ∈ [0,1]^d.
//
// After each step the perturbation is scaled back onto the ball and the point
// clipped to the box. Clipping never leaves the ball: x lies in the box, so
// clipping moves every coordinate of x' towards x's; the float32 point is
// checked against the radius in float64 and pulled in further if rounding
// pushed it out. Radii above √d (the box's diameter) are treated as √d, so
// +Inf is allowed. A radius of 0 is never attacked.
//
// The attack stops for an image as soon as any restart changes its
// prediction (arg-max, lowest index on ties); failure is evidence, not proof,
// of robustness. Deterministic for fixed options and a deterministic model.
func PGD(m Classifier, x []float32, radii []float64, opts PGDOptions) ([]AttackResult, error) {
	opts = opts.withDefaults()
	d, C, n := m.InputSize(), m.Classes(), len(radii)
	if opts.Norm != "l2" && opts.Norm != "linf" {
		return nil, fmt.Errorf("pgd: norm %q, want l2 or linf", opts.Norm)
	}
	if err := checkImages(x, n, d, C); err != nil {
		return nil, fmt.Errorf("pgd: %w", err)
	}
	diameter := math.Sqrt(float64(d))
	if opts.Norm == "linf" {
		diameter = 1
	}
	radius := make([]float64, n)
	for i, r := range radii {
		if r < 0 || math.IsNaN(r) {
			return nil, fmt.Errorf("pgd: image %d: radius %v, want >= 0", i, r)
		}
		radius[i] = min(r, diameter)
	}
	clean := make([]float32, n*C)
	if err := logitsBatched(m, clean, x, n, opts.BatchSize); err != nil {
		return nil, fmt.Errorf("pgd: clean logits: %w", err)
	}
	out := make([]AttackResult, n)
	for i := range out {
		c, err := Argmax(clean[i*C : (i+1)*C])
		if err != nil {
			return nil, fmt.Errorf("pgd: image %d: %w", i, err)
		}
		out[i] = AttackResult{Clean: c, Prediction: c, Adversarial: slices.Clone(x[i*d : (i+1)*d]),
			Margin: -marginOf(clean[i*C:(i+1)*C], c)}
	}
	a := newPGDState(m, opts)
	if !opts.Untargeted && opts.Restarts > 1 {
		var err error
		if a.targets, err = rankTargets(m, x, clean, out, opts.Restarts-1, opts.BatchSize, opts.Norm); err != nil {
			return nil, fmt.Errorf("pgd: rank target classes: %w", err)
		}
	}
	group := max(1, opts.BatchSize/opts.Restarts)
	for lo := 0; lo < n; lo += group {
		hi := min(n, lo+group)
		if err := a.run(x, radius, out, lo, hi); err != nil {
			return nil, fmt.Errorf("pgd: images %d..%d: %w", lo, hi-1, err)
		}
	}
	return out, nil
}

// rankTargets returns, per image, the k classes j ≠ c with the smallest
// linearised distance (y_c − y_j)/‖∇_x(y_c − y_j)‖_* at the clean image (the
// dual norm: l2 for l2, l1 for linf): one gradient row per (image, class)
// pair, in calls of at most batch rows.
func rankTargets(m Classifier, x, clean []float32, out []AttackResult, k, batch int, norm string) ([][]int, error) {
	d, C, n := m.InputSize(), m.Classes(), len(out)
	pairs := n * (C - 1)
	lin := make([]float64, pairs)
	rows := min(batch, pairs)
	xb, dl, g := make([]float32, rows*d), make([]float32, rows*C), make([]float32, rows*d)
	for lo := 0; lo < pairs; lo += rows {
		b := min(rows, pairs-lo)
		clear(dl[:b*C])
		for r := range b {
			i, j := pairClass(lo+r, C, out)
			copy(xb[r*d:(r+1)*d], x[i*d:(i+1)*d])
			dl[r*C+j], dl[r*C+out[i].Clean] = 1, -1
		}
		if err := m.InputGradient(g[:b*d], xb[:b*d], dl[:b*C], b); err != nil {
			return nil, fmt.Errorf("pairs %d..%d: %w", lo, lo+b-1, err)
		}
		for r := range b {
			i, j := pairClass(lo+r, C, out)
			gn := dualNorm(g[r*d:(r+1)*d], norm)
			lin[lo+r] = (float64(clean[i*C+out[i].Clean]) - float64(clean[i*C+j])) / gn // +Inf for gn = 0
		}
	}
	targets := make([][]int, n)
	for i := range n {
		idx := make([]int, C-1)
		for q := range idx {
			idx[q] = q
		}
		l := lin[i*(C-1) : (i+1)*(C-1)]
		slices.SortStableFunc(idx, func(p, q int) int { return cmp.Compare(l[p], l[q]) })
		targets[i] = make([]int, min(k, C-1))
		for q := range targets[i] {
			_, targets[i][q] = pairClass(i*(C-1)+idx[q], C, out)
		}
	}
	return targets, nil
}

// pairClass maps a flat (image, class ≠ clean prediction) index to the image
// and the class.
func pairClass(p, C int, out []AttackResult) (i, j int) {
	i, j = p/(C-1), p%(C-1)
	if j >= out[i].Clean {
		j++
	}
	return i, j
}

// pgdState holds the buffers of one group of images × restarts, reused
// across groups.
type pgdState struct {
	m                 Classifier
	opts              PGDOptions
	rng               *rand.Rand
	d, C              int
	targets           [][]int // per image, the classes of restarts 1, 2, …; nil when untargeted
	xa, grad, logits  []float32
	dlogits, deltaBuf []float32
}

func newPGDState(m Classifier, opts PGDOptions) *pgdState {
	return &pgdState{m: m, opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 0x5eed_9d6)), d: m.InputSize(), C: m.Classes()}
}

// target is the class restart k of image i pushes up, or −1 for the
// max-margin objective.
func (a *pgdState) target(i, k int) int {
	if k == 0 || a.targets == nil || k > len(a.targets[i]) {
		return -1
	}
	return a.targets[i][k-1]
}

// run attacks images lo..hi-1, all restarts in one batch of rows.
func (a *pgdState) run(x []float32, radius []float64, out []AttackResult, lo, hi int) error {
	d, C, R := a.d, a.C, a.opts.Restarts
	rows := (hi - lo) * R
	a.xa = grow(a.xa, rows*d)
	a.grad = grow(a.grad, rows*d)
	a.logits = grow(a.logits, rows*C)
	a.dlogits = grow(a.dlogits, rows*C)
	a.deltaBuf = grow(a.deltaBuf, d)
	done := make([]bool, hi-lo)
	for i := lo; i < hi; i++ {
		done[i-lo] = radius[i] == 0
		x0 := x[i*d : (i+1)*d]
		for k := range R {
			row := a.xa[((i-lo)*R+k)*d : ((i-lo)*R+k+1)*d]
			copy(row, x0)
			if k > 0 && radius[i] > 0 {
				a.randomStart(row, x0, radius[i])
			}
		}
	}
	step := a.opts.StepScale / float64(a.opts.Steps)
	for s := 0; ; s++ {
		if err := a.m.Logits(a.logits, a.xa[:rows*d], rows); err != nil {
			return fmt.Errorf("step %d: logits: %w", s, err)
		}
		clear(a.dlogits[:rows*C])
		left := 0
		for row := range rows {
			i := lo + row/R
			if done[i-lo] {
				continue
			}
			y := a.logits[row*C : (row+1)*C]
			c := out[i].Clean
			p, err := Argmax(y)
			if err != nil {
				return fmt.Errorf("step %d, restart %d: %w", s, row%R, err)
			}
			mg := -marginOf(y, c)
			xr := a.xa[row*d : (row+1)*d]
			if p != c {
				out[i] = AttackResult{Success: true, Clean: c, Prediction: p, Adversarial: slices.Clone(xr),
					Margin: mg, Distance: a.dist(xr, x[i*d:(i+1)*d])}
				done[i-lo] = true
				continue
			}
			if mg > out[i].Margin {
				copy(out[i].Adversarial, xr)
				out[i].Margin = mg
				out[i].Distance = a.dist(xr, x[i*d:(i+1)*d])
			}
			left++
			j := a.target(i, row%R)
			if j < 0 {
				j = runnerUp(y, c)
			}
			a.dlogits[row*C+j] = 1
			a.dlogits[row*C+c] = -1
		}
		if left == 0 || s == a.opts.Steps {
			return nil
		}
		if err := a.m.InputGradient(a.grad, a.xa[:rows*d], a.dlogits[:rows*C], rows); err != nil {
			return fmt.Errorf("step %d: input gradient: %w", s, err)
		}
		for row := range rows {
			i := lo + row/R
			if done[i-lo] {
				continue
			}
			a.ascend(a.xa[row*d:(row+1)*d], a.grad[row*d:(row+1)*d], x[i*d:(i+1)*d], radius[i], step*radius[i])
		}
	}
}

// dualNorm is ‖g‖₂ for l2 and ‖g‖₁ for linf.
func dualNorm(g []float32, norm string) float64 {
	var s float64
	if norm == "linf" {
		for _, v := range g {
			s += math.Abs(float64(v))
		}
		return s
	}
	for _, v := range g {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

// ascend moves xr by alpha along the normalised gradient g (its sign under
// linf), then back into the ball of radius r around x0 and the box.
func (a *pgdState) ascend(xr, g, x0 []float32, r, alpha float64) {
	if a.opts.Norm == "linf" {
		for t, v := range g {
			switch {
			case v > 0:
				xr[t] = float32(float64(xr[t]) + alpha)
			case v < 0:
				xr[t] = float32(float64(xr[t]) - alpha)
			}
		}
		projectInf(xr, x0, r)
		return
	}
	var gn float64
	for _, v := range g {
		gn += float64(v) * float64(v)
	}
	if gn == 0 {
		return
	}
	s := alpha / math.Sqrt(gn)
	delta := a.deltaBuf
	for t := range xr {
		delta[t] = float32(float64(xr[t]) - float64(x0[t]) + s*float64(g[t]))
	}
	project(xr, x0, delta, r)
}

// randomStart sets xr to a uniform random point of the ball of radius r
// around x0, clipped to the box.
func (a *pgdState) randomStart(xr, x0 []float32, r float64) {
	if a.opts.Norm == "linf" {
		for t, v := range x0 {
			xr[t] = float32(float64(v) + r*(2*a.rng.Float64()-1))
		}
		projectInf(xr, x0, r)
		return
	}
	delta := a.deltaBuf
	var dn float64
	for t := range delta {
		v := a.rng.NormFloat64()
		delta[t] = float32(v)
		dn += v * v
	}
	u := r * math.Pow(a.rng.Float64(), 1/float64(len(delta))) / math.Sqrt(dn)
	for t, v := range delta {
		delta[t] = float32(float64(v) * u)
	}
	project(xr, x0, delta, r)
}

// project writes clip(x0 + s·δ) to xr with the largest s <= 1 for which the
// float32 result lies within distance r of x0. Starting from the scale that
// puts s·δ on the sphere, it shrinks s while rounding leaves the ball, and
// falls back to x0 itself.
func project(xr, x0, delta []float32, r float64) {
	var dn float64
	for _, v := range delta {
		dn += float64(v) * float64(v)
	}
	s := 1.0
	if dn > r*r {
		s = r / math.Sqrt(dn)
	}
	for range 8 {
		for t := range xr {
			xr[t] = min(max(float32(float64(x0[t])+s*float64(delta[t])), 0), 1)
		}
		got := dist(xr, x0)
		if got <= r {
			return
		}
		s *= r / got * (1 - 1e-6)
	}
	copy(xr, x0)
}

// projectInf clips every coordinate of xr to [x0 − r, x0 + r] ∩ [0, 1],
// rounding the float32 bounds inwards so that |xr_t − x0_t| <= r holds in
// exact arithmetic.
func projectInf(xr, x0 []float32, r float64) {
	for t, v := range x0 {
		lo, hi := float32(float64(v)-r), float32(float64(v)+r)
		if float64(v)-float64(lo) > r {
			lo = math.Nextafter32(lo, float32(math.Inf(1)))
		}
		if float64(hi)-float64(v) > r {
			hi = math.Nextafter32(hi, float32(math.Inf(-1)))
		}
		xr[t] = min(max(xr[t], lo, 0), hi, 1)
	}
}

// marginOf is y_c − max_{j≠c} y_j in float64.
func marginOf(y []float32, c int) float64 {
	return float64(y[c]) - float64(y[runnerUp(y, c)])
}

// runnerUp is the arg-max over j ≠ c.
func runnerUp(y []float32, c int) int {
	best := -1
	for j, v := range y {
		if j != c && (best < 0 || v > y[best]) {
			best = j
		}
	}
	return best
}

// dist is the distance in the attack's norm.
func (a *pgdState) dist(x, y []float32) float64 {
	if a.opts.Norm == "linf" {
		var m float64
		for t := range x {
			m = max(m, math.Abs(float64(x[t])-float64(y[t])))
		}
		return m
	}
	return dist(x, y)
}

func dist(a, b []float32) float64 {
	var s float64
	for t := range a {
		v := float64(a[t]) - float64(b[t])
		s += v * v
	}
	return math.Sqrt(s)
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// checkImages validates a batch of n images of d values in [0,1] for a model
// of C >= 2 classes.
func checkImages(x []float32, n, d, C int) error {
	if C < 2 || d < 1 {
		return fmt.Errorf("model has %d classes and input size %d: %w", C, d, ErrShape)
	}
	if len(x) != n*d {
		return fmt.Errorf("%d values for %d images of %d: %w", len(x), n, d, ErrShape)
	}
	for t, v := range x {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("image %d value %d = %v outside [0,1]", t/d, t%d, v)
		}
	}
	return nil
}

// logitsBatched fills dst (n × C) in calls of at most batch rows.
func logitsBatched(m Classifier, dst, x []float32, n, batch int) error {
	d, C := m.InputSize(), m.Classes()
	for lo := 0; lo < n; lo += batch {
		hi := min(n, lo+batch)
		if err := m.Logits(dst[lo*C:hi*C], x[lo*d:hi*d], hi-lo); err != nil {
			return fmt.Errorf("rows %d..%d: %w", lo, hi-1, err)
		}
	}
	return nil
}

// CheckCertificates attacks every image within shrink·CertifiedRadius of
// its certificate (shrink < 1, e.g. 0.99, leaves room for float rounding),
// in the norm of opts, and returns the indices of images whose prediction
// PGD changed. Each is a counterexample: the certificate's bound is wrong,
// e.g. an unconverged power iteration. Images with radius 0 are skipped;
// infinite radii are attacked at the box diameter. results must come from the same
// model on the same images (checked via the clean prediction).
func CheckCertificates(m Classifier, x []float32, results []Result, shrink float64, opts PGDOptions) ([]int, error) {
	if !(shrink > 0 && shrink <= 1) {
		return nil, fmt.Errorf("check certificates: shrink %v, want in (0,1]", shrink)
	}
	radii := make([]float64, len(results))
	for i, r := range results {
		if math.IsNaN(r.Radius) || r.Radius < 0 || math.IsNaN(r.IBP) || r.IBP < 0 {
			return nil, fmt.Errorf("check certificates: result %d has radius %v, interval radius %v", i, r.Radius, r.IBP)
		}
		radii[i] = shrink * r.CertifiedRadius()
	}
	att, err := PGD(m, x, radii, opts)
	if err != nil {
		return nil, fmt.Errorf("check certificates: %w", err)
	}
	var broken []int
	for i, a := range att {
		if a.Clean != results[i].Prediction {
			return nil, fmt.Errorf("check certificates: image %d: model predicts %d, result says %d: %w",
				i, a.Clean, results[i].Prediction, ErrShape)
		}
		if a.Success {
			broken = append(broken, i)
		}
	}
	return broken, nil
}

// ProbeOptions configures [LipschitzProbe]. Zero fields take the defaults.
type ProbeOptions struct {
	// Pairs is the number of random pairs (default 1000).
	Pairs int
	// Radius > 0 draws x' = clip(x + δ) with ‖δ‖₂ uniform in (0, Radius]
	// (local slopes, where certificates live); 0 draws x' as a second random
	// image (global slopes).
	Radius float64
	// Tolerance is the relative slack before a ratio counts as a violation
	// (default 1e-4, for float32 logits).
	Tolerance float64
	// BatchSize is the number of rows per model call (default 256).
	BatchSize int
	// Seed makes the pairs reproducible.
	Seed uint64
}

// ProbeResult is the outcome of [LipschitzProbe].
type ProbeResult struct {
	Pairs int
	// WorstRatio is max |Δ(y_c − y_j)| / (K_cj·‖x − x'‖₂) over pairs and
	// classes c < j; a sound bound keeps it <= 1. +Inf when a margin with
	// K_cj = 0 changed.
	WorstRatio float64
	// WorstPair, WorstC and WorstJ locate the worst ratio.
	WorstPair int
	WorstC    int
	WorstJ    int
	// Violations counts (pair, c, j) with ratio > 1 + Tolerance.
	Violations int
}

// LipschitzProbe checks a stated bound lip on the margin functions
// empirically: for random pairs (x, x') it evaluates
//
//	|(y_c − y_j)(x) − (y_c − y_j)(x')| <= K_cj · ‖x − x'‖₂
//
// for every pair of classes and reports the worst ratio of the two sides.
// The first points are drawn from the n images in x (uniformly from the box
// [0,1]^d when n = 0). A ratio above 1 proves the bound wrong; ratios far
// below 1 everywhere suggest a loose bound.
func LipschitzProbe(m Classifier, x []float32, n int, lip MarginLipschitz, opts ProbeOptions) (ProbeResult, error) {
	if opts.Pairs <= 0 {
		opts.Pairs = 1000
	}
	if opts.Tolerance <= 0 {
		opts.Tolerance = 1e-4
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	d, C := m.InputSize(), m.Classes()
	if err := checkImages(x, n, d, C); err != nil {
		return ProbeResult{}, fmt.Errorf("lipschitz probe: %w", err)
	}
	if opts.Radius < 0 || math.IsNaN(opts.Radius) || math.IsInf(opts.Radius, 0) {
		return ProbeResult{}, fmt.Errorf("lipschitz probe: radius %v, want finite and >= 0", opts.Radius)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x11b_5c0be))
	draw := func(dst []float32) {
		if n == 0 {
			for t := range dst {
				dst[t] = rng.Float32()
			}
			return
		}
		i := rng.IntN(n)
		copy(dst, x[i*d:(i+1)*d])
	}
	res := ProbeResult{Pairs: opts.Pairs}
	batch := max(1, opts.BatchSize/2)
	pts := make([]float32, 2*batch*d) // first batch rows: x, next: x'
	logits := make([]float32, 2*batch*C)
	delta := make([]float32, d)
	for lo := 0; lo < opts.Pairs; lo += batch {
		b := min(batch, opts.Pairs-lo)
		for p := range b {
			a := pts[p*d : (p+1)*d]
			a2 := pts[(b+p)*d : (b+p+1)*d]
			draw(a)
			if opts.Radius == 0 {
				draw(a2)
				continue
			}
			var dn float64
			for t := range delta {
				v := rng.NormFloat64()
				delta[t] = float32(v)
				dn += v * v
			}
			s := opts.Radius * (1 - rng.Float64()) / math.Sqrt(dn) // (0, Radius]
			for t := range a2 {
				a2[t] = min(max(float32(float64(a[t])+s*float64(delta[t])), 0), 1)
			}
		}
		if err := m.Logits(logits[:2*b*C], pts[:2*b*d], 2*b); err != nil {
			return ProbeResult{}, fmt.Errorf("lipschitz probe: pairs %d..%d: %w", lo, lo+b-1, err)
		}
		for p := range b {
			dx := dist(pts[p*d:(p+1)*d], pts[(b+p)*d:(b+p+1)*d])
			if dx == 0 {
				continue
			}
			y, y2 := logits[p*C:(p+1)*C], logits[(b+p)*C:(b+p+1)*C]
			for c := range C {
				for j := c + 1; j < C; j++ {
					dm := math.Abs((float64(y[c]) - float64(y[j])) - (float64(y2[c]) - float64(y2[j])))
					k := lip(c, j)
					var ratio float64
					switch {
					case dm == 0:
						ratio = 0
					case k == 0:
						ratio = math.Inf(1)
					default:
						ratio = dm / (k * dx)
					}
					if ratio > 1+opts.Tolerance {
						res.Violations++
					}
					if ratio > res.WorstRatio {
						res.WorstRatio, res.WorstPair, res.WorstC, res.WorstJ = ratio, lo+p, c, j
					}
				}
			}
		}
	}
	return res, nil
}
