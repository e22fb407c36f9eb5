package sweep

import (
	"certmix/rundir"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Runner runs one certmix command (train or certify) with args, its output
// into log. The sweep runs cells through it, so that it depends on the
// commands' flags and files, not on the trainer's internals.
type Runner interface {
	Run(ctx context.Context, args []string, log io.Writer) error
}

// Command runs the certmix binary at Path (usually os.Executable()).
type Command struct {
	Path string
	// Env is added to the environment the commands inherit.
	Env []string
}

// Run starts the binary, and on cancellation sends it SIGTERM (and SIGKILL
// 30 s later). The child dies with its parent (Linux's parent-death
// signal), so that a killed sweep leaves no orphan training.
func (c Command) Run(ctx context.Context, args []string, log io.Writer) error {
	cmd := exec.CommandContext(ctx, c.Path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	setParentDeath(cmd)
	// The parent-death signal follows the thread that forked, which must
	// therefore live as long as the child.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("certmix %s: %w", args[0], ctx.Err())
		}
		return fmt.Errorf("certmix %s: %w", args[0], err)
	}
	return nil
}

// Outcome says what [RunCell] did.
type Outcome int

// Skipped: the cell was done already; Ran: it ran (or resumed) to the end.
const (
	Skipped Outcome = iota
	Ran
)

// RunCell brings the cell named c.Name in the sweep directory dir to done:
//
//   - a done cell is skipped;
//   - otherwise it takes the running marker (refusing with [ErrRunning]
//     when a live process holds it), records the datasets' manifests ([RecordData]), runs certmix train into train/ (with
//     --resume when train/last.safetensors exists: an interrupted cell goes
//     on from its checkpoint) or, for a cell with an external trainer, the
//     trainer's ranks fed by the cell's sampler servers and certmix import
//     of the state dict they wrote (see [TrainerVars]), then certmix
//     certify into certify/, and writes the done marker atomically;
//   - on error it writes the failed marker with the error and returns it.
//
// The commands' output goes to the cell's log (appended, so every attempt
// is kept).
func RunCell(ctx context.Context, dir string, c Cell, r Runner) (out Outcome, err error) {
	cd := CellDir(dir, c.Name)
	if IsDone(dir, c.Name) {
		return Skipped, nil
	}
	host, _ := os.Hostname()
	start := time.Now()
	a := attempt{Host: host, PID: os.Getpid(), Boot: processStart(os.Getpid()), Started: start.UTC(),
		SlurmJob: os.Getenv("SLURM_ARRAY_JOB_ID"), SlurmTask: os.Getenv("SLURM_ARRAY_TASK_ID")}
	if err := os.MkdirAll(cd, 0o755); err != nil {
		return Ran, fmt.Errorf("cell %s: %w", c.Name, err)
	}
	if err := lock(cd, a); err != nil {
		return Ran, fmt.Errorf("cell %s: %w", c.Name, err)
	}
	if IsDone(dir, c.Name) { // finished by another process meanwhile
		os.Remove(filepath.Join(cd, runningMarker))
		return Skipped, nil
	}
	os.Remove(filepath.Join(cd, failedMarker))
	log, err := os.OpenFile(filepath.Join(cd, logName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return Ran, fmt.Errorf("cell %s: %w", c.Name, err)
	}
	defer log.Close()
	defer func() {
		if err != nil {
			err = fmt.Errorf("cell %s: %w", c.Name, err)
			fmt.Fprintf(log, "== %s failed: %v\n", time.Now().UTC().Format(time.RFC3339), err)
			// A cancelled attempt (Ctrl-C, SIGTERM from Slurm) is failed too:
			// it did not finish. Its next run resumes it.
			if werr := writeAtomic(filepath.Join(cd, failedMarker), []byte(err.Error()+"\n")); werr != nil {
				err = errors.Join(err, werr)
			}
		}
		os.Remove(filepath.Join(cd, runningMarker))
	}()
	fmt.Fprintf(log, "== %s attempt: %s\n", start.UTC().Format(time.RFC3339), a)
	if _, err := RecordData(ctx, cd, c); err != nil {
		return Ran, err
	}
	if c.Trainer != nil {
		if err := trainExternal(ctx, cd, c, r, log); err != nil {
			return Ran, err
		}
	} else {
		train := append([]string{"train"}, c.Train...)
		train = append(train, "--out", filepath.Join(cd, "train"))
		if _, err := os.Stat(filepath.Join(cd, "train", rundir.LastCheckpoint)); err == nil {
			train = append(train, "--resume")
		}
		if err := step(ctx, r, train, log); err != nil {
			return Ran, err
		}
	}
	ckpt := filepath.Join(cd, "train", c.Checkpoint+".safetensors")
	certify := append([]string{"certify"}, c.Certify...)
	certify = append(certify, "--checkpoint", ckpt, "--out", filepath.Join(cd, "certify"))
	if err := step(ctx, r, certify, log); err != nil {
		return Ran, err
	}
	if _, err := os.Stat(filepath.Join(cd, "certify", rundir.SummaryFile)); err != nil {
		return Ran, fmt.Errorf("certify wrote no summary: %w", err)
	}
	if err := writeJSONMarker(cd, doneMarker, finished{Finished: time.Now().UTC(), Seconds: time.Since(start).Seconds(), Host: host}); err != nil {
		return Ran, err
	}
	fmt.Fprintf(log, "== %s done in %s\n", time.Now().UTC().Format(time.RFC3339), time.Since(start).Round(time.Second))
	return Ran, nil
}

// step runs one command, logging its command line first.
func step(ctx context.Context, r Runner, args []string, log io.Writer) error {
	fmt.Fprintf(log, "== %s certmix %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(args, " "))
	return r.Run(ctx, args, log)
}
