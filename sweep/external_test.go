package sweep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"certmix/internal/testsets"
	"certmix/rundir"
	"certmix/sampler"
	"certmix/shards"
)

// python is Debian's python3 (numpy; the stubs below need no torch).
const python = "/usr/bin/python3"

// stubTrainer is an external trainer that reads two batches of its rank
// (STUB_BATCHES; "epoch": CERTMIX_STEPS_PER_EPOCH) from CERTMIX_SOCKET and the test batch from CERTMIX_TEST_SOCKET,
// records them, its environment and its arguments in
// CERTMIX_OUT/seen-rankR.json, writes a state dict (rank 0) and exits with
// STUB_EXIT (default 0).
const stubTrainer = `
import json, os, sys
sys.path.insert(0, %q)
import numpy as np
import certmix_client as cm
rank = int(os.environ["CERTMIX_RANK"])
n = os.environ.get("STUB_BATCHES", "2")
n = int(os.environ["CERTMIX_STEPS_PER_EPOCH"] if n == "epoch" else n)
with cm.connect(os.environ["CERTMIX_SOCKET"], rank=rank) as c:
    info = c.info
    batches = [c.read_batch(copy=True) for _ in range(n)]
with cm.connect(os.environ["CERTMIX_TEST_SOCKET"]) as c:
    test = c.read_batch(copy=True)
env = {k: v for k, v in os.environ.items() if k.startswith("CERTMIX_") or k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
out = os.environ["CERTMIX_OUT"]
with open(os.path.join(out, "seen-rank%%d.json" %% rank), "w") as f:
    json.dump({"env": env, "argv": sys.argv[1:], "ids": [b.ids.tolist() for b in batches], "test_ids": test.ids.tolist(),
               "batch": info["batch"], "world_size": info["world_size"]}, f)
print("stub trainer rank %%d read %%d batches" %% (rank, len(batches)), flush=True)
code = int(os.environ.get("STUB_EXIT", "0"))
if code:
    print("stub trainer: failing on purpose", flush=True)
    sys.exit(code)
if rank == 0:
    np.savez(os.environ["CERTMIX_STATE_DICT"], w=np.zeros(3))
`

// externalSweep writes 8x8 real, generated and test datasets (100 images
// each; ids 0.., 1000.., 2000..), a stub trainer, and a sweep of grid (with
// trainer, the trainer's YAML fields after its command, and top, more
// top-level lines such as val:) over them.
func externalSweep(t *testing.T, grid, trainer, top string) (dir string, p *Plan) {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import numpy").CombinedOutput(); err != nil {
		t.Fatalf("%s with numpy is needed (apt-get install python3-numpy): %v\n%s", python, err, out)
	}
	data := t.TempDir()
	shape := shards.Shape{Height: 8, Width: 8, Channels: 1, Classes: 10}
	for i, n := range []string{"real", "gen", "test"} {
		st, err := shards.NewLocal(filepath.Join(data, n))
		if err != nil {
			t.Fatal(err)
		}
		testsets.Write(t, st, 100, shape, 50, 25, int64(1000*i))
	}
	clients, err := filepath.Abs("../clients/python")
	if err != nil {
		t.Fatal(err)
	}
	stub := filepath.Join(data, "stub.py")
	if err := os.WriteFile(stub, []byte(fmt.Sprintf(stubTrainer, clients)), 0o644); err != nil {
		t.Fatal(err)
	}
	file := fmt.Sprintf(`
name: ext
data: {real: %[1]s/real, test: %[1]s/test, generated: {g: %[1]s/gen}}
trainer: {command: [%[2]s, %[3]s, --epochs, "${CERTMIX_EPOCHS}", --rank, "${CERTMIX_RANK}"], %[5]s}
grids: [%[4]s]
%[6]s
`, data, python, stub, grid, trainer, top)
	f, src, err := Parse([]byte(file), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if p, err = NewPlan(f, data); err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), "sweep")
	if err := Prepare(dir, p, src); err != nil {
		t.Fatal(err)
	}
	return dir, p
}

type seen struct {
	Env       map[string]string `json:"env"`
	Argv      []string          `json:"argv"`
	IDs       [][]int64         `json:"ids"`
	TestIDs   []int64           `json:"test_ids"`
	Batch     int               `json:"batch"`
	WorldSize int               `json:"world_size"`
}

func readSeen(t *testing.T, cd string, rank int) seen {
	t.Helper()
	var s seen
	data, err := os.ReadFile(filepath.Join(cd, "train", fmt.Sprintf("seen-rank%d.json", rank)))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestExternalCell runs a cell of two ranks with the stub trainer: each
// rank reads its own rank's stream of the cell's mix (the batches of the
// sampler at that rank), the test server serves every test image once,
// the environment and the command's ${CERTMIX_...} are the cell's, the
// state dict is imported and certified, the cell is done and a second run
// skips it.
func TestExternalCell(t *testing.T) {
	dir, p := externalSweep(t, "{preset: gloro-xs, fraction: 0.3, epochs: 2, seed: 5}", "gpus: 2, batch: 20", "val: 0")
	c := p.Cells[0]
	if c.Trainer == nil || c.Trainer.Ranks != 2 || c.Train != nil {
		t.Fatalf("cell %+v, want an external trainer of 2 ranks and no certmix train flags", c)
	}
	fake := &fakeCertmix{}
	if out, err := RunCell(context.Background(), dir, c, fake); err != nil || out != Ran {
		log, _ := os.ReadFile(LogPath(dir, c.Name))
		t.Fatalf("%v, %v\n%s", out, err, log)
	}
	cd := CellDir(dir, c.Name)
	calls := fake.reset()
	want := [][]string{
		{"import", "--npz", filepath.Join(cd, "train", StateDictName), "--out", filepath.Join(cd, "train", "last.safetensors")},
		append(append([]string{"certify"}, c.Certify...), "--checkpoint", filepath.Join(cd, "train", "last.safetensors"), "--out", filepath.Join(cd, "certify")),
	}
	if len(calls) != 2 || !slices.Equal(calls[0], want[0]) || !slices.Equal(calls[1], want[1]) {
		t.Fatalf("certmix calls\n%q\nwant\n%q", calls, want)
	}
	if !IsDone(dir, c.Name) {
		t.Fatal("not done")
	}

	// The mix as certmix train draws it, 10 images a rank, world size 2.
	ctx := context.Background()
	real, _ := shards.Open(ctx, c.Real, shards.S3Config{})
	gen, _ := shards.Open(ctx, c.GeneratedURL, shards.S3Config{})
	cfg := sampler.Config{Sources: []sampler.Source{{Dataset: real, Fraction: 0.7}, {Dataset: gen, Fraction: 0.3, Replacement: true}},
		Batch: 10, Seed: 5, WorldSize: 2, Augment: sampler.Augment{Size: 8, Pad: 2, Flip: true}}
	for rank := range 2 {
		s := readSeen(t, cd, rank)
		cfg.Rank = rank
		it, err := sampler.New(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, got := range s.IDs {
			b, err := it.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, b.IDs) {
				t.Errorf("rank %d batch %d: ids %v, the sampler's rank %d has %v", rank, i, got, rank, b.IDs)
			}
		}
		it.Close()
		if s.Batch != 10 || s.WorldSize != 2 {
			t.Errorf("rank %d: server batch %d of world %d, want 10 of 2", rank, s.Batch, s.WorldSize)
		}
		test := slices.Sorted(slices.Values(s.TestIDs))
		if len(test) != 100 || test[0] != 2000 || test[99] != 2099 || len(slices.Compact(test)) != 100 {
			t.Errorf("rank %d: the test batch is not every test image once: %v", rank, s.TestIDs)
		}
		r := fmt.Sprint(rank)
		wantEnv := map[string]string{"CERTMIX_RANK": r, "RANK": r, "LOCAL_RANK": r, "CERTMIX_WORLD_SIZE": "2", "WORLD_SIZE": "2",
			"CERTMIX_EPOCHS": "2", "CERTMIX_SEED": "5", "CERTMIX_FRACTION": "0.3", "CERTMIX_PRESET": "gloro-xs", "CERTMIX_BATCH": "20",
			"CERTMIX_RANK_BATCH": "10", "CERTMIX_STEPS_PER_EPOCH": "5", "CERTMIX_CLASSES": "10", "CERTMIX_CELL": c.Name,
			"CERTMIX_OUT": filepath.Join(cd, "train"), "CERTMIX_STATE_DICT": filepath.Join(cd, "train", StateDictName),
			"CERTMIX_CHECKPOINT": filepath.Join(cd, "train", "checkpoint.pt"), "CERTMIX_RESUME_CHECKPOINT": "", "CERTMIX_RESUME_SAMPLER": "",
			"CERTMIX_SAMPLER_STATE": filepath.Join(cd, "train", "sampler-rank"+r+".json"), "MASTER_ADDR": "127.0.0.1"}
		for k, v := range wantEnv {
			if s.Env[k] != v {
				t.Errorf("rank %d: %s=%q, want %q", rank, k, s.Env[k], v)
			}
		}
		if !strings.HasPrefix(s.Env["CERTMIX_SOCKET"], "unix:/") || s.Env["MASTER_PORT"] == "" {
			t.Errorf("rank %d: socket %q, master port %q", rank, s.Env["CERTMIX_SOCKET"], s.Env["MASTER_PORT"])
		}
		if !slices.Equal(s.Argv, []string{"--epochs", "2", "--rank", r}) {
			t.Errorf("rank %d: arguments %q, want the cell's values", rank, s.Argv)
		}
	}
	// The servers are gone with the cell.
	sock := strings.TrimPrefix(readSeen(t, cd, 0).Env["CERTMIX_SOCKET"], "unix:")
	if _, err := net.Dial("unix", sock); err == nil {
		t.Error("the sampler server still answers after the cell ended")
	}
	if l, _ := os.ReadFile(LogPath(dir, c.Name)); testing.Verbose() {
		t.Logf("%s", l)
	}
	if out, err := RunCell(ctx, dir, c, fake); err != nil || out != Skipped || len(fake.reset()) != 0 {
		t.Fatalf("second run: %v, %v", out, err)
	}
}

// TestExternalCellHoldsOutVal: in a sweep with val: 20 (of 100 real
// images), both external cells (fraction 0 and 0.5) record the same
// validation split in train/val.json, the split sampler.Holdout chooses for
// the real set and val_seed, and their trainer is never served one of its
// images: an epoch is (100 - 20) / 10 steps, and at fraction 0 it serves
// every other real image exactly once.
func TestExternalCellHoldsOutVal(t *testing.T) {
	const real, val = 100, 20
	dir, p := externalSweep(t, "{preset: gloro-xs, fraction: [0, 0.5], epochs: 1, seed: 3}", "batch: 10", "val: 20\nval_seed: 7")
	if len(p.Cells) != 2 {
		t.Fatalf("%d cells, want 2", len(p.Cells))
	}
	t.Setenv("STUB_BATCHES", "epoch")
	ctx := context.Background()
	d, err := shards.Open(ctx, p.Cells[0].Real, shards.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := sampler.Holdout(d.Manifest, val, 7)
	if err != nil {
		t.Fatal(err)
	}
	heldOut := map[int64]bool{}
	for _, r := range rows {
		heldOut[r] = true // real ids are row indices
	}
	for _, c := range p.Cells {
		if c.Trainer.Val != val || c.Trainer.ValSeed != 7 {
			t.Fatalf("%s: trainer %+v, want val 20, val_seed 7", c.Name, c.Trainer)
		}
		if _, err := RunCell(ctx, dir, c, &fakeCertmix{}); err != nil {
			log, _ := os.ReadFile(LogPath(dir, c.Name))
			t.Fatalf("%s: %v\n%s", c.Name, err, log)
		}
		cd := CellDir(dir, c.Name)
		rec, err := rundir.ReadVal(filepath.Join(cd, "train"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rec.Rows, rows) || !slices.Equal(rec.IDs, rows) || rec.Seed != 7 || rec.Dataset != c.Real {
			t.Errorf("%s: val.json %+v, want rows and ids %v of %s, seed 7", c.Name, rec, rows, c.Real)
		}
		s := readSeen(t, cd, 0)
		if want := fmt.Sprint((real - val) / 10); s.Env["CERTMIX_STEPS_PER_EPOCH"] != want || len(s.IDs) != (real-val)/10 {
			t.Errorf("%s: %s steps per epoch, %d batches read, want %s", c.Name, s.Env["CERTMIX_STEPS_PER_EPOCH"], len(s.IDs), want)
		}
		var served []int64
		for _, b := range s.IDs {
			for _, id := range b {
				if id < 1000 { // the real set's
					served = append(served, id)
				}
			}
		}
		for _, id := range served {
			if heldOut[id] {
				t.Errorf("%s: the trainer was served held-out image %d", c.Name, id)
			}
		}
		if c.Fraction == 0 {
			slices.Sort(served)
			var want []int64
			for id := range int64(real) {
				if !heldOut[id] {
					want = append(want, id)
				}
			}
			if !slices.Equal(served, want) {
				t.Errorf("%s: an epoch served %d real images %v, want the %d not held out, once each", c.Name, len(served), served, len(want))
			}
		} else if len(served) == 0 {
			t.Errorf("%s: no real image served", c.Name)
		}
	}
	a, _ := os.ReadFile(filepath.Join(CellDir(dir, p.Cells[0].Name), "train", rundir.ValFile))
	b, _ := os.ReadFile(filepath.Join(CellDir(dir, p.Cells[1].Name), "train", rundir.ValFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("the cells hold out different splits:\n%s\n%s", a, b)
	}
	// An attempt whose split differs from the one an earlier attempt
	// recorded (its checkpoint was made without those images) is refused.
	c := p.Cells[0]
	other := *c.Trainer
	other.ValSeed = 8
	c.Trainer = &other
	if err := recordVal(ctx, filepath.Join(CellDir(dir, c.Name), "train"), c); err == nil || !strings.Contains(err.Error(), "holds out other images") {
		t.Errorf("another split over an earlier attempt's: %v, want a refusal", err)
	}
}

// TestExternalTrainerFails: a trainer that exits non-zero after reading
// from the server leaves a failed cell, never a done one, with its output
// in the cell's log, nothing imported, and its servers stopped.
func TestExternalTrainerFails(t *testing.T) {
	dir, p := externalSweep(t, "{preset: gloro-xs, fraction: [0], epochs: 1}", "batch: 10", "val: 0")
	c := p.Cells[0]
	t.Setenv("STUB_EXIT", "3")
	fake := &fakeCertmix{}
	_, err := RunCell(context.Background(), dir, c, fake)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(err.Error(), "trainer rank 0") {
		t.Fatalf("err = %v, want the trainer's exit status 3", err)
	}
	cd := CellDir(dir, c.Name)
	if IsDone(dir, c.Name) {
		t.Fatal("a failed trainer left a done cell")
	}
	if msg, ok := failure(cd); !ok || !strings.Contains(msg, "exit status 3") {
		t.Errorf("failed marker %q, %v", msg, ok)
	}
	log, _ := os.ReadFile(LogPath(dir, c.Name))
	for _, want := range []string{"stub trainer rank 0 read 2 batches", "failing on purpose", "sampler server: stopped", "failed: cell"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	if calls := fake.reset(); len(calls) != 0 {
		t.Errorf("certmix ran after a failed trainer: %q", calls)
	}
	s := readSeen(t, cd, 0)
	sock := strings.TrimPrefix(s.Env["CERTMIX_SOCKET"], "unix:")
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket %s left behind: %v", sock, err)
	}
	if _, err := net.Dial("unix", sock); err == nil {
		t.Error("the sampler server still answers")
	}
	for _, f := range []string{StateDictName, trainedMarker, "last.safetensors"} {
		if _, err := os.Stat(filepath.Join(cd, "train", f)); err == nil {
			t.Errorf("train/%s exists after a failed trainer", f)
		}
	}
	// A trainer that exits 0 without a state dict fails the cell too.
	t.Setenv("STUB_EXIT", "0")
	os.WriteFile(filepath.Join(filepath.Dir(c.Real), "stub.py"), []byte("print('no state dict')\n"), 0o644)
	if _, err := RunCell(context.Background(), dir, c, fake); err == nil || !strings.Contains(err.Error(), "wrote no state dict") || IsDone(dir, c.Name) {
		t.Fatalf("err = %v, want the missing state dict", err)
	}
}

// TestParseTrainer: the trainer block, file-wide or per grid; its
// ${CERTMIX_...} are kept for the cell; bad blocks are refused.
func TestParseTrainer(t *testing.T) {
	const base = "data: {real: r, test: t}\n"
	f, _, err := Parse([]byte(base+`trainer: {command: [python3, t.py, "${CERTMIX_EPOCHS}", "${HOME}"], batch: 8}
grids:
  - {preset: gloro-xs, fraction: 0, epochs: 3}
  - {label: own, preset: gloro-xs, fraction: 0, epochs: 3, trainer: {command: [x], gpus: 4, batch: 8, crop_pad: 0, arch: gloro}}
`), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(f, "/run")
	if err != nil {
		t.Fatal(err)
	}
	a, b := p.Cells[0].Trainer, p.Cells[1].Trainer
	if !slices.Equal(a.Command, []string{"python3", "t.py", "${CERTMIX_EPOCHS}", "/h"}) || a.Ranks != 1 || a.Batch != 8 || a.CropPad != 4 || a.Dir != "/run" {
		t.Errorf("file-wide trainer %+v", a)
	}
	if !slices.Equal(b.Command, []string{"x"}) || b.Ranks != 4 || b.GPUs != 4 || b.CropPad != 0 || b.Arch != "gloro" {
		t.Errorf("the grid's trainer %+v", b)
	}
	for _, tc := range []struct{ text, want string }{
		{"trainer: {command: [], batch: 8}", "command"},
		{"trainer: {command: [x]}", "batch"},
		{"trainer: {command: [x], batch: 9, gpus: 2}", "not divisible"},
		{"trainer: {command: [x], batch: 8, gpus: -1}", "gpus"},
		{"checkpoint: best\ntrainer: {command: [x], batch: 8}", "use last"},
		{"trainer: {command: [x], batch: 8, nodes: 2}", "nodes"},
	} {
		_, _, err := Parse([]byte(base+tc.text+"\ngrids: [{preset: p, fraction: 0, epochs: 1}]\n"), env(nil))
		if !errors.Is(err, ErrFile) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want ErrFile about %s", tc.text, err, tc.want)
		}
	}
}

// TestSubmitAsksForTheTrainersGPUs: the array tasks of cells whose
// trainer has gpus: N ask Slurm for N GPUs.
func TestSubmitAsksForTheTrainersGPUs(t *testing.T) {
	dir, p := externalSweep(t, "{preset: gloro-xs, fraction: 0, epochs: 1}", "gpus: 2, batch: 10", "val: 0")
	bin := t.TempDir()
	record := filepath.Join(bin, "args")
	os.WriteFile(filepath.Join(bin, "sbatch"), []byte("#!/bin/sh\necho \"$@\" >> "+record+"\necho 7\n"), 0o755)
	if _, err := (Slurm{Binary: "/opt/certmix", Sbatch: filepath.Join(bin, "sbatch")}).Submit(context.Background(), dir, p, p.Cells); err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(record)
	if !strings.Contains(string(args), "--gres=gpu:2") {
		t.Errorf("sbatch %s: want --gres=gpu:2", args)
	}
}
