package sweep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// State is where a cell stands.
type State string

// The states of a cell. A cell is done when its certification finished and
// its done marker was written; failed when its last attempt ended in an
// error or stopped without finishing (killed, out of time); running while a
// process works on it; pending otherwise (queued, or not run yet).
const (
	Pending State = "pending"
	Running State = "running"
	Done    State = "done"
	Failed  State = "failed"
)

// The marker files in a cell's directory. done is written last, atomically,
// after the certification's outputs: a cell is done exactly when it exists.
const (
	doneMarker    = "done"
	failedMarker  = "failed"
	runningMarker = "running"
	logName       = "log"
)

// ErrRunning marks a cell that another live process is running.
var ErrRunning = errors.New("cell is running")

// attempt is what the running marker records: who works on the cell.
type attempt struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Boot is the process's start time in clock ticks since boot (Linux's
	// /proc/PID/stat), so that a reused pid is not taken for the process.
	Boot    uint64    `json:"boot,omitempty"`
	Started time.Time `json:"started"`
	// SlurmJob and SlurmTask identify the array task, when Slurm runs it.
	SlurmJob  string `json:"slurm_job,omitempty"`
	SlurmTask string `json:"slurm_task,omitempty"`
}

// finished is what the done marker records.
type finished struct {
	Finished time.Time `json:"finished"`
	Seconds  float64   `json:"seconds"`
	Host     string    `json:"host"`
}

// IsDone reports whether the cell named name in dir has finished.
func IsDone(dir, name string) bool {
	_, err := os.Stat(filepath.Join(CellDir(dir, name), doneMarker))
	return err == nil
}

// LogPath is the cell's log: the output of its train and certify commands.
func LogPath(dir, name string) string { return filepath.Join(CellDir(dir, name), logName) }

func writeJSONMarker(cellDir, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(cellDir, name), append(data, '\n'))
}

func readAttempt(cellDir string) (attempt, bool) {
	var a attempt
	data, err := os.ReadFile(filepath.Join(cellDir, runningMarker))
	if err != nil || json.Unmarshal(data, &a) != nil {
		return a, false
	}
	return a, true
}

// failure returns the first line of the failed marker, if there is one.
func failure(cellDir string) (string, bool) {
	data, err := os.ReadFile(filepath.Join(cellDir, failedMarker))
	if err != nil {
		return "", false
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	return line, true
}

// alive reports whether the local process of an attempt still runs (on
// this host, by its pid and start time).
func (a attempt) alive() bool {
	host, _ := os.Hostname()
	if a.Host != host || a.PID <= 0 {
		return false
	}
	if err := syscall.Kill(a.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return a.Boot == 0 || processStart(a.PID) == a.Boot
}

// processStart is field 22 of /proc/PID/stat, the process's start time
// (0 where there is no /proc).
func processStart(pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// lock writes the running marker for a, atomically and only if no live
// process of this host holds it (a marker left by a dead one is
// replaced): two sweeps on one machine that reach a cell at once do not
// both run it. Cells on Slurm are kept from local runs by [Idle].
func lock(cellDir string, a attempt) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	path := filepath.Join(cellDir, runningMarker)
	for try := 0; ; try++ {
		tmp, err := os.CreateTemp(cellDir, ".running.tmp*")
		if err != nil {
			return err
		}
		_, err = tmp.Write(append(data, '\n'))
		if err == nil {
			err = tmp.Chmod(0o644)
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Link(tmp.Name(), path) // fails if the marker exists
		}
		os.Remove(tmp.Name())
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrExist) || try > 0 {
			return fmt.Errorf("running marker: %w", err)
		}
		held, ok := readAttempt(cellDir)
		if ok && held.alive() {
			return fmt.Errorf("%w: %s", ErrRunning, held)
		}
		os.Remove(path) // left by a process that died
	}
}

func (a attempt) String() string {
	s := fmt.Sprintf("pid %d on %s since %s", a.PID, a.Host, a.Started.Format(time.DateTime))
	if a.SlurmJob != "" {
		s += fmt.Sprintf(", Slurm job %s_%s", a.SlurmJob, a.SlurmTask)
	}
	return s
}
