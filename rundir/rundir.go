// Package rundir owns the files a run leaves behind for other commands to
// read: the training run's per-epoch metrics (metrics.jsonl) and the
// certification's summary (summary.json), with their types, their versions,
// and how they are written and read. certmix train and certify write them;
// certmix table, sweep and report read them, all through this package, so
// that a change to a file is made in one place.
//
// A training run directory holds
//
//	last.safetensors   the newest checkpoint (written atomically)
//	prev.safetensors   the one before it, kept in case last is damaged
//	best.safetensors   the checkpoint of the best selection accuracy so far
//	metrics.jsonl      one [Epoch] per line
//	val.json           the validation split held out of training ([Val]), if any
//
// and a certification directory holds
//
//	summary.json       the [Summary]
//	report.json        certifier.Report (its own package owns its format)
//	radii.csv          certifier's per-image CSV
//	radius_cdf.png, confusion.png
//
// Every file is written to a temporary name and renamed, or appended one
// whole line at a time, so a reader never sees half a file as complete.
package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Names of the files in a run directory.
const (
	LastCheckpoint = "last.safetensors"
	PrevCheckpoint = "prev.safetensors"
	BestCheckpoint = "best.safetensors"
	MetricsFile    = "metrics.jsonl"
	SummaryFile    = "summary.json"
	ReportFile     = "report.json"
	RadiiFile      = "radii.csv"
	RadiusCDFPlot  = "radius_cdf.png"
	ConfusionPlot  = "confusion.png"
)

// ErrVersion says a file was written by a newer certmix than the one
// reading it.
var ErrVersion = errors.New("written by a newer version of certmix")

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so that path holds either its old contents or
// all of data.
func WriteFileAtomic(path string, data []byte) error {
	dir, name := filepath.Split(path)
	f, err := os.CreateTemp(filepath.Clean(dir+"."), "."+name+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
