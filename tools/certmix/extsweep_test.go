package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"certmix/certifier"
	"certmix/rundir"
	"certmix/sampler"
	"certmix/shards"
	"certmix/sweep"
)

// pyTorch is Debian's python3, where python3-torch is installed.
const pyTorch = "/usr/bin/python3"

// pytorchSweepFile writes the datasets of tinySweepFile and a sweep file
// whose cells are trained by clients/python/train_gloro.py (GloroNet L1W4,
// batch 32 over all ranks, a checkpoint every 5 steps) with trainer
// options extra, on one thread per rank.
func pytorchSweepFile(t *testing.T, grid, trainer, extra string) string {
	t.Helper()
	if out, err := exec.Command(pyTorch, "-c", "import numpy, torch").CombinedOutput(); err != nil {
		t.Fatalf("%s with numpy and torch is needed (apt-get install python3-numpy python3-torch): %v\n%s", pyTorch, err, out)
	}
	t.Setenv("OMP_NUM_THREADS", "1")
	script, err := filepath.Abs("../../clients/python/train_gloro.py")
	if err != nil {
		t.Fatal(err)
	}
	file := tinySweepFile(t, grid, extra)
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tr := fmt.Sprintf("trainer: {command: [%s, %s, --depth, \"1\", --width, \"4\", --epochs, \"${CERTMIX_EPOCHS}\"], batch: 32, checkpoint_every: 5%s}\n",
		pyTorch, script, trainer)
	if err := os.WriteFile(file, append([]byte(tr), text...), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// metricsLine is the last line of a cell's train/metrics.jsonl, as
// train_gloro.py writes it.
type metricsLine struct {
	Epoch       int64 `json:"epoch"`
	TestCorrect int   `json:"test_correct"`
	TestTotal   int   `json:"test_total"`
}

func lastMetrics(t *testing.T, cd string) metricsLine {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cd, "train", "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var m metricsLine
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkCleanAccuracy: the clean test accuracy the PyTorch trainer logged
// for its final weights is certmix certify's for the imported weights,
// within one image per 1,000 (float rounding).
func checkCleanAccuracy(t *testing.T, cd string) {
	t.Helper()
	m := lastMetrics(t, cd)
	f, err := os.Open(filepath.Join(cd, "certify", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := certifier.ReadReport(f)
	if err != nil {
		t.Fatal(err)
	}
	if m.TestTotal != rep.N {
		t.Fatalf("%s: the trainer evaluated %d test images, certify %d", cd, m.TestTotal, rep.N)
	}
	if diff := math.Abs(float64(m.TestCorrect - rep.Correct)); diff > float64(rep.N/1000) {
		t.Errorf("%s: the PyTorch trainer has %d of %d test images right, certmix certify %d", cd, m.TestCorrect, m.TestTotal, rep.Correct)
	} else {
		t.Logf("%s: clean test accuracy %d/%d in PyTorch, %d/%d in certmix certify", filepath.Base(cd), m.TestCorrect, m.TestTotal, rep.Correct, rep.N)
	}
}

// TestSweepPyTorchCells runs a sweep of two cells trained by
// train_gloro.py (f = 0 and 0.7) to the end, certified by certmix, whose
// trainer's clean test accuracy is certify's; then the same sweep again,
// SIGKILLed while its second cell trains, and rerun: the second cell
// resumes from its checkpoint and sampler state and ends having trained on
// exactly the batches of the uninterrupted run, and leaves no process
// behind.
func TestSweepPyTorchCells(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	bin := buildCertmix(t)
	file := pytorchSweepFile(t, "{label: torch, preset: gloro-xs, fraction: [0, 0.7], epochs: 2}", "", "")
	root := t.TempDir()
	clean, killed := filepath.Join(root, "clean"), filepath.Join(root, "killed")
	out := run(t, ctx, bin, "sweep", "--out", clean, file)
	if !strings.Contains(out, "2 cells, 0 done, 2 to run") {
		t.Errorf("sweep output:\n%s", out)
	}
	if st := run(t, ctx, bin, "sweep", "status", clean); !strings.Contains(st, "2 cells: 2 done") {
		t.Errorf("status:\n%s", st)
	}
	p, err := sweep.ReadPlan(clean)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Cells {
		cd := sweep.CellDir(clean, c.Name)
		log, _ := os.ReadFile(sweep.LogPath(clean, c.Name))
		for _, want := range []string{"train_gloro.py", "certmix import --npz", "certmix certify", "sampler server: stopped"} {
			if !bytes.Contains(log, []byte(want)) {
				t.Errorf("%s: the log lacks %q:\n%s", c.Name, want, log)
			}
		}
		checkCleanAccuracy(t, cd)
		if _, err := os.Stat(filepath.Join(cd, "data.json")); err != nil {
			t.Errorf("%s: no data record: %v", c.Name, err)
		}
	}
	rep := run(t, ctx, bin, "report", clean)
	if !strings.Contains(rep, "torch gloro-xs") {
		t.Errorf("report:\n%s", rep)
	}
	// Again, killed while the second cell trains (after its first checkpoint).
	first, second := p.Cells[0].Name, p.Cells[1].Name
	cmd := exec.CommandContext(ctx, bin, "sweep", "--out", killed, file)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ids := filepath.Join(sweep.CellDir(killed, second), "train", "batches-rank0.jsonl")
	for {
		_, err := os.Stat(filepath.Join(sweep.CellDir(killed, second), "train", "checkpoint.pt"))
		if data, _ := os.ReadFile(ids); err == nil && bytes.Count(data, []byte("\n")) >= 7 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the sweep ended (%v) before the second cell had a checkpoint:\n%s", err, log.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	if sweep.IsDone(killed, second) {
		t.Fatal("the kill landed after the second cell finished")
	}
	time.Sleep(500 * time.Millisecond)
	if orphans := processesMentioning(killed); len(orphans) > 0 {
		t.Fatalf("the killed sweep left processes behind: %v", orphans)
	}
	status := run(t, ctx, bin, "sweep", "status", killed)
	if got, _ := stateOf(status, second); got != string(sweep.Failed) {
		t.Errorf("after the kill %s is %q, want failed:\n%s", second, got, status)
	}
	out = run(t, ctx, bin, "sweep", "--out", killed, file)
	if !strings.Contains(out, "2 cells, 1 done, 1 to run") {
		t.Errorf("the rerun:\n%s", out)
	}
	secondLog, _ := os.ReadFile(sweep.LogPath(killed, second))
	if !bytes.Contains(secondLog, []byte("resuming at step")) || strings.Count(string(secondLog), "attempt:") != 2 {
		t.Errorf("the interrupted cell did not resume from its checkpoint:\n%s", secondLog)
	}
	want, _ := os.ReadFile(filepath.Join(sweep.CellDir(clean, second), "train", "batches-rank0.jsonl"))
	got, _ := os.ReadFile(ids)
	if len(want) == 0 || !bytes.Equal(got, want) {
		t.Errorf("the resumed cell trained on other batches than the uninterrupted one:\n%s\nwant\n%s", got, want)
	}
	if n := bytes.Count(want, []byte("\n")); n != 36 {
		t.Errorf("%d batches logged, want 2 epochs of 18 (640 - 64 real images in batches of 32)", n)
	}
	firstLog, _ := os.ReadFile(sweep.LogPath(killed, first))
	if strings.Count(string(firstLog), "attempt:") != 1 {
		t.Errorf("the finished cell ran again:\n%s", firstLog)
	}
	checkCleanAccuracy(t, sweep.CellDir(killed, second))
}

// TestSweepPyTorchTwoRanks runs a cell with gpus: 2 as two CPU ranks
// (torch.distributed's gloo): each rank trained on its own rank's stream,
// the batches of the sampler at that rank and world size 2 with the
// sweep's validation split held out (recorded in val.json; no held-out
// image trained on), and the cell is certified.
func TestSweepPyTorchTwoRanks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildCertmix(t)
	file := pytorchSweepFile(t, "{label: ddp, preset: gloro-xs, fraction: 0.7, epochs: 1, seed: 3}", ", gpus: 2", "")
	dir := filepath.Join(t.TempDir(), "sweep")
	run(t, ctx, bin, "sweep", "--out", dir, file)
	p, err := sweep.ReadPlan(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := p.Cells[0]
	cd := sweep.CellDir(dir, c.Name)
	if !sweep.IsDone(dir, c.Name) {
		t.Fatalf("%s not done", c.Name)
	}
	real, err := shards.Open(ctx, c.Real, shards.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	gen, err := shards.Open(ctx, c.GeneratedURL, shards.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	// tinySweepFile's val: 64 holds 64 of the 640 real images out, as
	// certmix train --val would, and val.json names them.
	val, err := rundir.ReadVal(filepath.Join(cd, "train"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := sampler.Holdout(real.Manifest, 64, 0)
	if err != nil || !slices.Equal(val.Rows, rows) {
		t.Fatalf("val.json holds out rows %v, sampler.Holdout %v (%v)", val.Rows, rows, err)
	}
	heldOut := map[int64]bool{}
	for _, id := range val.IDs {
		heldOut[id] = true
	}
	cfg := sampler.Config{Sources: []sampler.Source{{Dataset: real, Fraction: 1 - 0.7, Exclude: rows}, {Dataset: gen, Fraction: 0.7, Replacement: true}},
		Batch: 16, Seed: 3, WorldSize: 2, Augment: sampler.Augment{Size: 28, Pad: 2, Flip: true}}
	for rank := range 2 {
		f, err := os.Open(filepath.Join(cd, "train", fmt.Sprintf("batches-rank%d.jsonl", rank)))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Rank = rank
		it, err := sampler.New(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		n := 0
		for ; sc.Scan(); n++ {
			var line struct {
				Step int64   `json:"step"`
				IDs  []int64 `json:"ids"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatal(err)
			}
			b, err := it.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if line.Step != b.Step || !slices.Equal(line.IDs, b.IDs) {
				t.Fatalf("rank %d step %d: trained on %v, rank %d's stream has %v", rank, line.Step, line.IDs, rank, b.IDs)
			}
			for _, id := range line.IDs {
				if heldOut[id] {
					t.Errorf("rank %d step %d: trained on held-out image %d", rank, line.Step, id)
				}
			}
		}
		it.Close()
		f.Close()
		if want := it.StepsPerEpoch(); int64(n) != want || want != 18 {
			t.Errorf("rank %d: %d batches, want one epoch of %d (640 - 64 images over 2 ranks of 16)", rank, n, want)
		}
	}
	checkCleanAccuracy(t, cd)
}

// TestSweepPyTorchOnSlurm submits the two PyTorch cells to a real Slurm
// cluster (.ci/slurm start) as one job array and waits: both done as
// array tasks, certified, reported. Without a cluster it fails.
func TestSweepPyTorchOnSlurm(t *testing.T) {
	if out, err := exec.Command("sinfo", "-h", "-o", "%T").CombinedOutput(); err != nil {
		t.Fatalf("no Slurm cluster answers (sinfo: %v: %s); start one with eval \"$(.ci/slurm start)\" (needs root and apt-get install slurm-wlm munge)", err, bytes.TrimSpace(out))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := buildCertmix(t)
	file := pytorchSweepFile(t, "{label: torch, preset: gloro-xs, fraction: [0, 0.7], epochs: 1}", "", `slurm: {cpus_per_task: 1, mem: 2G, time: "00:10:00"}`)
	dir := filepath.Join(t.TempDir(), "sweep")
	out := run(t, ctx, bin, "sweep", "--executor", "slurm", "--wait", "--out", dir, file)
	if !strings.Contains(out, "2 array tasks") || !strings.Contains(out, "2 cells: 2 done") {
		t.Errorf("sweep output:\n%s", out)
	}
	subs, err := sweep.Submissions(dir)
	if err != nil || len(subs) != 1 {
		t.Fatalf("submissions %v, %v", subs, err)
	}
	if slices.ContainsFunc(subs[0].Args, func(a string) bool { return strings.HasPrefix(a, "--gres") }) {
		t.Errorf("sbatch %q asks for GPUs the cells do not want", subs[0].Args)
	}
	p, _ := sweep.ReadPlan(dir)
	for _, c := range p.Cells {
		log, _ := os.ReadFile(sweep.LogPath(dir, c.Name))
		if !strings.Contains(string(log), "Slurm job "+subs[0].Job+"_") || !strings.Contains(string(log), "train_gloro.py") {
			t.Errorf("cell %s did not train as a task of job %s:\n%s", c.Name, subs[0].Job, log)
		}
		checkCleanAccuracy(t, sweep.CellDir(dir, c.Name))
	}
	if rep := run(t, ctx, bin, "report", dir); !strings.Contains(rep, "torch gloro-xs") {
		t.Errorf("report:\n%s", rep)
	}
}
