package sweep

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeQueue answers for job "7" only.
type fakeQueue map[int]string

func (q fakeQueue) Tasks(_ context.Context, job string) (map[int]string, error) {
	if job != "7" {
		return map[int]string{}, nil
	}
	return q, nil
}

func TestStatus(t *testing.T) {
	dir := t.TempDir()
	host, _ := os.Hostname()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	type setup func(cd string)
	marker := func(name string, a any) setup {
		return func(cd string) {
			if err := writeJSONMarker(cd, name, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	text := func(name, s string) setup {
		return func(cd string) { os.WriteFile(filepath.Join(cd, name), []byte(s), 0o644) }
	}
	cases := []struct {
		cell  string
		setup []setup
		state State
		note  string
	}{
		{"done", []setup{marker(doneMarker, finished{}), marker(runningMarker, attempt{Host: host, PID: os.Getpid()})}, Done, ""},
		{"running-here", []setup{marker(runningMarker, attempt{Host: host, PID: os.Getpid()})}, Running, "pid"},
		{"killed-here", []setup{marker(runningMarker, attempt{Host: host, PID: dead.Process.Pid})}, Failed, "stopped without finishing"},
		{"other-host", []setup{marker(runningMarker, attempt{Host: "elsewhere", PID: os.Getpid()})}, Failed, "stopped without finishing"},
		{"failed", []setup{text(failedMarker, "cell failed: certmix train: exit status 1\nmore")}, Failed, "exit status 1"},
		{"on-slurm", []setup{marker(runningMarker, attempt{Host: "node1", PID: 1, SlurmJob: "7", SlurmTask: "1"})}, Running, "Slurm job 7_1"},
		{"slurm-killed", []setup{marker(runningMarker, attempt{Host: "node1", PID: 1, SlurmJob: "7", SlurmTask: "2"})}, Failed, "stopped without finishing"},
		{"queued", nil, Pending, "queued as Slurm job 7_3"},
		{"starting", nil, Running, "starting as Slurm job 7_4"},
		{"never-started", nil, Failed, "ended (FAILED) without running the cell"},
		{"forgotten", nil, Failed, "gone from the queue"},
		{"not-submitted", nil, Pending, "not run yet"},
	}
	p := &Plan{Name: "t"}
	for _, c := range cases {
		p.Cells = append(p.Cells, Cell{Name: c.cell})
		cd := CellDir(dir, c.cell)
		os.MkdirAll(cd, 0o755)
		for _, s := range c.setup {
			s(cd)
		}
	}
	if err := Prepare(dir, p, nil); err != nil {
		t.Fatal(err)
	}
	// Job 7's tasks: 0 done, 1 running, 2 ended, 3 pending, 4 starting,
	// 5 failed before the cell started; job 8 is forgotten.
	subDir := filepath.Join(dir, "slurm", "1")
	os.MkdirAll(subDir, 0o755)
	sub := `{"job": "7", "cells": ["done", "on-slurm", "slurm-killed", "queued", "starting", "never-started"]}`
	os.WriteFile(filepath.Join(subDir, "submission.json"), []byte(sub), 0o644)
	os.MkdirAll(filepath.Join(dir, "slurm", "2"), 0o755)
	os.WriteFile(filepath.Join(dir, "slurm", "2", "submission.json"), []byte(`{"job": "8", "cells": ["forgotten"]}`), 0o644)
	q := fakeQueue{0: "COMPLETED", 1: "RUNNING", 2: "CANCELLED", 3: "PENDING", 4: "CONFIGURING", 5: "FAILED"}

	sts, err := Status(context.Background(), dir, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != len(cases) {
		t.Fatalf("%d statuses for %d cells", len(sts), len(cases))
	}
	for i, c := range cases {
		s := sts[i]
		if s.Cell != c.cell || s.State != c.state || !strings.Contains(s.Note, c.note) || s.Log != LogPath(dir, c.cell) {
			t.Errorf("%s: %s %q (log %s), want %s with %q", c.cell, s.State, s.Note, s.Log, c.state, c.note)
		}
	}
	if got := Counts(sts); got != "12 cells: 1 done, 3 running, 2 pending, 6 failed" {
		t.Errorf("counts %q", got)
	}
	if strings.Contains(sts[9].Note, filepath.Join(subDir, "5.log")) == false {
		t.Errorf("a task that never ran the cell does not point to its Slurm log: %q", sts[9].Note)
	}
}

func TestWait(t *testing.T) {
	dir, p := tinySweep(t)
	names := []string{p.Cells[0].Name, p.Cells[1].Name}
	go func() {
		time.Sleep(50 * time.Millisecond)
		for _, n := range names {
			writeJSONMarker(CellDir(dir, n), doneMarker, finished{})
		}
	}()
	var log strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Wait(ctx, dir, names, nil, 10*time.Millisecond, &log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "2 cells: 2 pending") || !strings.Contains(log.String(), "2 cells: 2 done") {
		t.Errorf("progress:\n%s", log.String())
	}
	os.WriteFile(filepath.Join(CellDir(dir, p.Cells[2].Name), failedMarker), []byte("boom\n"), 0o644)
	if err := Wait(ctx, dir, []string{p.Cells[2].Name}, nil, time.Millisecond, nil); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v, want the failure", err)
	}
}
