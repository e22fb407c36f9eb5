package models

import (
	"math/rand/v2"
	"testing"
	"time"

	"certmix/trainer/nn"
)

// BenchmarkLiResNetParts times the model's share of a GloroNet training step
// for L6W128 at batch 256 on 32x32x3 inputs, part by part: the tracked power
// iterations (10 per layer), the forward pass, the backward pass and the
// backward through the power iterations (the step's loss, clipping and AdamW
// are in trainer's BenchmarkTrainStep):
//
//	go test ./trainer/models -run '^$' -bench LiResNetParts -benchtime 3x
func BenchmarkLiResNetParts(b *testing.B) {
	const n, classes = 256, 10
	rng := rand.New(rand.NewPCG(1, 2))
	m, err := NewLiResNet(6, 128, classes, 3, n, rng)
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float32, n*m.InputSize())
	for i := range x {
		x[i] = rng.Float32()
	}
	dLogits := make([]float32, n*classes)
	for i := range dLogits {
		dLogits[i] = float32(rng.NormFloat64()) / n
	}
	b.Logf("Gemm: %s", nn.GemmInfo())
	var pi, fwd, bwd, bpi time.Duration
	for b.Loop() {
		t0 := time.Now()
		k := m.SubLipschitz(10, true)
		t1 := time.Now()
		m.Forward(x, n)
		t2 := time.Now()
		m.Backward(dLogits, nil, n)
		t3 := time.Now()
		m.BackwardLipschitz(1e-3, k)
		t4 := time.Now()
		pi, fwd, bwd, bpi = pi+t1.Sub(t0), fwd+t2.Sub(t1), bwd+t3.Sub(t2), bpi+t4.Sub(t3)
	}
	per := func(d time.Duration) float64 { return d.Seconds() * 1e3 / float64(b.N) }
	b.ReportMetric(per(pi), "ms/power")
	b.ReportMetric(per(fwd), "ms/forward")
	b.ReportMetric(per(bwd), "ms/backward")
	b.ReportMetric(per(bpi), "ms/power-backward")
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "images/s")
}
