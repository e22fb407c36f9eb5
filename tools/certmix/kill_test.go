package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"certmix/internal/testsets"
	"certmix/shards"
	"certmix/trainer"
	"certmix/trainer/checkpoint"
)

// TestKilledTrainerResumes kills `certmix train` with SIGKILL at random
// moments, 20 times, resuming after each kill: the run ends with the
// weights of a run that was never killed.
func TestKilledTrainerResumes(t *testing.T) {
	bin := buildCertmix(t)
	shape := shards.Shape{Height: 28, Width: 28, Channels: 1, Classes: 10}
	dir := t.TempDir()
	for _, n := range []string{"real", "gen"} {
		st, _ := shards.NewLocal(filepath.Join(dir, n))
		testsets.Write(t, st, 640, shape, 256, 64, 0)
	}
	args := func(out string) []string {
		return []string{"train", "--real", filepath.Join(dir, "real"), "--generated", filepath.Join(dir, "gen"), "--fraction", "0.5",
			"--depth", "1", "--width", "4", "--batch", "32", "--epochs", "10", "--eval", "32", "--checkpoint-every", "3", "--out", out}
	}
	weights := func(out string) []float32 {
		st, _ := shards.NewLocal(out)
		ck, err := checkpoint.Read(context.Background(), st, "last.safetensors")
		if err != nil {
			t.Fatal(err)
		}
		tr, _, err := trainer.Load(ck)
		if err != nil {
			t.Fatal(err)
		}
		var w []float32
		for _, p := range tr.Model.Params() {
			w = append(w, p.W...)
		}
		return w
	}
	clean := filepath.Join(dir, "clean")
	if out, err := exec.Command(bin, args(clean)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	start := time.Now()
	if out, err := exec.Command(bin, args(filepath.Join(dir, "timing"))...).CombinedOutput(); err != nil {
		t.Fatalf("timing run: %v\n%s", err, out)
	}
	full := time.Since(start)

	killed := filepath.Join(dir, "killed")
	rng := rand.New(rand.NewPCG(1, 2))
	kills := 0
	for trial := 0; trial < 60 && kills < 20; trial++ {
		a := args(killed)
		if _, err := os.Stat(filepath.Join(killed, "last.safetensors")); err == nil {
			a = append(a, "--resume")
		}
		cmd := exec.Command(bin, a...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-time.After(full/40 + time.Duration(rng.Int64N(int64(full/12)))):
			cmd.Process.Kill()
			<-done
			kills++
		case err := <-done:
			if err != nil {
				t.Fatalf("trial %d: %v", trial, err)
			}
			trial = 1 << 30 // finished before the kill
		}
	}
	if kills < 20 {
		t.Fatalf("only %d kills landed", kills)
	}
	// A damaged last checkpoint: the resume goes back to the one before.
	last := filepath.Join(killed, "last.safetensors")
	if st, err := os.Stat(last); err == nil {
		os.Truncate(last, st.Size()/2)
	}
	// Finish the run.
	out, err := exec.Command(bin, append(args(killed), "--resume")...).CombinedOutput()
	if err != nil {
		t.Fatalf("final resume: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("resuming from prev.safetensors")) {
		t.Errorf("the resume after a truncated last checkpoint did not say it used the previous one:\n%s", out)
	}
	if !slices.Equal(weights(clean), weights(killed)) {
		t.Fatalf("after %d kills and resumes the weights differ from the uninterrupted run's", kills)
	}
	t.Logf("%d kills", kills)
}
