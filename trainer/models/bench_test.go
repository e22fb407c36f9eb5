package models

import (
	"math/rand/v2"
	"syscall"
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
	parts := []struct {
		name      string
		run       func()
		wall, cpu time.Duration
	}{
		{name: "power", run: func() { m.SubLipschitz(10, true) }},
		{name: "forward", run: func() { m.Forward(x, n) }},
		{name: "backward", run: func() { m.Backward(dLogits, nil, n) }},
		{name: "power-backward", run: func() { m.BackwardLipschitz(1e-3, 1) }},
	}
	for _, p := range parts { // the first step touches every buffer's pages: not timed
		p.run()
	}
	for b.Loop() {
		for i := range parts {
			t0, c0 := time.Now(), processCPU()
			parts[i].run()
			parts[i].wall += time.Since(t0)
			parts[i].cpu += processCPU() - c0
		}
	}
	// Wall time per part, and the cores it kept busy (CPU time / wall time).
	for _, p := range parts {
		b.ReportMetric(p.wall.Seconds()*1e3/float64(b.N), "ms/"+p.name)
		b.ReportMetric(p.cpu.Seconds()/p.wall.Seconds(), "cores/"+p.name)
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "images/s")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
