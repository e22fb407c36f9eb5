package sweep

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// DefaultDir is the sweep directory of the file f read from path, when the
// user names none: runs/NAME, NAME the file's name field or else the
// file's base name without its extension.
func DefaultDir(f *File, path string) string {
	name := f.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return filepath.Join("runs", name)
}

// Start prepares dir for plan (Prepare) and returns the cells to run now
// and those to leave alone: cells running here, or queued or running in
// a Slurm job the directory has submitted (asked of squeue only then).
func Start(ctx context.Context, dir string, plan *Plan, source []byte) (todo []Cell, busy []CellStatus, err error) {
	if err := Prepare(dir, plan, source); err != nil {
		return nil, nil, err
	}
	var q Queue
	if subs, err := Submissions(dir); err == nil && len(subs) > 0 {
		q = Squeue{}
	}
	return Idle(ctx, dir, q)
}

// BLASThreads is the environment that gives each of parallel cells run
// at once on this machine its share of the CPUs for OpenBLAS, unless the
// user has set OPENBLAS_NUM_THREADS.
func BLASThreads(parallel int) []string {
	if _, set := os.LookupEnv("OPENBLAS_NUM_THREADS"); set || parallel <= 1 {
		return nil
	}
	return []string{"OPENBLAS_NUM_THREADS=" + strconv.Itoa(max(runtime.NumCPU()/parallel, 1))}
}
