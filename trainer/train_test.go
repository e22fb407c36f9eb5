package trainer

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"

	"certmix/certifier"
	"certmix/shards"
	"certmix/trainer/checkpoint"
	"certmix/trainer/nn"
	"certmix/trainer/optim"
)

// toyBatches makes batch s from the step alone: two classes, images whose
// brightness tells the class, so a tiny model learns it in a few dozen steps.
type toyBatches struct {
	step int64
	n    int
}

func toyBatch(step int64, n int, seed uint64) Batch {
	rng := rand.New(rand.NewPCG(seed, uint64(step)))
	b := Batch{Step: step, Images: make([]byte, n*32*32), Labels: make([]int16, n), Height: 32, Width: 32, Channels: 1}
	for i := range n {
		c := rng.IntN(2)
		b.Labels[i] = int16(c)
		base := 60 + 130*c
		for p := range 1024 {
			b.Images[i*1024+p] = byte(base + rng.IntN(40) - 20)
		}
	}
	return b
}

func (t *toyBatches) Next(ctx context.Context) (Batch, error) {
	b := toyBatch(t.step, t.n, 1)
	t.step++
	return b, nil
}

func (t *toyBatches) State() json.RawMessage {
	d, _ := json.Marshal(t.step)
	return d
}

func (t *toyBatches) StepsPerEpoch() int64 { return 10 }

func tinyConfig() Config {
	return Config{Depth: 1, Width: 4, Classes: 2, Channels: 1, Batch: 16, Epochs: 4, StepsPerEpoch: 10,
		LR: 1e-2, WeightDecay: 1e-4, Clip: 3, WarmupEpochs: 1, Eps: 0.1, PowerIters: 10, Seed: 3}
}

func run(t *testing.T, tr *Trainer, data *toyBatches, steps int) []float64 {
	var losses []float64
	for range steps {
		b, _ := data.Next(context.Background())
		r, err := tr.TrainStep(b)
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, r.Loss)
	}
	return losses
}

// TestResumeEqualsUninterrupted: a GloroNet run stopped at a checkpoint and
// resumed has the same loss curve and ends with the same weights and power
// vectors as one that never stopped.
func TestResumeEqualsUninterrupted(t *testing.T) {
	resumeEqualsUninterrupted(t, tinyConfig(), 12, 18)
}

// resumeEqualsUninterrupted trains cfg for before+after steps without a
// stop, and again stopped after before steps, certified (an evaluation
// between epochs), saved, loaded and continued from the saved batches'
// state; it fails unless the loss curves, the weights and the buffers are
// equal bit for bit.
func resumeEqualsUninterrupted(t *testing.T, cfg Config, before, after int) {
	t.Helper()
	ctx := context.Background()
	full, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := run(t, full, &toyBatches{n: 16}, before+after)

	first, _ := New(cfg)
	data := &toyBatches{n: 16}
	got := run(t, first, data, before)
	if _, err := first.Model.Certify(make([]float32, 4*first.Model.InputSize()), make([]int, 4), cfg.Eps); err != nil {
		t.Fatal(err)
	}
	store, _ := shards.NewLocal(t.TempDir())
	if err := first.Save(ctx, store, "ckpt.safetensors", data.State()); err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Read(ctx, store, "ckpt.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	resumed, state, err := Load(ck)
	if err != nil {
		t.Fatal(err)
	}
	var step int64
	if err := json.Unmarshal(state, &step); err != nil {
		t.Fatal(err)
	}
	got = append(got, run(t, resumed, &toyBatches{step: step, n: 16}, after)...)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("step %d: loss %v after resume, %v uninterrupted", i+1, got[i], want[i])
		}
	}
	for i, p := range resumed.Model.Params() {
		if !slices.Equal(p.W, full.Model.Params()[i].W) {
			t.Fatalf("%s differs after resume", p.Name)
		}
	}
	for i, b := range resumed.Model.Buffers() {
		if !slices.Equal(b.Data, full.Model.Buffers()[i].Data) {
			t.Fatalf("%s differs after resume", b.Name)
		}
	}
}

// TestCertificatesSurviveAttacks trains a tiny model until it certifies
// some points, then a PGD attack at 0.99 of each certified radius never
// changes a prediction, and no pair of inputs violates the margin bounds.
func TestCertificatesSurviveAttacks(t *testing.T) {
	cfg := tinyConfig()
	cfg.Epochs = 8
	tr, _ := New(cfg)
	run(t, tr, &toyBatches{n: 16}, 80)
	test := toyBatch(10_000, 16, 7)
	x := make([]float32, 16*1024)
	toInput(x, test.Images, 16, 32, 32, 1, 1)
	labels := make([]int, 16)
	for i, l := range test.Labels {
		labels[i] = int(l)
	}
	cert, err := tr.Model.Certify(x, labels, cfg.Eps)
	res, k := cert.Results, cert.K
	if err != nil {
		t.Fatal(err)
	}
	certified := 0
	for _, r := range res {
		if r.Correct() && r.Radius > 0 {
			certified++
		}
	}
	if certified < 8 {
		t.Fatalf("only %d of 16 test points certified at any radius: the toy model did not learn", certified)
	}
	broken, err := certifier.CheckCertificates(tr.Model, x, res, 0.99, certifier.PGDOptions{Steps: 100, Restarts: 3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(broken) > 0 {
		t.Fatalf("PGD broke the certificates of images %v", broken)
	}
	g, err := certifier.NewGloRo(k, tr.Model.(*GloroModel).Net.HeadRows(), 2)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := certifier.LipschitzProbe(tr.Model, x, 16, g.MarginLipschitz, certifier.ProbeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if probe.WorstRatio > 1 {
		t.Fatalf("a margin changed by %.3f of its bound K·‖ŵ_c−ŵ_j‖·‖x−x'‖", probe.WorstRatio)
	}
}

// BenchmarkTrainStep times one GloroNet training step (power iterations,
// forward, EMMA loss, backward, clipping, AdamW) of L6W128 at batch 256 on
// 32x32x3 inputs:
//
//	go test ./trainer -run '^$' -bench TrainStep -benchtime 3x
func BenchmarkTrainStep(b *testing.B) {
	cfg, _ := Preset("gloro-xs")
	cfg.StepsPerEpoch = 196
	tr, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	batch := Batch{Images: make([]byte, 256*3072), Labels: make([]int16, 256), Height: 32, Width: 32, Channels: 3}
	for i := range batch.Images {
		batch.Images[i] = byte(rng.IntN(256))
	}
	for i := range batch.Labels {
		batch.Labels[i] = int16(rng.IntN(10))
	}
	b.ResetTimer()
	for range b.N {
		if _, err := tr.TrainStep(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "images/s")
}

// TestEvaluationDoesNotChangeTraining: certifying between steps (500
// power iterations and more) leaves the run as it would have been.
func TestEvaluationDoesNotChangeTraining(t *testing.T) {
	plain, _ := New(tinyConfig())
	want := run(t, plain, &toyBatches{n: 16}, 20)
	evaluated, _ := New(tinyConfig())
	data := &toyBatches{n: 16}
	got := run(t, evaluated, data, 10)
	test := toyBatch(5000, 16, 9)
	x := make([]float32, 16*1024)
	toInput(x, test.Images, 16, 32, 32, 1, 1)
	if _, err := evaluated.Model.Certify(x, make([]int, 16), 0.1); err != nil {
		t.Fatal(err)
	}
	got = append(got, run(t, evaluated, data, 10)...)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("step %d: loss %v with an evaluation after step 10, %v without", i+1, got[i], want[i])
		}
	}
}

// TestNoDecayParamsAreNotDecayed: AdamW's decoupled decay skips parameters
// marked NoDecay and shrinks the others by lr·wd.
func TestNoDecayParamsAreNotDecayed(t *testing.T) {
	a, b := nn.NewParam("a", 2), nn.NewParam("b", 2)
	a.W[0], a.W[1], b.W[0], b.W[1] = 1, 2, 1, 2
	b.NoDecay = true
	o, err := optim.New(optim.Config{}, []*nn.Param{a, b}, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	o.Update([]*nn.Param{a, b}, 0.1, 1) // zero gradients: only the decay moves weights
	if a.W[0] != 0.95 || a.W[1] != 1.9 || b.W[0] != 1 || b.W[1] != 2 {
		t.Fatalf("after one step with zero gradients: a %v (want [0.95 1.9]), b %v (want [1 2])", a.W, b.W)
	}
}
