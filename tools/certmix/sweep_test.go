package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"certmix/internal/testsets"
	"certmix/shards"
	"certmix/sweep"
)

// buildCertmix builds this command into a temporary directory.
func buildCertmix(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "certmix")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// tinySweepFile writes 28x28 real, generated and test datasets and a sweep
// file of tiny LiResNet cells (L1W4) over them.
func tinySweepFile(t *testing.T, grid, extra string) string {
	t.Helper()
	dir := t.TempDir()
	shape := shards.Shape{Height: 28, Width: 28, Channels: 1, Classes: 10}
	for i, n := range []string{"real", "gen", "test"} {
		st, err := shards.NewLocal(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		rows := 640
		if n == "test" {
			rows = 256
		}
		testsets.Write(t, st, rows, shape, 256, 64, int64(10000*i))
	}
	file := filepath.Join(dir, "tiny.yaml")
	text := fmt.Sprintf(`name: tiny
data: {real: %[1]s/real, test: %[1]s/test, generated: {gen640: %[1]s/gen}}
train: {depth: 1, width: 4, batch: 32, eval: 32, checkpoint-every: 3}
val: 64
grids: [%[2]s]
%[3]s`, dir, grid, extra)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func run(t *testing.T, ctx context.Context, bin string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("certmix %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestSweepKilledResumes kills a local sweep (SIGKILL) while a cell trains,
// after an earlier cell has finished, and runs it again: it finishes
// without redoing the finished cell, resumes the interrupted one from its
// checkpoint, and every cell's certification equals that of a sweep never
// killed.
func TestSweepKilledResumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildCertmix(t)
	file := tinySweepFile(t, "{preset: gloro-xs, fraction: [0, 0.5, 0.9], epochs: 3}", "")
	root := t.TempDir()
	clean, killed := filepath.Join(root, "clean"), filepath.Join(root, "killed")
	run(t, ctx, bin, "sweep", "--out", clean, file)

	p, err := sweep.ReadPlan(clean)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Cells) != 3 {
		t.Fatalf("%d cells, want 3", len(p.Cells))
	}
	first, second := p.Cells[0].Name, p.Cells[1].Name
	cmd := exec.CommandContext(ctx, bin, "sweep", "--out", killed, file)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ckpt := filepath.Join(sweep.CellDir(killed, second), "train", "last.safetensors")
	for {
		_, err := os.Stat(ckpt)
		if sweep.IsDone(killed, first) && err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the sweep ended (%v) before the second cell had a checkpoint:\n%s", err, log.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	// Only the sweep process: its training must die with it.
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
	for cell, want := range map[string]sweep.State{first: sweep.Done, second: sweep.Failed, p.Cells[2].Name: sweep.Pending} {
		if got, _ := stateOf(status, cell); got != string(want) {
			t.Errorf("status after the kill: %s is %q, want %s:\n%s", cell, got, want, status)
		}
	}
	if !strings.Contains(status, "stopped without finishing") || !strings.Contains(status, "3 cells: 1 done, 1 pending, 1 failed") {
		t.Errorf("status after the kill:\n%s", status)
	}
	doneBefore, _ := os.ReadFile(filepath.Join(sweep.CellDir(killed, first), "done"))

	out := run(t, ctx, bin, "sweep", "--out", killed, file)
	if !strings.Contains(out, "3 cells, 1 done, 2 to run") || strings.Contains(out, first+": running") {
		t.Errorf("the rerun did not skip the finished cell:\n%s", out)
	}
	doneAfter, _ := os.ReadFile(filepath.Join(sweep.CellDir(killed, first), "done"))
	firstLog, _ := os.ReadFile(sweep.LogPath(killed, first))
	if !bytes.Equal(doneBefore, doneAfter) || strings.Count(string(firstLog), "attempt:") != 1 {
		t.Errorf("the finished cell ran again:\n%s", firstLog)
	}
	secondLog, _ := os.ReadFile(sweep.LogPath(killed, second))
	if strings.Count(string(secondLog), "attempt:") != 2 || !strings.Contains(string(secondLog), "--resume") {
		t.Errorf("the interrupted cell did not resume from its checkpoint:\n%s", secondLog)
	}
	for _, c := range p.Cells {
		for _, f := range []string{"summary.json", "radii.csv", "report.json"} {
			a, errA := os.ReadFile(filepath.Join(sweep.CellDir(clean, c.Name), "certify", f))
			b, errB := os.ReadFile(filepath.Join(sweep.CellDir(killed, c.Name), "certify", f))
			if errA != nil || errB != nil || !bytes.Equal(a, b) {
				t.Errorf("%s %s: the killed and resumed sweep's differs from the uninterrupted one's (%v, %v)", c.Name, f, errA, errB)
			}
		}
	}
	if st := run(t, ctx, bin, "sweep", "status", killed); !strings.Contains(st, "3 cells: 3 done") {
		t.Errorf("status after the rerun:\n%s", st)
	}
	rep := run(t, ctx, bin, "report", killed)
	if !strings.Contains(rep, "| gloro-xs | 3 |") || !strings.Contains(rep, "wrote 6 files") {
		t.Errorf("report:\n%s", rep)
	}
}

// stateOf finds a cell's line in the output of certmix sweep status and
// returns its state and log.
func stateOf(status, cell string) (state, log string) {
	for _, line := range strings.Split(status, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == cell {
			return f[1], f[2]
		}
	}
	return "", ""
}

// processesMentioning lists the processes whose command line contains s.
func processesMentioning(s string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err == nil && bytes.Contains(b, []byte(s)) {
			out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// TestSweepOnSlurm submits a sweep of four cells to a real Slurm cluster
// (one node on this machine: .ci/slurm start, which .ci/run does) as one
// job array, waits for it, checks that status reports every cell done on
// Slurm, and writes the report. Without a cluster it fails.
func TestSweepOnSlurm(t *testing.T) {
	if out, err := exec.Command("sinfo", "-h", "-o", "%T").CombinedOutput(); err != nil {
		t.Fatalf("no Slurm cluster answers (sinfo: %v: %s); start one with eval \"$(.ci/slurm start)\" (needs root and apt-get install slurm-wlm munge)", err, bytes.TrimSpace(out))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildCertmix(t)
	file := tinySweepFile(t, "{preset: gloro-xs, fraction: [0, 0.5], seed: [0, 1], epochs: 2}", `slurm: {cpus_per_task: 1, mem: 1G, time: "00:10:00"}`)
	dir := filepath.Join(t.TempDir(), "sweep")
	out := run(t, ctx, bin, "sweep", "--executor", "slurm", "--wait", "--out", dir, file)
	if !strings.Contains(out, "submitted Slurm job") || !strings.Contains(out, "4 array tasks") || !strings.Contains(out, "4 cells: 4 done") {
		t.Errorf("sweep output:\n%s", out)
	}
	status := run(t, ctx, bin, "sweep", "status", dir)
	if !strings.Contains(status, "4 cells: 4 done") {
		t.Errorf("status:\n%s", status)
	}
	subs, err := sweep.Submissions(dir)
	if err != nil || len(subs) != 1 {
		t.Fatalf("submissions %v, %v", subs, err)
	}
	p, _ := sweep.ReadPlan(dir)
	for i, c := range p.Cells {
		if state, log := stateOf(status, c.Name); state != "done" || log != sweep.LogPath(dir, c.Name) {
			t.Errorf("status does not show %s done with its log:\n%s", c.Name, status)
		}
		log, _ := os.ReadFile(sweep.LogPath(dir, c.Name))
		if !strings.Contains(string(log), "Slurm job "+subs[0].Job+"_") {
			t.Errorf("cell %s did not run as a task of job %s:\n%s", c.Name, subs[0].Job, log)
		}
		if _, err := os.Stat(subs[0].TaskLog(i)); err != nil {
			t.Errorf("array task %d: %v", i, err)
		}
	}
	// Submitting again runs nothing.
	if again := run(t, ctx, bin, "sweep", "--executor", "slurm", "--out", dir, file); !strings.Contains(again, "4 done, 0 to run") {
		t.Errorf("a second submission:\n%s", again)
	}
	rep := run(t, ctx, bin, "report", dir)
	if !strings.Contains(rep, "| gloro-xs | 2 | 2 |") || !strings.Contains(rep, "t over seeds") {
		t.Errorf("report (one row over two seeds, paired gains):\n%s", rep)
	}
	if _, err := os.Stat(filepath.Join(dir, "report", "report.html")); err != nil {
		t.Error(err)
	}
}
