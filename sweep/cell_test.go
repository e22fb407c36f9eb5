package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"certmix/internal/testsets"
	"certmix/sampler"
	"certmix/shards"
)

// fakeCertmix stands in for the certmix binary: train writes
// last.safetensors and metrics.jsonl into --out, certify writes
// summary.json, import writes --out from an existing --npz; failTrain makes train fail after its checkpoint, as a
// killed run would leave it.
type fakeCertmix struct {
	mu        sync.Mutex
	calls     [][]string
	failTrain bool
}

func (f *fakeCertmix) Run(ctx context.Context, args []string, log io.Writer) error {
	f.mu.Lock()
	f.calls = append(f.calls, slices.Clone(args))
	fail := f.failTrain
	f.mu.Unlock()
	out := flagValue(args, "--out")
	dir := out
	if args[0] == "import" {
		dir = filepath.Dir(out)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(log, "fake certmix %s\n", args[0])
	switch args[0] {
	case "train":
		if err := os.WriteFile(filepath.Join(out, "last.safetensors"), []byte("weights"), 0o644); err != nil {
			return err
		}
		if fail {
			return errors.New("killed")
		}
		return os.WriteFile(filepath.Join(out, "metrics.jsonl"), []byte(`{"epoch":0,"test_certified":0.5}`+"\n"), 0o644)
	case "certify":
		return os.WriteFile(filepath.Join(out, "summary.json"), []byte(`{"clean":0.8}`+"\n"), 0o644)
	case "import":
		if _, err := os.Stat(flagValue(args, "--npz")); err != nil {
			return err
		}
		return os.WriteFile(out, []byte("weights"), 0o644)
	}
	return fmt.Errorf("fake certmix: unknown command %q", args[0])
}

func (f *fakeCertmix) reset() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func flagValue(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// tinySweep writes small real, generated and test datasets and a sweep of
// three cells over them.
func tinySweep(t *testing.T) (dir string, p *Plan) {
	t.Helper()
	data := t.TempDir()
	shape := shards.Shape{Height: 8, Width: 8, Channels: 1, Classes: 10}
	for i, n := range []string{"real", "gen", "test"} {
		st, err := shards.NewLocal(filepath.Join(data, n))
		if err != nil {
			t.Fatal(err)
		}
		testsets.Write(t, st, 100, shape, 50, 25, int64(1000*i))
	}
	file := fmt.Sprintf(`
name: tiny
data: {real: %[1]s/real, test: %[1]s/test, generated: {g: %[1]s/gen}}
train: {depth: 1, width: 4}
grids: [{preset: gloro-xs, fraction: [0, 0.5], epochs: 1, seed: [0, 1]}]
`, data)
	f, src, err := Parse([]byte(file), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if p, err = NewPlan(f, "/"); err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), "sweep")
	if err := Prepare(dir, p, src); err != nil {
		t.Fatal(err)
	}
	return dir, p
}

func TestSkipIfDone(t *testing.T) {
	dir, p := tinySweep(t)
	fake := &fakeCertmix{}
	c := p.Cells[1] // fraction 0.5
	if out, err := RunCell(context.Background(), dir, c, fake); err != nil || out != Ran {
		t.Fatalf("first run: %v, %v", out, err)
	}
	calls := fake.reset()
	cd := CellDir(dir, c.Name)
	wantTrain := append(append([]string{"train"}, c.Train...), "--out", filepath.Join(cd, "train"))
	wantCertify := append(append([]string{"certify"}, c.Certify...), "--checkpoint", filepath.Join(cd, "train", "last.safetensors"), "--out", filepath.Join(cd, "certify"))
	if len(calls) != 2 || !slices.Equal(calls[0], wantTrain) || !slices.Equal(calls[1], wantCertify) {
		t.Fatalf("calls\n%q\nwant\n%q\n%q", calls, wantTrain, wantCertify)
	}
	if !IsDone(dir, c.Name) {
		t.Fatal("no done marker after a finished cell")
	}
	if log, _ := os.ReadFile(LogPath(dir, c.Name)); !regexp.MustCompile(`\n== \S+ done in \S+\n$`).Match(log) {
		t.Errorf("the log of a finished cell does not end with its done line:\n%s", log)
	}
	for _, m := range []string{runningMarker, failedMarker} {
		if _, err := os.Stat(filepath.Join(cd, m)); err == nil {
			t.Errorf("%s marker left after a finished cell", m)
		}
	}
	if out, err := RunCell(context.Background(), dir, c, fake); err != nil || out != Skipped {
		t.Fatalf("second run: %v, %v; want Skipped", out, err)
	}
	if calls := fake.reset(); len(calls) != 0 {
		t.Fatalf("a done cell ran again: %q", calls)
	}
	// The local executor skips it too and runs the rest.
	if err := (Local{Parallel: 2, Runner: fake}).Run(context.Background(), dir, p.Cells); err != nil {
		t.Fatal(err)
	}
	if calls := fake.reset(); len(calls) != 2*(len(p.Cells)-1) {
		t.Fatalf("%d calls for %d cells not done, want 2 each", len(calls), len(p.Cells)-1)
	}
}

func TestResumeArgs(t *testing.T) {
	dir, p := tinySweep(t)
	fake := &fakeCertmix{failTrain: true}
	c := p.Cells[0]
	if _, err := RunCell(context.Background(), dir, c, fake); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err = %v, want the train failure", err)
	}
	if msg, ok := failure(CellDir(dir, c.Name)); !ok || !strings.Contains(msg, "killed") {
		t.Fatalf("failed marker %q, %v", msg, ok)
	}
	if calls := fake.reset(); len(calls) != 1 || slices.Contains(calls[0], "--resume") {
		t.Fatalf("first attempt: %q, want one train without --resume", calls)
	}
	fake.failTrain = false
	if out, err := RunCell(context.Background(), dir, c, fake); err != nil || out != Ran {
		t.Fatal(out, err)
	}
	calls := fake.reset()
	if len(calls) != 2 || calls[0][0] != "train" || calls[0][len(calls[0])-1] != "--resume" {
		t.Fatalf("second attempt: %q, want train ... --resume, then certify", calls)
	}
	if _, ok := failure(CellDir(dir, c.Name)); ok {
		t.Error("the failed marker outlived a successful attempt")
	}
	log, _ := os.ReadFile(LogPath(dir, c.Name))
	if strings.Count(string(log), "attempt:") != 2 || !strings.Contains(string(log), "failed: cell") {
		t.Errorf("the log does not keep both attempts:\n%s", log)
	}
}

// markerProbe is the fake certmix that also reads the cell's running
// marker on each command: who holds the cell while it runs.
type markerProbe struct {
	fakeCertmix
	cellDir string
	held    []attempt
	modes   []os.FileMode
}

func (m *markerProbe) Run(ctx context.Context, args []string, log io.Writer) error {
	a, ok := readAttempt(m.cellDir)
	if ok {
		m.held = append(m.held, a)
	}
	if st, err := os.Stat(filepath.Join(m.cellDir, runningMarker)); err == nil {
		m.modes = append(m.modes, st.Mode().Perm())
	}
	return m.fakeCertmix.Run(ctx, args, log)
}

// TestRunningMarkerWhileRunning: while a cell's commands run, its running
// marker names this process (so another sweep on this host is refused) and
// others can read it (mode 0644: a cluster's file system is shared); once
// the cell is done the marker is gone.
func TestRunningMarkerWhileRunning(t *testing.T) {
	dir, p := tinySweep(t)
	c := p.Cells[0]
	probe := &markerProbe{cellDir: CellDir(dir, c.Name)}
	if _, err := RunCell(context.Background(), dir, c, probe); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if len(probe.held) != 2 {
		t.Fatalf("running marker seen by %d of 2 commands", len(probe.held))
	}
	for _, a := range probe.held {
		if a.PID != os.Getpid() || a.Host != host || !a.alive() {
			t.Errorf("running marker %+v, want this live process (pid %d on %s)", a, os.Getpid(), host)
		}
	}
	for _, m := range probe.modes {
		if m != 0o644 {
			t.Errorf("running marker of mode %v, want 0644", m)
		}
	}
	if _, ok := readAttempt(probe.cellDir); ok {
		t.Error("running marker left after the cell finished")
	}
}

// TestUnreplaceableRunningMarker: a running marker that cannot be removed
// (here a directory with a file in it) is an error after one retry, not an
// endless loop, and the cell does not run.
func TestUnreplaceableRunningMarker(t *testing.T) {
	dir, p := tinySweep(t)
	c := p.Cells[0]
	if err := os.MkdirAll(filepath.Join(CellDir(dir, c.Name), runningMarker, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	fake := &fakeCertmix{}
	done := make(chan error, 1)
	go func() { _, err := RunCell(context.Background(), dir, c, fake); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "running marker") || errors.Is(err, ErrRunning) {
			t.Errorf("err = %v, want the running marker's error", err)
		}
		if calls := fake.reset(); len(calls) != 0 {
			t.Errorf("the cell ran: %q", calls)
		}
	case <-time.After(5 * time.Second): // it takes milliseconds
		t.Fatal("RunCell still trying to take the running marker after 5 s")
	}
}

// TestUnwritableFailedMarkerIsReported: when a failed attempt cannot write
// its failed marker (here a directory, which the rename cannot replace),
// the error says so besides the failure itself.
func TestUnwritableFailedMarkerIsReported(t *testing.T) {
	dir, p := tinySweep(t)
	c := p.Cells[0]
	blocker := filepath.Join(CellDir(dir, c.Name), failedMarker, "x")
	if err := os.MkdirAll(blocker, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := RunCell(context.Background(), dir, c, &fakeCertmix{failTrain: true})
	if err == nil || !strings.Contains(err.Error(), "killed") || !strings.Contains(err.Error(), "write "+filepath.Join(CellDir(dir, c.Name), failedMarker)) {
		t.Fatalf("err = %v, want the train failure and the failed marker's", err)
	}
}

func TestChangedSettingsRefused(t *testing.T) {
	dir, p := tinySweep(t)
	changed := *p
	changed.Cells = slices.Clone(p.Cells)
	changed.Cells[2].Train = append(slices.Clone(changed.Cells[2].Train), "--lr", "0.1")
	if err := Prepare(dir, &changed, nil); !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), p.Cells[2].Name) {
		t.Fatalf("err = %v, want ErrChanged naming %s", err, p.Cells[2].Name)
	}
	// The same plan again, and a plan with one more cell, are fine.
	more := *p
	more.Cells = append(slices.Clone(p.Cells), Cell{Name: "new_e1_f0_s0", Preset: "new", Epochs: 1})
	if err := Prepare(dir, &more, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDataRecorded(t *testing.T) {
	dir, p := tinySweep(t)
	c := p.Cells[1]
	if _, err := RunCell(context.Background(), dir, c, &fakeCertmix{}); err != nil {
		t.Fatal(err)
	}
	var recs []DataRecord
	data, err := os.ReadFile(filepath.Join(CellDir(dir, c.Name), "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &recs); err != nil {
		t.Fatal(err)
	}
	// The checksums are those the sampler's resumable state records, so a
	// cell's data can be matched with its checkpoint.
	ctx := context.Background()
	real, _ := shards.Open(ctx, c.Real, shards.S3Config{})
	gen, _ := shards.Open(ctx, c.GeneratedURL, shards.S3Config{})
	it, err := sampler.New(ctx, sampler.Config{Sources: []sampler.Source{{Dataset: real, Fraction: 0.5}, {Dataset: gen, Fraction: 0.5}}, Batch: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := it.State()
	it.Close()
	if len(recs) != 3 || recs[0].Role != "real" || recs[1].Role != "generated" || recs[2].Role != "test" {
		t.Fatalf("records %+v", recs)
	}
	if recs[0].ManifestXXH64 != st.Sources[0].Manifest || recs[1].ManifestXXH64 != st.Sources[1].Manifest || recs[0].Rows != 100 || recs[0].URL != c.Real {
		t.Errorf("records %+v, sampler state %+v", recs, st.Sources)
	}
	// Another dataset at the same path: the cell refuses to go on.
	os.RemoveAll(filepath.Join(CellDir(dir, c.Name), doneMarker))
	os.RemoveAll(c.GeneratedURL)
	store, _ := shards.NewLocal(c.GeneratedURL)
	testsets.Write(t, store, 100, shards.Shape{Height: 8, Width: 8, Channels: 1, Classes: 10}, 50, 25, 5000)
	fake := &fakeCertmix{}
	if _, err := RunCell(ctx, dir, c, fake); !errors.Is(err, ErrDataChanged) {
		t.Fatalf("err = %v, want ErrDataChanged", err)
	}
	if calls := fake.reset(); len(calls) != 0 {
		t.Fatalf("a cell with changed data ran: %q", calls)
	}
}

func TestCellLock(t *testing.T) {
	dir, p := tinySweep(t)
	c := p.Cells[0]
	cd := CellDir(dir, c.Name)
	host, _ := os.Hostname()
	parent := os.Getppid()
	// A live process holds the cell: refused, nothing run, its marker kept.
	holder := attempt{Host: host, PID: parent, Boot: processStart(parent)}
	if holder.Boot == 0 {
		t.Fatal("no start time from /proc")
	}
	writeJSONMarker(cd, runningMarker, holder)
	fake := &fakeCertmix{}
	_, err := RunCell(context.Background(), dir, c, fake)
	if who := fmt.Sprintf("pid %d on %s", parent, host); !errors.Is(err, ErrRunning) || !strings.Contains(err.Error(), who) || strings.Contains(err.Error(), "Slurm") {
		t.Fatalf("err = %v, want ErrRunning naming %s and no Slurm job", err, who)
	}
	// A Slurm task's marker names its job and task.
	slurm := holder
	slurm.SlurmJob, slurm.SlurmTask = "77", "3"
	writeJSONMarker(cd, runningMarker, slurm)
	if _, err := RunCell(context.Background(), dir, c, fake); !errors.Is(err, ErrRunning) || !strings.Contains(err.Error(), "Slurm job 77_3") {
		t.Fatalf("err = %v, want ErrRunning naming Slurm job 77_3", err)
	}
	writeJSONMarker(cd, runningMarker, holder)
	if a, ok := readAttempt(cd); !ok || a.PID != parent || len(fake.reset()) != 0 {
		t.Fatalf("the holder's marker was replaced or the cell ran: %+v", a)
	}
	if _, failed := failure(cd); failed {
		t.Error("a refused attempt marked the cell failed")
	}
	// The same pid with another start time is a reused pid: the marker is
	// stale and the cell runs.
	writeJSONMarker(cd, runningMarker, attempt{Host: host, PID: parent, Boot: holder.Boot + 1})
	if out, err := RunCell(context.Background(), dir, c, fake); err != nil || out != Ran {
		t.Fatalf("with a stale marker: %v, %v", out, err)
	}
	// A marker with pid 0 or less names no process (kill(0, 0) would
	// signal this process group): stale, the cell runs.
	for i, pid := range []int{0, -1} {
		c := p.Cells[1+i]
		writeJSONMarker(CellDir(dir, c.Name), runningMarker, attempt{Host: host, PID: pid})
		if out, err := RunCell(context.Background(), dir, c, fake); err != nil || out != Ran {
			t.Errorf("with a marker of pid %d: %v, %v", pid, out, err)
		}
	}
}

func TestIdle(t *testing.T) {
	dir, p := tinySweep(t)
	host, _ := os.Hostname()
	writeJSONMarker(CellDir(dir, p.Cells[0].Name), doneMarker, finished{})
	writeJSONMarker(CellDir(dir, p.Cells[1].Name), runningMarker, attempt{Host: host, PID: os.Getpid()})
	writeJSONMarker(CellDir(dir, p.Cells[2].Name), failedMarker, "boom")
	idle, busy, err := Idle(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(idle) != 2 || idle[0].Name != p.Cells[2].Name || idle[1].Name != p.Cells[3].Name || len(busy) != 1 || busy[0].Cell != p.Cells[1].Name {
		t.Fatalf("idle %v, busy %v", idle, busy)
	}
}

// TestFilesReadable: what a sweep writes is readable by others (a cluster's
// file system is shared), not CreateTemp's 0600.
func TestFilesReadable(t *testing.T) {
	dir, p := tinySweep(t)
	if _, err := RunCell(context.Background(), dir, p.Cells[0], &fakeCertmix{}); err != nil {
		t.Fatal(err)
	}
	cd := CellDir(dir, p.Cells[0].Name)
	for _, f := range []string{filepath.Join(dir, "plan.json"), filepath.Join(dir, "sweep.yaml"), filepath.Join(cd, "cell.json"),
		filepath.Join(cd, "data.json"), filepath.Join(cd, doneMarker)} {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v, %v; want mode 0644", f, st.Mode(), err)
		}
	}
}
