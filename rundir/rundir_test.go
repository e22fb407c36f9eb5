package rundir

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func ptr(v float64) *float64 { return &v }

func TestSummaryRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := Summary{Arch: "gloro", Norm: "l2", Images: 100, K: 3.5, Clean: 0.8, Radii: []float64{0.1, 0.2},
		Certified: []float64{0.6, 0.4}, TrainClean: 0.9, GeneralizationGap: 0.1, Proof: "test"}
	if err := WriteSummary(dir, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadSummary(dir)
	if err != nil {
		t.Fatal(err)
	}
	in.Version = SummaryVersion
	if !reflect.DeepEqual(in, out) {
		t.Errorf("read %+v, wrote %+v", out, in)
	}
	// No temporary file is left beside it.
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want summary.json alone", len(ents))
	}
}

func TestSummaryRefusals(t *testing.T) {
	for name, body := range map[string]string{
		"newer version":    `{"version": 99, "eps": [], "certified": []}`,
		"radii mismatch":   `{"eps": [0.1, 0.2], "certified": [0.5]}`,
		"not json":         `{"eps": [0.1`,
		"wrong field type": `{"clean": "high"}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, SummaryFile), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadSummary(dir)
			if err == nil || !strings.Contains(err.Error(), SummaryFile) {
				t.Fatalf("ReadSummary = %v, want an error naming %s", err, SummaryFile)
			}
			if name == "newer version" && !errors.Is(err, ErrVersion) {
				t.Errorf("error %v does not wrap ErrVersion", err)
			}
		})
	}
	// A version-less file (written before versions) reads as version 1.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, SummaryFile), []byte(`{"arch":"gloro","eps":[0.1],"certified":[0.5]}`), 0o644)
	if s, err := ReadSummary(dir); err != nil || s.Version != 1 || s.Certified[0] != 0.5 {
		t.Errorf("legacy summary: %+v, %v", s, err)
	}
	if err := WriteSummary(t.TempDir(), Summary{Radii: []float64{1}}); err == nil {
		t.Error("WriteSummary accepted a summary with 1 radius and 0 accuracies")
	}
}

func TestMetricsAppendAndRead(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenMetrics(dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := []Epoch{
		{Epoch: 0, Step: 10, TrainLoss: 2, TestCertified: ptr(0.1), Model: map[string]float64{"lipschitz": 3}},
		{Epoch: 1, Step: 20, TrainLoss: 1.5, TestCertified: ptr(0.2)},
		{Epoch: 1, Step: 20, TrainLoss: 1.4, TestCertified: ptr(0.25)}, // resumed: the later line wins
		{Epoch: 2, Step: 30, TrainLoss: 1.2},
	}
	for _, e := range lines {
		if err := w.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	got, err := ReadMetrics(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Epoch{lines[0], lines[2], lines[3]}
	for i := range want {
		want[i].Version = MetricsVersion
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read %+v\nwant %+v", got, want)
	}
	if got[2].TestCertified != nil {
		t.Error("an unmeasured accuracy reads as measured")
	}
}

func TestMetricsErrors(t *testing.T) {
	if e, err := ReadMetrics(t.TempDir()); err != nil || e != nil {
		t.Errorf("missing file: %v, %v; want no epochs and no error", e, err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, MetricsFile), []byte("{\"epoch\":0}\n{\"epoch\":1,\"tr"), 0o644)
	if _, err := ReadMetrics(dir); err == nil || !strings.Contains(err.Error(), "metrics.jsonl:2") {
		t.Errorf("damaged line 2: %v, want an error naming metrics.jsonl:2", err)
	}
	os.WriteFile(filepath.Join(dir, MetricsFile), []byte("{\"epoch\":0,\"version\":7}\n"), 0o644)
	if _, err := ReadMetrics(dir); !errors.Is(err, ErrVersion) {
		t.Errorf("newer version: %v, want ErrVersion", err)
	}
}
