package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"

	"certmix/certifier"
	"certmix/trainer/models"
	"certmix/trainer/nn"
)

// The l_inf architectures (l_inf-dist Net, zbh2047/L_inf-dist-net-v2).
const (
	ArchLinfDist = "linfdist" // l_inf-dist Net (zbh2047/L_inf-dist-net-v2)
	ArchSortNet  = "sortnet"  // SortNet (zbh2047/SortNet)
)

// DistConfig holds the settings of l_inf-dist Net and SortNet that Config's
// generic fields do not cover.
type DistConfig struct {
	// Loss is "hinge" (Config A, with HingeMix) or "mixture" (SortNet and
	// Config B: the clipped hinge plus lambda·CE, lambda decaying from
	// Lambda0 to LambdaEnd with the p schedule).
	Loss               string  `json:"loss"`
	HingeMix           float64 `json:"hinge_mix,omitempty"`
	Lambda0, LambdaEnd float64 `json:",omitempty"`
	// EpsTrain is the radius of the training margins, in pixel units.
	EpsTrain float64 `json:"eps_train"`
	// PStart and PEnd are p's schedule, rising per iteration from the
	// fraction PRampStart of the run to PRampEnd, then inf (the authors' create_schedule).
	PStart, PEnd         float64
	PRampStart, PRampEnd float64
	// Identity is the identity init value of the hidden layers (10; 0 none).
	Identity float64 `json:",omitempty"`
	// Scalar adds the learnable logit scale of the cross-entropy term.
	Scalar bool `json:",omitempty"`
	// KeepProb is SortNet's keep-probability q (0.85; 1 for SortNet w/o
	// dropout); TopK (10) and Group (32) as in SortNet's sort_neuron and norm_dist module.
	KeepProb    float64 `json:",omitempty"`
	TopK, Group int     `json:",omitempty"`
	// Mean (per channel) and Std normalise the inputs; empty: by channel
	// count, see distNormalization.
	Mean []float64 `json:",omitempty"`
	Std  float64   `json:",omitempty"`
}

// distNormalization is the input normalisation of the l_inf models when
// the configuration names none: CIFAR-10's channel means with the single std
// 0.2009 of the authors' code (the authors' dataset.py) for 3 channels, and Fashion-MNIST's
// mean 0.2860 and std 0.3530 (of its 28x28 training images) for 1 channel.
func distNormalization(channels int) (mean []float64, std float64, err error) {
	switch channels {
	case 3:
		return []float64{0.4914, 0.4822, 0.4465}, 0.2009, nil
	case 1:
		return []float64{0.2860}, 0.3530, nil
	}
	return nil, 0, fmt.Errorf("no default normalisation for %d channels: set dist.Mean and dist.Std", channels)
}

// LinfDistModel is l_inf-dist Net: a DistNet of l_inf-dist units trained with
// the hinge or mixture loss under the p schedule and certified by interval
// bound propagation (the authors' certified_test).
type LinfDistModel struct {
	Net  *models.DistNet
	cfg  Config
	d    DistConfig
	std  float64
	dlog []float32
	box  [2][]float32
}

// SortNetModel is SortNet: LinfModel with sort units in layers 2..Depth,
// trained through random input subsets, whose running means are
// recalibrated with inference units before evaluation (the authors' update_bn).
type SortNetModel struct{ *LinfDistModel }

func newLinf(cfg Config) (*LinfDistModel, error) {
	if cfg.Dist == nil {
		return nil, fmt.Errorf("%s: the configuration has no dist settings", cfg.Arch)
	}
	d := *cfg.Dist
	mean, std := d.Mean, d.Std
	if len(mean) == 0 {
		var err error
		if mean, std, err = distNormalization(cfg.Channels); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Arch, err)
		}
	}
	if cfg.Arch == ArchLinfDist {
		d.KeepProb = 1
	}
	if d.Loss != "hinge" && d.Loss != "mixture" {
		return nil, fmt.Errorf("%s: loss %q, want hinge or mixture", cfg.Arch, d.Loss)
	}
	if !(d.EpsTrain > 0) || !(d.PStart >= 1) || d.PEnd < d.PStart {
		return nil, fmt.Errorf("%s: eps_train %v, p from %v to %v", cfg.Arch, d.EpsTrain, d.PStart, d.PEnd)
	}
	side := cfg.InputSide()
	nc := models.DistNetConfig{Depth: cfg.Depth, Width: cfg.Width, Classes: cfg.Classes, Channels: cfg.Channels,
		Inputs: cfg.Channels * side * side, MaxBatch: cfg.Batch, Identity: float32(d.Identity), KeepProb: d.KeepProb, TopK: d.TopK, Group: d.Group,
		Std: float32(std), Scalar: d.Scalar}
	for _, v := range mean {
		nc.Mean = append(nc.Mean, float32(v))
	}
	net, err := models.NewDistNet(nc, rand.New(rand.NewPCG(cfg.Seed, 0x6c696e66)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Arch, err)
	}
	m := &LinfDistModel{Net: net, cfg: cfg, d: d, std: std, dlog: make([]float32, cfg.Batch*cfg.Classes)}
	for i := range m.box {
		m.box[i] = make([]float32, cfg.Batch*net.InputSize())
	}
	return m, nil
}

func (m *LinfDistModel) Classes() int        { return m.cfg.Classes }
func (m *LinfDistModel) InputSize() int      { return m.Net.InputSize() }
func (m *LinfDistModel) Params() []*nn.Param { return m.Net.Params() }

// Buffers are the mean shifts' running means.
func (m *LinfDistModel) Buffers() []nn.Buffer {
	names, data := m.Net.RunningMeans()
	bs := make([]nn.Buffer, len(names))
	for i := range names {
		bs[i] = nn.Buffer{Name: names[i], Data: data[i]}
	}
	return bs
}

// chunks calls f on consecutive row ranges of at most the model's batch.
func (m *LinfDistModel) chunks(n int, f func(lo, rows int)) { models.Chunks(n, m.cfg.Batch, f) }

// Logits computes the evaluation-mode logits (unscaled: the scalar enters
// only the loss).
func (m *LinfDistModel) Logits(dst, x []float32, n int) error {
	if err := checkLogits(m, dst, x, n); err != nil {
		return err
	}
	d, C := m.InputSize(), m.cfg.Classes
	m.chunks(n, func(lo, rows int) { copy(dst[lo*C:], m.Net.Eval(x[lo*d:], rows)) })
	return nil
}

// InputGradient is the evaluation-mode input gradient, for attacks.
func (m *LinfDistModel) InputGradient(dx, x, dlogits []float32, n int) error {
	if err := checkInputGradient(m, dx, x, dlogits, n); err != nil {
		return err
	}
	d, C := m.InputSize(), m.cfg.Classes
	m.chunks(n, func(lo, rows int) { m.Net.InputGradient(dx[lo*d:], x[lo*d:], dlogits[lo*C:], rows) })
	return nil
}

// Loss is one training step: p (and lambda) from the schedule, SortNet's
// input subsets drawn from the step's own seed, the forward in training
// mode, the loss at the normalised training radius, the backward.
func (m *LinfDistModel) Loss(x []float32, labels []int, n int, at Progress) (LossReport, error) {
	if err := checkLoss(m, x, labels, n, m.cfg.Batch); err != nil {
		return LossReport{}, err
	}
	d, C := m.d, m.cfg.Classes
	p, r := pSchedule(at, d.PStart, d.PEnd, d.PRampStart, d.PRampEnd)
	rng := at.Rand()
	for _, mask := range m.Net.Masks {
		if mask != nil {
			mask.Draw(rng, n, d.KeepProb)
		}
	}
	g := m.Net.Forward(x, n, p)
	eps := d.EpsTrain / m.std
	dg := m.dlog[:n*C]
	rep := LossReport{Values: map[string]float64{"inv_p": 1 / p}} // 0 at p = inf, which JSON cannot hold
	switch d.Loss {
	case "hinge":
		rep.Loss = linfHinge(g, labels, C, eps, d.HingeMix, dg)
	default:
		lambda := lambdaSchedule(d.Lambda0, d.LambdaEnd, r)
		s := 1.0
		if m.Net.Scalar != nil {
			s = float64(m.Net.Scalar.W[0])
		}
		var ds float64
		rep.Loss, ds = linfMixture(g, labels, C, eps, lambda, s, dg)
		if m.Net.Scalar != nil {
			m.Net.Scalar.G[0] += float32(ds)
		}
		rep.Values["lambda"] = lambda
	}
	m.Net.Backward(dg, n)
	return rep, nil
}

// roundingAllowance bounds how far float32 rounding can move a margin of
// the network (two logits, at the image and at any point within the radius)
// for an image whose values are at most a in magnitude: every layer rounds
// each of its at most TopK + 2 chained operations by 2^-24 relative, the
// errors pass through 1-Lipschitz layers, and the normalisation adds two.
// It is subtracted from the margin before the Lipschitz radius is taken.
func (m *LinfDistModel) roundingAllowance(a float32) float64 {
	ops := float64(m.Net.Cfg.TopK + 2)
	return 4 * float64(m.Net.Cfg.Depth+1) * ops * 0x1p-24 * (float64(a) + 1)
}

// Certify computes every image's certificate: the prediction, the Lipschitz
// radius r = std·(g_c - max_{j≠c} g_j)/2 in pixel units (the authors' certified_test; the
// margin less a float32 rounding allowance), and, when eps > 0, the interval
// bound propagation verdict at eps over the box [x - eps, x + eps] ∩ [0,1]
// (IBP = eps when every other logit's upper bound is below the prediction's
// lower bound).
func (m *LinfDistModel) Certify(x []float32, labels []int, eps float64) (Certificate, error) {
	if err := checkCertify(m, x, labels); err != nil {
		return Certificate{}, err
	}
	n, d, C := len(labels), m.InputSize(), m.cfg.Classes
	if eps < 0 || math.IsNaN(eps) {
		return Certificate{}, fmt.Errorf("certify: eps %v", eps)
	}
	res := make([]certifier.Result, n)
	var err error
	m.chunks(n, func(lo, rows int) {
		if err != nil {
			return
		}
		g := m.Net.Eval(x[lo*d:], rows)
		for b := range rows {
			y := g[b*C : (b+1)*C]
			c, second := 0, -1
			for j, v := range y {
				if math.IsNaN(float64(v)) {
					err = fmt.Errorf("certify: image %d: NaN logit", lo+b)
					return
				}
				if v > y[c] {
					c = j
				}
			}
			for j, v := range y {
				if j != c && (second < 0 || v > y[second]) {
					second = j
				}
			}
			margin := float64(y[c]) - float64(y[second]) - m.roundingAllowance(m.Net.MaxActivation(b))
			res[lo+b] = certifier.Result{Label: labels[lo+b], Prediction: c, Radius: max(0, m.std*margin/2)}
		}
		if eps == 0 {
			return
		}
		blo, bhi := m.box[0][:rows*d], m.box[1][:rows*d]
		for k, v := range x[lo*d : (lo+rows)*d] {
			blo[k] = float32(max(float64(v)-eps, 0))
			bhi[k] = float32(min(float64(v)+eps, 1))
		}
		gLo, gHi := m.Net.Bounds(blo, bhi, rows)
		for b := range rows {
			c := res[lo+b].Prediction
			ok := true
			for j := range C {
				if j != c && !(gHi[b*C+j] < gLo[b*C+c]) {
					ok = false
				}
			}
			if ok {
				res[lo+b].IBP = eps
			}
		}
	})
	if err != nil {
		return Certificate{}, err
	}
	return Certificate{Results: res, Norm: "linf", K: 1}, nil
}

// recalibrate recomputes the running means with inference units on n
// training images (the authors' update_bn); certmix calls it before every evaluation.
func (m *SortNetModel) Recalibrate(x []float32, n int) error {
	if len(x) < n*m.InputSize() || n < 1 {
		return fmt.Errorf("recalibrate: %d values for %d images: %w", len(x), n, certifier.ErrShape)
	}
	m.Net.Recalibrate(x, n)
	return nil
}
