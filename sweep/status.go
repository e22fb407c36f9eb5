package sweep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// CellStatus is one line of certmix sweep status.
type CellStatus struct {
	Cell  string
	State State
	// Log is the cell's log (its commands' output).
	Log string
	// Note says more: who runs it, where it is queued, why it failed.
	Note string
}

// Status tells the state of every cell of the sweep directory dir's plan,
// from the cells' markers and, for cells submitted to Slurm, the queue q
// (nil: markers only). See [State] for what each state means.
func Status(ctx context.Context, dir string, q Queue) ([]CellStatus, error) {
	p, err := ReadPlan(dir)
	if err != nil {
		return nil, err
	}
	subs, err := Submissions(dir)
	if err != nil {
		return nil, err
	}
	type task struct {
		sub   *Submission
		index int
	}
	latest := map[string]task{}
	for _, s := range subs {
		for i, name := range s.Cells {
			latest[name] = task{s, i}
		}
	}
	queued := map[string]map[int]string{}
	var queueErr error
	slurmState := func(job string, index int) (string, bool) {
		if q == nil {
			return "", false
		}
		tasks, ok := queued[job]
		if !ok {
			var err error
			if tasks, err = q.Tasks(ctx, job); err != nil {
				queueErr = err
				return "", false
			}
			queued[job] = tasks
		}
		return tasks[index], true
	}
	var out []CellStatus
	for _, c := range p.Cells {
		out = append(out, cellStatus(dir, c.Name, latest[c.Name].sub, latest[c.Name].index, slurmState))
	}
	if queueErr != nil {
		return out, fmt.Errorf("status: the Slurm states are unknown: %w", queueErr)
	}
	return out, nil
}

func cellStatus(dir, name string, sub *Submission, index int, slurmState func(string, int) (string, bool)) CellStatus {
	cd := CellDir(dir, name)
	st := CellStatus{Cell: name, Log: LogPath(dir, name)}
	if IsDone(dir, name) {
		st.State = Done
		return st
	}
	a, running := readAttempt(cd)
	if running {
		if a.SlurmJob == "" {
			if a.alive() {
				st.State, st.Note = Running, a.String()
				return st
			}
		} else if idx, err := parseIndex(a.SlurmTask); err == nil {
			s, known := slurmState(a.SlurmJob, idx)
			if !known || isActive(s) {
				st.State, st.Note = Running, a.String()
				if !known {
					st.Note += " (Slurm not asked)"
				}
				return st
			}
		}
	}
	if msg, ok := failure(cd); ok {
		st.State, st.Note = Failed, msg
		return st
	}
	if IsDone(dir, name) { // finished while we looked
		st.State = Done
		return st
	}
	if running {
		st.State, st.Note = Failed, "stopped without finishing ("+a.String()+"); run the sweep again to resume it"
		return st
	}
	if sub != nil {
		s, known := slurmState(sub.Job, index)
		switch {
		case !known:
			st.State, st.Note = Pending, fmt.Sprintf("submitted as Slurm job %s_%d (Slurm not asked)", sub.Job, index)
		case s == "PENDING" || s == "REQUEUED":
			st.State, st.Note = Pending, fmt.Sprintf("queued as Slurm job %s_%d", sub.Job, index)
		case isActive(s):
			st.State, st.Note = Running, fmt.Sprintf("starting as Slurm job %s_%d", sub.Job, index)
		case IsDone(dir, name):
			st.State = Done
		default:
			if s == "" {
				s = "gone from the queue"
			}
			st.State, st.Note = Failed, fmt.Sprintf("Slurm job %s_%d ended (%s) without running the cell; see %s", sub.Job, index, s, sub.TaskLog(index))
		}
		return st
	}
	st.State, st.Note = Pending, "not run yet"
	return st
}

func parseIndex(s string) (int, error) {
	var i int
	_, err := fmt.Sscanf(s, "%d", &i)
	return i, err
}

// isActive reports whether a Slurm state is one of a task that is on a
// node or about to be.
func isActive(s string) bool {
	switch s {
	case "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESIZING":
		return true
	}
	return false
}

// Idle returns the cells that are not done and that neither a live process
// nor the Slurm queue q (nil: none) holds, and the statuses of those it
// leaves out: what a local run may start without running a cell twice.
func Idle(ctx context.Context, dir string, q Queue) ([]Cell, []CellStatus, error) {
	p, err := ReadPlan(dir)
	if err != nil {
		return nil, nil, err
	}
	sts, err := Status(ctx, dir, q)
	if err != nil {
		return nil, nil, err
	}
	var idle []Cell
	var busy []CellStatus
	for i, s := range sts {
		switch {
		case s.State == Running || (s.State == Pending && strings.Contains(s.Note, "Slurm")):
			busy = append(busy, s)
		case s.State != Done:
			idle = append(idle, p.Cells[i])
		}
	}
	return idle, busy, nil
}

// Counts tallies states: "3 done, 1 running".
func Counts(sts []CellStatus) string {
	n := map[State]int{}
	for _, s := range sts {
		n[s.State]++
	}
	var parts []string
	for _, s := range []State{Done, Running, Pending, Failed} {
		if n[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[s], s))
		}
	}
	return fmt.Sprintf("%d cells: %s", len(sts), strings.Join(parts, ", "))
}

// Wait polls [Status] every poll until none of the named cells is pending
// or running, printing the counts to progress when they change. It returns
// an error naming the cells that failed.
func Wait(ctx context.Context, dir string, names []string, q Queue, poll time.Duration, progress io.Writer) error {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	last := ""
	for {
		all, err := Status(ctx, dir, q)
		if all == nil {
			return err
		}
		if err != nil && progress != nil {
			// squeue failed this time; the markers still tell most states.
			fmt.Fprintf(progress, "%s %v\n", time.Now().Format(time.TimeOnly), err)
		}
		var mine []CellStatus
		busy := false
		for _, s := range all {
			if want[s.Cell] {
				mine = append(mine, s)
				busy = busy || s.State == Pending || s.State == Running
			}
		}
		if c := Counts(mine); c != last && progress != nil {
			fmt.Fprintf(progress, "%s %s\n", time.Now().Format(time.TimeOnly), c)
			last = c
		}
		if !busy {
			var errs []error
			for _, s := range mine {
				if s.State == Failed {
					errs = append(errs, fmt.Errorf("cell %s failed: %s (log %s)", s.Cell, s.Note, s.Log))
				}
			}
			return errors.Join(errs...)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the sweep (its Slurm jobs go on): %w", ctx.Err())
		case <-time.After(poll):
		}
	}
}
