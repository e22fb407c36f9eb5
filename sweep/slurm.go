package sweep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Slurm submits cells to a Slurm cluster as one job array (sbatch --array),
// one array task per cell, with the resources of the sweep file's slurm
// section. Each task runs `certmix sweep cell DIR NAME`, that is [RunCell]:
// skip-if-done, resume and the data record work as they do locally.
type Slurm struct {
	// Binary is the certmix binary the tasks run; the sweep directory and
	// it must be at the same paths on the compute nodes (a shared file
	// system).
	Binary string
	// Sbatch is the sbatch command (default "sbatch" on PATH).
	Sbatch string
}

// Submission is one sbatch of a sweep, kept in DIR/slurm/N/submission.json:
// array task i runs Cells[i].
type Submission struct {
	Job       string    `json:"job"`
	Cells     []string  `json:"cells"`
	Args      []string  `json:"sbatch"`
	Submitted time.Time `json:"submitted"`
	// Dir is where the submission's script, record and task logs are.
	Dir string `json:"-"`
}

// TaskLog is the Slurm output file of array task i.
func (s *Submission) TaskLog(i int) string { return filepath.Join(s.Dir, strconv.Itoa(i)+".log") }

// Submit writes the job script of cells into a new DIR/slurm/N and submits
// it with the plan's resources (and the GPUs of the cells' external
// trainers, when they ask for more). The array's task order is frozen in the
// script, so a later change of the plan cannot move a queued task to
// another cell.
func (s Slurm) Submit(ctx context.Context, dir string, p *Plan, cells []Cell) (*Submission, error) {
	if len(cells) == 0 {
		return nil, errors.New("submit: no cells to run")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	sub := &Submission{}
	for _, c := range cells {
		sub.Cells = append(sub.Cells, c.Name)
	}
	if sub.Dir, err = newSubmissionDir(filepath.Join(dir, "slurm")); err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	script := filepath.Join(sub.Dir, "job.sh")
	if err := writeAtomic(script, []byte(JobScript(s.Binary, dir, sub.Cells))); err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	res := p
	if need := gpusOf(cells); need > p.Slurm.GPUs {
		withGPUs := *p
		withGPUs.Slurm.GPUs = need
		res = &withGPUs
	}
	sub.Args = SbatchArgs(res, sub.Dir, len(cells))
	sbatch := s.Sbatch
	if sbatch == "" {
		sbatch = "sbatch"
	}
	cmd := exec.CommandContext(ctx, sbatch, append(sub.Args, script)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("submit: %s: %w: %s", sbatch, err, strings.TrimSpace(stderr.String()))
	}
	// --parsable prints "jobid" or "jobid;cluster".
	job, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	if _, err := strconv.ParseUint(job, 10, 64); err != nil {
		return nil, fmt.Errorf("submit: sbatch printed %q, not a job id", out)
	}
	sub.Job, sub.Submitted = job, time.Now().UTC()
	data, err := json.MarshalIndent(sub, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(filepath.Join(sub.Dir, "submission.json"), append(data, '\n')); err != nil {
		return nil, fmt.Errorf("submit: job %s is queued but not recorded: %w", job, err)
	}
	return sub, nil
}

// gpusOf is the most GPUs an external trainer of cells asks for: every
// task of the array gets them (--gres=gpu:N).
func gpusOf(cells []Cell) int {
	n := 0
	for _, c := range cells {
		if c.Trainer != nil {
			n = max(n, c.Trainer.GPUs)
		}
	}
	return n
}

// newSubmissionDir makes the next free root/N (an atomic mkdir, so two
// submissions at once get two directories).
func newSubmissionDir(root string) (string, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	for n := 1; ; n++ {
		d := filepath.Join(root, strconv.Itoa(n))
		err := os.Mkdir(d, 0o755)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
}

// SbatchArgs are the sbatch options of a submission of n cells: the
// array, its task logs and the plan's resources.
func SbatchArgs(p *Plan, subDir string, n int) []string {
	name := p.Name
	if name == "" {
		name = "sweep"
	}
	array := "0-" + strconv.Itoa(n-1)
	if r := p.Slurm.MaxRunning; r > 0 {
		array += "%" + strconv.Itoa(r)
	}
	a := []string{"--parsable", "--job-name=certmix-" + name, "--array=" + array,
		"--output=" + filepath.Join(subDir, "%a.log")}
	r := p.Slurm
	if r.Partition != "" {
		a = append(a, "--partition="+r.Partition)
	}
	if r.CPUsPerTask > 0 {
		a = append(a, "--cpus-per-task="+strconv.Itoa(r.CPUsPerTask))
	}
	if r.Mem != "" {
		a = append(a, "--mem="+r.Mem)
	}
	if r.Time != "" {
		a = append(a, "--time="+r.Time)
	}
	if r.GPUs > 0 {
		a = append(a, "--gres=gpu:"+strconv.Itoa(r.GPUs))
	}
	return append(a, r.Extra...)
}

// JobScript is the batch script of a submission: array task i runs cell
// names[i] of the sweep directory dir, with OpenBLAS on the task's CPUs.
func JobScript(binary, dir string, names []string) string {
	var b strings.Builder
	b.WriteString("#!/bin/bash\n# certmix sweep: array task i runs cell i of the list below (see submission.json).\nset -eu\ncells=(\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %s\n", shellQuote(n))
	}
	b.WriteString(")\n")
	b.WriteString("export OPENBLAS_NUM_THREADS=\"${OPENBLAS_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}\"\n")
	fmt.Fprintf(&b, "exec %s sweep cell %s \"${cells[$SLURM_ARRAY_TASK_ID]}\"\n", shellQuote(binary), shellQuote(dir))
	return b.String()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Submissions reads the sweep directory's submissions, oldest first.
func Submissions(dir string) ([]*Submission, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "slurm", "*", "submission.json"))
	if err != nil {
		return nil, err
	}
	var subs []*Submission
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read submission: %w", err)
		}
		s := &Submission{Dir: filepath.Dir(p)}
		if err := json.Unmarshal(data, s); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		subs = append(subs, s)
	}
	n := func(s *Submission) int { k, _ := strconv.Atoi(filepath.Base(s.Dir)); return k }
	slices.SortFunc(subs, func(a, b *Submission) int { return n(a) - n(b) })
	return subs, nil
}

// Queue tells the state of a job's array tasks as the scheduler sees them:
// task index to a Slurm state (PENDING, RUNNING, COMPLETED, FAILED, ...).
// A job the scheduler has forgotten gives an empty map.
type Queue interface {
	Tasks(ctx context.Context, job string) (map[int]string, error)
}

// Squeue asks squeue (on PATH unless Path is set).
type Squeue struct{ Path string }

// Tasks runs squeue -h -r -j JOB --states=all -o "%K|%T".
func (q Squeue) Tasks(ctx context.Context, job string) (map[int]string, error) {
	path := q.Path
	if path == "" {
		path = "squeue"
	}
	cmd := exec.CommandContext(ctx, path, "-h", "-r", "-j", job, "--states=all", "-o", "%K|%T")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "Invalid job id") {
			return map[int]string{}, nil
		}
		return nil, fmt.Errorf("squeue: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return parseSqueue(string(out))
}

func parseSqueue(out string) (map[int]string, error) {
	tasks := map[int]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		idx, state, ok := strings.Cut(line, "|")
		if !ok {
			return nil, fmt.Errorf("squeue: line %q: want TASK|STATE", line)
		}
		i, err := strconv.Atoi(idx)
		if err != nil {
			continue // "N/A": not an array task
		}
		tasks[i] = state
	}
	return tasks, nil
}
