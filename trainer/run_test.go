package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"certmix/rundir"
	"certmix/shards"
	"certmix/trainer/checkpoint"
)

// openToy opens toyBatches at a checkpoint's state (the next step).
func openToy(_ context.Context, _ Config, state json.RawMessage) (Batches, error) {
	b := &toyBatches{n: 16}
	if state != nil {
		if err := json.Unmarshal(state, &b.step); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// scripted is an Evaluator that reports the given selection accuracies,
// one per epoch, and counts its calls.
type scripted struct {
	acc   []float64
	calls *int
}

func (s scripted) Evaluate(_ context.Context, _ *Trainer, e *rundir.Epoch) error {
	v := s.acc[*s.calls]
	*s.calls++
	e.TestCertified = &v
	return nil
}

func checkpointStep(t *testing.T, dir, name string) int64 {
	t.Helper()
	store, _ := shards.NewLocal(dir)
	ck, err := checkpoint.Read(context.Background(), store, name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	tr, _, err := Load(ck)
	if err != nil {
		t.Fatal(err)
	}
	return tr.Step
}

// TestRunWritesItsFiles: Run keeps last (every CheckpointEvery steps and
// every epoch's end) and prev (the one before last), saves best only when
// the selection accuracy improves, and writes one metrics line per epoch.
func TestRunWritesItsFiles(t *testing.T) {
	cfg := tinyConfig()
	cfg.Epochs, cfg.CheckpointEvery = 3, 4
	dir := t.TempDir()
	calls := 0
	var saves []int64
	tr, err := Run(context.Background(), cfg, openToy, RunOptions{Dir: dir, Eval: scripted{acc: []float64{0.5, 0.4, 0.6}, calls: &calls},
		Progress: func(step, total int64, _ float64) {
			if total != 30 {
				t.Fatalf("total %d steps, want 30", total)
			}
			saves = append(saves, step)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Step != 30 || calls != 3 || len(saves) != 30 {
		t.Fatalf("%d steps, %d evaluations, %d progress calls; want 30, 3, 30", tr.Step, calls, len(saves))
	}
	// Checkpoints at 4, 8, 10 (epoch), 12, 16, 20 (epoch), 24, 28, 30 (epoch).
	if got := checkpointStep(t, dir, rundir.LastCheckpoint); got != 30 {
		t.Errorf("last at step %d, want 30", got)
	}
	if got := checkpointStep(t, dir, rundir.PrevCheckpoint); got != 28 {
		t.Errorf("prev at step %d, want 28 (the checkpoint every 4 steps)", got)
	}
	if got := checkpointStep(t, dir, rundir.BestCheckpoint); got != 30 {
		t.Errorf("best at step %d, want 30 (0.6 beats 0.5 of epoch 0; 0.4 did not)", got)
	}
	if tr.Best != 0.6 {
		t.Errorf("best accuracy %v, want 0.6", tr.Best)
	}
	ep, err := rundir.ReadMetrics(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ep) != 3 || ep[1].Epoch != 1 || ep[1].Step != 20 || *ep[1].TestCertified != 0.4 || ep[2].Model["k"] == 0 {
		t.Errorf("metrics %+v", ep)
	}
}

// TestRunResumes: a run cancelled mid-epoch and resumed, and one resumed
// from prev because last is damaged, end with the weights of a run that
// never stopped.
func TestRunResumes(t *testing.T) {
	cfg := tinyConfig()
	cfg.Epochs, cfg.CheckpointEvery = 3, 7
	want, err := Run(context.Background(), cfg, openToy, RunOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, damage := range []bool{false, true} {
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		_, err := Run(ctx, cfg, openToy, RunOptions{Dir: dir, Progress: func(step, _ int64, _ float64) {
			if step == 17 {
				cancel()
			}
		}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled run: %v", err)
		}
		from := int64(14)
		if damage {
			// A damaged last checkpoint: resume from prev (step 10).
			if err := os.Truncate(filepath.Join(dir, rundir.LastCheckpoint), 100); err != nil {
				t.Fatal(err)
			}
			from = 10
		}
		var logs []string
		got, err := Run(context.Background(), Config{}, openToy, RunOptions{Dir: dir, Resume: true,
			Logf: func(f string, a ...any) { logs = append(logs, f) }, Progress: func(step, _ int64, _ float64) {
				if from >= 0 && step != from+1 {
					t.Fatalf("resumed at step %d, want %d", step, from+1)
				}
				from = -1
			}})
		if err != nil {
			t.Fatalf("resume (damaged last: %v): %v", damage, err)
		}
		if damage && !slices.ContainsFunc(logs, func(s string) bool { return s == "%s is damaged (%v); resuming from %s" }) {
			t.Errorf("no log line said last was damaged: %q", logs)
		}
		for i, p := range got.Model.Params() {
			if !slices.Equal(p.W, want.Model.Params()[i].W) {
				t.Fatalf("damaged last %v: %s differs from the uninterrupted run's", damage, p.Name)
			}
		}
	}
}

// TestRunRefusesOtherData: resuming on data with another epoch length is
// refused rather than continued on the wrong schedule.
func TestRunRefusesOtherData(t *testing.T) {
	cfg := tinyConfig()
	cfg.Epochs = 1
	dir := t.TempDir()
	if _, err := Run(context.Background(), cfg, openToy, RunOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	other := func(ctx context.Context, c Config, s json.RawMessage) (Batches, error) {
		b, err := openToy(ctx, c, s)
		return shortEpochs{b}, err
	}
	if _, err := Run(context.Background(), cfg, other, RunOptions{Dir: dir, Resume: true}); err == nil {
		t.Fatal("resumed on data with 5 steps per epoch from a checkpoint of 10")
	}
}

type shortEpochs struct{ Batches }

func (shortEpochs) StepsPerEpoch() int64 { return 5 }
