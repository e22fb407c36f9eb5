package rundir

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// MetricsVersion is the version of the lines of metrics.jsonl this package
// writes. Lines without a version field are version 1.
const MetricsVersion = 1

// Epoch is one line of metrics.jsonl: what the training run measured at
// the end of an epoch. Accuracies are fractions; a nil accuracy was not
// measured (no evaluation set given).
type Epoch struct {
	Version    int     `json:"version"`
	Epoch      int64   `json:"epoch"` // counted from 0
	Step       int64   `json:"step"`  // steps taken at its end
	TrainLoss  float64 `json:"train_loss"`
	ImagesPerS float64 `json:"images_per_s"`
	LR         float64 `json:"lr"`
	// TrainClean is the clean accuracy on the evaluation images of the real
	// training set.
	TrainClean *float64 `json:"train_clean,omitempty"`
	// ValClean and ValCertified are measured on the held-out validation
	// images, when the run has some; they choose best.safetensors then.
	ValClean     *float64 `json:"val_clean,omitempty"`
	ValCertified *float64 `json:"val_certified,omitempty"`
	// TestClean and TestCertified are measured on the evaluation images of
	// the test set.
	TestClean         *float64 `json:"test_clean,omitempty"`
	TestCertified     *float64 `json:"test_certified,omitempty"`
	GeneralizationGap *float64 `json:"generalization_gap,omitempty"`
	// Model holds what the architecture's loss reports (the Lipschitz
	// bound, the training eps, p).
	Model map[string]float64 `json:"model,omitempty"`
}

// MetricsWriter appends [Epoch] lines to a metrics.jsonl.
type MetricsWriter struct {
	f    *os.File
	path string
}

// OpenMetrics opens dir/metrics.jsonl for appending, creating it.
func OpenMetrics(dir string) (*MetricsWriter, error) {
	path := filepath.Join(dir, MetricsFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &MetricsWriter{f: f, path: path}, nil
}

// Append writes e as one line, in one write, and syncs it.
func (w *MetricsWriter) Append(e Epoch) error {
	e.Version = MetricsVersion
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("%s: %w", w.path, err)
	}
	if _, err := w.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("%s: %w", w.path, err)
	}
	return w.f.Sync()
}

// Close closes the file.
func (w *MetricsWriter) Close() error { return w.f.Close() }

// ReadMetrics reads dir/metrics.jsonl. An epoch written twice (a run
// resumed from before the epoch's end) keeps its last line, in the place
// of its first. A missing file gives no epochs; a line that does not parse
// is an error naming the file and the line.
func ReadMetrics(dir string) ([]Epoch, error) {
	path := filepath.Join(dir, MetricsFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	var out []Epoch
	at := map[int64]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e Epoch
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if e.Version == 0 {
			e.Version = 1
		}
		if e.Version > MetricsVersion {
			return nil, fmt.Errorf("%s:%d: version %d: %w", path, line, e.Version, ErrVersion)
		}
		if i, ok := at[e.Epoch]; ok {
			out[i] = e
			continue
		}
		at[e.Epoch] = len(out)
		out = append(out, e)
	}
	return out, sc.Err()
}
