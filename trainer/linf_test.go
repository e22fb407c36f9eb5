package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"certmix/certifier"
	"certmix/trainer/nn"
)

// TestLinfLossGrad: the hinge and mixture losses' gradients (logits and
// scalar) equal central finite differences.
func TestLinfLossGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const n, C, eps = 6, 5, 0.3
	g := make([]float32, n*C)
	for i := range g {
		g[i] = float32(rng.NormFloat64() * 0.4)
	}
	labels := []int{0, 1, 2, 3, 4, 0}
	dg := make([]float32, n*C)
	scratch := make([]float32, n*C)
	for _, loss := range []string{"hinge", "mixture"} {
		const s, lambda = 1.7, 0.3
		eval := func(g []float32, s float64) float64 {
			if loss == "hinge" {
				return linfHinge(g, labels, C, eps, 0.25, scratch)
			}
			l, _ := linfMixture(g, labels, C, eps, lambda, s, scratch)
			return l
		}
		var ds float64
		if loss == "hinge" {
			linfHinge(g, labels, C, eps, 0.25, dg)
		} else {
			_, ds = linfMixture(g, labels, C, eps, lambda, s, dg)
		}
		const h = 1e-3
		for i := range g {
			g0 := g[i]
			g[i] = g0 + h
			lp := eval(g, s)
			g[i] = g0 - h
			lm := eval(g, s)
			g[i] = g0
			num := (lp - lm) / (2 * float64(float32(g0+h)-float32(g0-h)) / 2)
			if !(math.Abs(num-float64(dg[i])) <= 1e-3+1e-2*math.Abs(num)) { // NaN fails
				t.Errorf("%s: dL/dg[%d] = %v, finite difference %v", loss, i, dg[i], num)
			}
		}
		if loss == "mixture" {
			num := (eval(g, s+1e-4) - eval(g, s-1e-4)) / 2e-4
			if !(math.Abs(num-ds) <= 1e-4+1e-3*math.Abs(num)) {
				t.Errorf("dL/ds = %v, finite difference %v", ds, num)
			}
		}
	}
}

// TestLinfHingeEdges: the hinge loss and its gradient where no margin is
// positive (a well-classified image, a margin of exactly 0: zero loss and
// zero gradient, as torch's relu, whose gradient at 0 is 0), and both
// losses write their gradient whatever dg held before.
func TestLinfHingeEdges(t *testing.T) {
	const C, eps = 3, 0.25
	for _, tc := range []struct {
		name string
		g    []float32 // one image, label 0
	}{
		{"well classified", []float32{1, 0, -0.5}},
		{"margin exactly 0", []float32{0.5, 0, 0}}, // (0 − 0.5 + 2·0.25)/(2·0.25) = 0
	} {
		dg := []float32{7, 7, 7}
		if loss := linfHinge(tc.g, []int{0}, C, eps, 0.25, dg); loss != 0 || dg[0] != 0 || dg[1] != 0 || dg[2] != 0 {
			t.Errorf("%s: loss %v, dL/dg %v; want 0 and zeros", tc.name, loss, dg)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 4
	g := make([]float32, n*C)
	for i := range g {
		g[i] = float32(rng.NormFloat64() * 0.4)
	}
	labels := []int{0, 1, 2, 0}
	for _, loss := range []string{"hinge", "mixture"} {
		run := func(dg []float32) {
			if loss == "hinge" {
				linfHinge(g, labels, C, eps, 0.25, dg)
			} else {
				linfMixture(g, labels, C, eps, 0.3, 1.7, dg)
			}
		}
		clean, dirty := make([]float32, n*C), make([]float32, n*C)
		for i := range dirty {
			dirty[i] = float32(i) - 5
		}
		run(clean)
		run(dirty)
		if !slices.Equal(clean, dirty) {
			t.Errorf("%s: dL/dg into a used buffer %v, into zeros %v", loss, dirty, clean)
		}
	}
}

// refMixture is the mixture loss as documented, term by term in float64:
// mean_b max_j clip(m_j, 0, 1) + lambda·mean_b CE(s·g_b, y_b), with its
// gradients; the hinge's gradient goes to the first largest margin, and
// to none where it is 0 or clipped at 1.
func refMixture(g []float32, labels []int, C int, eps, lambda, s float64) (loss float64, dg []float64, ds float64) {
	n := float64(len(labels))
	dg = make([]float64, len(g))
	for b, y := range labels {
		row := g[b*C : (b+1)*C]
		best, at := 0.0, -1
		for j := range C {
			if j == y {
				continue
			}
			m := (float64(row[j]) - float64(row[y]) + 2*eps) / (2 * eps)
			if c := min(max(m, 0), 1); c > best {
				best, at = c, j
			}
		}
		loss += best / n
		if at >= 0 && best < 1 {
			dg[b*C+at] += 1 / (2 * eps) / n
			dg[b*C+y] -= 1 / (2 * eps) / n
		}
		var sum float64
		for j := range C {
			sum += math.Exp(s * float64(row[j]))
		}
		loss += lambda * (math.Log(sum) - s*float64(row[y])) / n
		for j := range C {
			p := math.Exp(s*float64(row[j])) / sum
			if j == y {
				p--
			}
			dg[b*C+j] += lambda * p * s / n
			ds += lambda * p * float64(row[j]) / n
		}
	}
	return loss, dg, ds
}

// TestLinfMixtureValues: the mixture loss, dL/dg and dL/ds equal the
// documented formula (refMixture) on images with no positive margin, a
// margin of exactly 0, a clipped margin above 1, ordinary margins, and on
// random logits; large logits (s·g = 800) give the finite values the
// formula has (the cross-entropy computed without overflow).
func TestLinfMixtureValues(t *testing.T) {
	const C, eps, lambda, s = 3, 0.25, 0.4, 1.5
	g := []float32{
		1, 0, -0.5, // well classified: no positive margin
		0.5, 0, 0, // margin exactly 0 (j = 1, 2)
		0, 1, 0.2, // margin (1 + 0.5)/0.5 = 3, clipped to 1
		0.3, 0.1, 0.25, // margins 0.6 and 0.9: the hinge takes j = 2
	}
	labels := []int{0, 0, 0, 0}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 8 {
		for range C {
			g = append(g, float32(rng.NormFloat64()*0.3))
		}
		labels = append(labels, rng.IntN(C))
	}
	check := func(name string, g []float32, labels []int, s float64, want float64, wantDG []float64, wantDS float64) {
		t.Helper()
		dg := make([]float32, len(g))
		loss, ds := linfMixture(g, labels, C, eps, lambda, s, dg)
		// !(x <= tol), so that NaN fails.
		if !(math.Abs(loss-want) <= 1e-12*(1+math.Abs(want))) {
			t.Errorf("%s: loss %.17g, want %.17g", name, loss, want)
		}
		if !(math.Abs(ds-wantDS) <= 1e-6*(1+math.Abs(wantDS))) {
			t.Errorf("%s: dL/ds %v, want %v", name, ds, wantDS)
		}
		for i := range dg {
			if !(math.Abs(float64(dg[i])-wantDG[i]) <= 1e-6*(1+math.Abs(wantDG[i]))) {
				t.Errorf("%s: dL/dg[%d] = %v, want %v", name, i, dg[i], wantDG[i])
			}
		}
	}
	for b := range labels {
		row, y := g[b*C:(b+1)*C], labels[b:b+1]
		want, wantDG, wantDS := refMixture(row, y, C, eps, lambda, s)
		check(fmt.Sprintf("image %d %v label %d", b, row, y[0]), row, y, s, want, wantDG, wantDS)
	}
	want, wantDG, wantDS := refMixture(g, labels, C, eps, lambda, s)
	check("the batch", g, labels, s, want, wantDG, wantDS)
	// s·g = 800 overflows exp: CE(800·[1, 0.5, 0], 0) = log(1 + e^-400 + e^-800) = 0 to double
	// precision, the margins are (0.5 − 1 + 0.5)/0.5 = 0 and −1.
	check("large logits", []float32{1, 0.5, 0}, []int{0}, 800, 0, []float64{0, 0, 0}, 0)
}

// TestPSchedule: p is p_start until the ramp, p_end^r·p_start^(1-r) on it,
// inf after (the authors' create_schedule); lambda follows r.
func TestPSchedule(t *testing.T) {
	at := func(step int64) Progress { return Progress{Step: step, Total: 1000, StepsPerEpoch: 10} }
	tests := []struct {
		step  int64
		p, r  float64
		isInf bool
	}{
		{1, 8, 0, false}, {101, 8, 0, false}, {426, 8 * math.Pow(125, 0.5), 0.5, false}, {750, 8 * math.Pow(125, 649.0/650), 649.0 / 650, false},
		{751, 0, 1, true}, {1000, 0, 1, true},
	}
	for _, tc := range tests {
		p, r := pSchedule(at(tc.step), 8, 1000, 0.1, 0.75)
		if math.Abs(r-tc.r) > 1e-12 || (tc.isInf != math.IsInf(p, 1)) || (!tc.isInf && math.Abs(p-tc.p) > 1e-9*tc.p) {
			t.Errorf("step %d: p %v, r %v; want %v, %v", tc.step, p, r, tc.p, tc.r)
		}
	}
	if p, _ := pSchedule(at(1000), 8, 50, 0.1, 0.75); p != 50 {
		t.Errorf("p_end 50 < 100 stays finite: %v", p)
	}
	if p, _ := pSchedule(at(1000), 8, 100, 0.1, 0.75); !math.IsInf(p, 1) {
		t.Errorf("p_end 100 ends at p = inf: %v", p)
	}
	if p, _ := pSchedule(at(1000), 8, math.Nextafter(100, 0), 0.1, 0.75); math.IsInf(p, 0) {
		t.Errorf("p_end just below 100 stays finite: %v", p)
	}
	if l0, l1 := lambdaSchedule(0.2, 0.002, 0), lambdaSchedule(0.2, 0.002, 1); l0 != 0.2 || math.Abs(l1-0.002) > 1e-15 {
		t.Errorf("lambda %v .. %v", l0, l1)
	}
}

// tinyDist is a CPU-sized l_inf-dist Net or SortNet for tests: 1x32x32
// inputs, depth 3, width 24, two classes, p rising to inf over the first
// half of total steps.
func tinyDist(t *testing.T, arch string, total int64) (*Trainer, Config) {
	t.Helper()
	name := "linfdist"
	if arch == ArchSortNet {
		name = "sortnet"
	}
	cfg, err := Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Depth, cfg.Width, cfg.Classes, cfg.Channels, cfg.Batch = 3, 24, 2, 1, 64
	cfg.Epochs, cfg.StepsPerEpoch, cfg.LR, cfg.Seed = total/10, 10, 0.02, 7
	cfg.Dist.PRampStart, cfg.Dist.PRampEnd = 0.1, 0.5
	cfg.Dist.EpsTrain = 0.1
	if arch == ArchSortNet {
		cfg.Dist.KeepProb, cfg.Dist.Group = 0.8, 16
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr, cfg
}

// blobs draws n two-class images: class 0 around 0.3, class 1 around 0.7,
// each pixel ±0.15 uniform, in the trainer's uint8 NHWC layout.
func blobs(rng *rand.Rand, n int) ([]byte, []int16) {
	img, lab := make([]byte, n*1024), make([]int16, n)
	for i := range n {
		lab[i] = int16(rng.IntN(2))
		c := 0.3 + 0.4*float64(lab[i])
		for k := range 1024 {
			img[i*1024+k] = byte(255 * (c + 0.3*(rng.Float64()-0.5)))
		}
	}
	return img, lab
}

func toInputs(t *testing.T, img []byte, lab []int16) ([]float32, []int) {
	n := len(lab)
	x := make([]float32, n*1024)
	if err := toInput(x, img, n, 32, 32, 1, 1); err != nil {
		t.Fatal(err)
	}
	labels := make([]int, n)
	for i, l := range lab {
		labels[i] = int(l)
	}
	return x, labels
}

// trainTiny trains tinyDist for total steps on blobs.
func trainTiny(t *testing.T, arch string, total int64) *Trainer {
	tr, _ := tinyDist(t, arch, total)
	rng := rand.New(rand.NewPCG(3, 3))
	for range total {
		img, lab := blobs(rng, 64)
		if _, err := tr.TrainStep(Batch{Images: img, Labels: lab, Height: 32, Width: 32, Channels: 1}); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// TestLinfCertificatesSound trains tiny l_inf-dist Nets and SortNets and
// attacks their certificates with a 50-step l_inf PGD with restarts: no
// prediction certified by interval bounds at eps changes within eps, and
// none certified by the Lipschitz radius changes within 0.99 of it. The
// attack is not toothless: at 0.45 it flips most predictions.
func TestLinfCertificatesSound(t *testing.T) {
	for _, arch := range []string{ArchLinfDist, ArchSortNet} {
		t.Run(arch, func(t *testing.T) {
			tr := trainTiny(t, arch, 60)
			if r, ok := tr.Model.(Recalibrator); ok {
				img, lab := blobs(rand.New(rand.NewPCG(5, 5)), 256)
				x, _ := toInputs(t, img, lab)
				if err := r.Recalibrate(x, 256); err != nil {
					t.Fatal(err)
				}
			}
			img, lab := blobs(rand.New(rand.NewPCG(4, 4)), 200)
			x, labels := toInputs(t, img, lab)
			const eps = 8.0 / 255
			cert, err := tr.Model.Certify(x, labels, eps)
			if err != nil {
				t.Fatal(err)
			}
			if cert.Norm != "linf" {
				t.Fatalf("norm %q", cert.Norm)
			}
			var ibp, lip int
			ibpRadii, lipRadii := make([]float64, len(labels)), make([]float64, len(labels))
			for i, r := range cert.Results {
				if r.IBP > 0 {
					ibp++
					ibpRadii[i] = r.IBP
				}
				if r.Radius > 0 {
					lip++
					lipRadii[i] = 0.99 * r.Radius
				}
			}
			t.Logf("clean %.3f, certified by intervals at 8/255: %d, Lipschitz radius > 0: %d of %d (certified accuracy %.3f)",
				certifier.CleanAccuracy(cert.Results), ibp, lip, len(labels), certifier.CertifiedAccuracy(cert.Results, eps))
			if ibp < len(labels)/2 {
				t.Fatalf("only %d of %d certified: the tiny model did not train", ibp, len(labels))
			}
			opts := certifier.PGDOptions{Norm: "linf", Steps: 50, Restarts: 4, Seed: 9}
			for what, radii := range map[string][]float64{"interval": ibpRadii, "Lipschitz": lipRadii} {
				att, err := certifier.PGD(tr.Model, x, radii, opts)
				if err != nil {
					t.Fatal(err)
				}
				for i, a := range att {
					if a.Clean != cert.Results[i].Prediction {
						t.Fatalf("image %d: the attack's clean prediction %d, the certificate's %d", i, a.Clean, cert.Results[i].Prediction)
					}
					if a.Success {
						t.Errorf("%s certificate of image %d broken at %v: prediction %d -> %d", what, i, radii[i], a.Clean, a.Prediction)
					}
				}
			}
			far := make([]float64, len(labels))
			for i := range far {
				far[i] = 0.45
			}
			att, err := certifier.PGD(tr.Model, x, far, opts)
			if err != nil {
				t.Fatal(err)
			}
			flips := 0
			for _, a := range att {
				if a.Success {
					flips++
				}
			}
			if flips < len(labels)/2 {
				t.Errorf("the attack flips only %d of %d predictions at 0.45", flips, len(labels))
			}
		})
	}
}

// TestLinfInputGradient: the evaluation-mode input gradient equals the
// directional finite differences of the logits (the network is piecewise
// linear at p = inf, so they agree away from kinks).
func TestLinfInputGradient(t *testing.T) {
	for _, arch := range []string{ArchLinfDist, ArchSortNet} {
		tr := trainTiny(t, arch, 5)
		m := tr.Model
		rng := rand.New(rand.NewPCG(6, 6))
		img, lab := blobs(rng, 4)
		x, _ := toInputs(t, img, lab)
		d, C := m.InputSize(), m.Classes()
		dl := []float32{1, -0.5, 0.3, 2, -1, 1, 0.25, -0.75}
		dx := make([]float32, len(x))
		if err := m.InputGradient(dx, x, dl, 4); err != nil {
			t.Fatal(err)
		}
		for trial := range 5 {
			v := make([]float32, len(x))
			for k := range v {
				v[k] = float32(rng.NormFloat64())
			}
			f := func(h float32) float64 {
				xp := make([]float32, len(x))
				for k := range x {
					xp[k] = x[k] + h*v[k]
				}
				y := make([]float32, 4*C)
				if err := m.Logits(y, xp, 4); err != nil {
					t.Fatal(err)
				}
				var s float64
				for k := range y {
					s += float64(dl[k]) * float64(y[k])
				}
				return s
			}
			const h = 1e-4
			num := (f(h) - f(-h)) / (2 * h)
			var an float64
			for k := range dx[:4*d] {
				an += float64(dx[k]) * float64(v[k])
			}
			if math.Abs(num-an) > 2e-2*(1+math.Abs(num)) {
				t.Errorf("%s trial %d: <grad, v> = %v, finite difference %v", arch, trial, an, num)
			}
		}
	}
}

// TestLinfStepsDeterministic: the same step of two models of one seed gives
// the same loss and gradients (SortNet's subsets come from the step's seed,
// so a resumed run draws them again), and another step draws other subsets.
func TestLinfStepsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	img, lab := blobs(rng, 64)
	x, labels := toInputs(t, img, lab)
	a, cfg := tinyDist(t, ArchSortNet, 40)
	b, _ := tinyDist(t, ArchSortNet, 40)
	at := Progress{Step: 3, Total: 40, StepsPerEpoch: 10, Seed: cfg.Seed}
	ra, err := a.Model.Loss(x, labels, 64, at)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := b.Model.Loss(x, labels, 64, at)
	if ra.Loss != rb.Loss {
		t.Fatalf("losses %v and %v", ra.Loss, rb.Loss)
	}
	for i, p := range a.Model.Params() {
		q := b.Model.Params()[i]
		for k := range p.G {
			if p.G[k] != q.G[k] {
				t.Fatalf("%s: gradients differ", p.Name)
			}
		}
	}
	nn.ZeroGrads(b.Model.Params())
	at.Step = 4
	rc, _ := b.Model.Loss(x, labels, 64, at)
	if rc.Loss == ra.Loss {
		t.Error("steps 3 and 4 drew the same subsets")
	}
}

// BenchmarkLinfTrainStep times one training step (forward, loss, backward,
// optimiser) of a 5-layer width-1024 l_inf-dist Net on 32x32x1 inputs (1024
// values: every hidden layer is 1024x1024) at batch 512, at p = 8 (most of
// a run) and at p = inf (its end), and reports images/s.
func BenchmarkLinfTrainStep(b *testing.B) {
	for _, phase := range []struct {
		name string
		step int64
	}{{"p8", 1}, {"pinf", 1000}} {
		b.Run(phase.name, func(b *testing.B) {
			cfg, _ := Preset("linfdist")
			cfg.Depth, cfg.Width, cfg.Channels, cfg.Batch = 5, 1024, 1, 512
			cfg.Epochs, cfg.StepsPerEpoch = 1, 1000
			tr, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			tr.Step = phase.step - 1
			img, lab := blobs(rand.New(rand.NewPCG(1, 1)), 512)
			batch := Batch{Images: img, Labels: lab, Height: 32, Width: 32, Channels: 1}
			for b.Loop() {
				tr.Step = phase.step - 1
				if _, err := tr.TrainStep(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(512*float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// TestSortNetRecalibrate: the recalibrated running mean is the average of
// the batch means of the evaluation units' outputs (the authors' update_bn), checked on
// the first layer over two and a half batches.
func TestSortNetRecalibrate(t *testing.T) {
	tr, cfg := tinyDist(t, ArchSortNet, 10)
	m := tr.Model.(*SortNetModel)
	img, lab := blobs(rand.New(rand.NewPCG(2, 2)), 160) // batches of 64, 64, 32
	x, _ := toInputs(t, img, lab)
	if err := m.Recalibrate(x, 160); err != nil {
		t.Fatal(err)
	}
	net := m.Net
	d := net.InputSize()
	xn, d0 := make([]float32, 64*d), make([]float32, 64*cfg.Width)
	want := make([]float64, cfg.Width)
	batches := 0
	for lo := 0; lo < 160; lo += 64 {
		rows := min(64, 160-lo)
		net.Normalize(xn, x[lo*d:], rows)
		net.Layers[0].Forward(d0, xn, rows)
		for j := range want {
			var s float64
			for b := range rows {
				s += float64(d0[b*cfg.Width+j])
			}
			want[j] += s / float64(rows)
		}
		batches++
	}
	for j, v := range net.Shifts[0].Running {
		if w := want[j] / float64(batches); math.Abs(float64(v)-w) > 1e-5*(1+math.Abs(w)) {
			t.Fatalf("unit %d: running mean %v, want the average of batch means %v", j, v, w)
		}
	}
}

// TestLinfResumeEqualsUninterrupted: l_inf-dist Net and SortNet runs
// stopped at a checkpoint and resumed have the loss curve, the weights and
// the running means of runs that never stopped (SortNet's subsets come from
// the step's seed; the running means are checkpointed buffers).
func TestLinfResumeEqualsUninterrupted(t *testing.T) {
	for _, arch := range []string{ArchLinfDist, ArchSortNet} {
		t.Run(arch, func(t *testing.T) {
			_, cfg := tinyDist(t, arch, 30)
			cfg.Batch, cfg.Width = 16, 8
			if cfg.Dist.Group > 0 {
				cfg.Dist.Group = 8
			}
			resumeEqualsUninterrupted(t, cfg, 12, 18)
		})
	}
}

// TestLinfPresets: every l_inf preset builds at a small size and takes a
// finite training step.
func TestLinfPresets(t *testing.T) {
	for _, name := range Presets() {
		cfg, _ := Preset(name)
		if cfg.Dist == nil {
			continue
		}
		cfg.Depth, cfg.Width, cfg.Classes, cfg.Channels, cfg.Batch = 3, 16, 2, 1, 16
		cfg.Epochs, cfg.StepsPerEpoch = 1, 10
		if cfg.Dist.Group > 0 {
			cfg.Dist.Group = 8
		}
		tr, err := New(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := tr.TrainStep(toyBatch(1, 16, 1)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
