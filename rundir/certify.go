package rundir

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"certmix/certifier"
)

// WriteCertification writes a certification's files into dir: radii.csv
// (per image, certified at eps), report.json, the radius CDF and
// confusion plots, and summary.json last, so that a directory with a
// summary.json is a complete certification (sweeps take it as done).
func WriteCertification(dir string, s Summary, results []certifier.Result, rep *certifier.Report, eps float64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{RadiiFile, func(b *bytes.Buffer) error { return certifier.WriteCSV(b, results, eps) }},
		{ReportFile, func(b *bytes.Buffer) error { return rep.WriteJSON(b) }},
		{RadiusCDFPlot, func(b *bytes.Buffer) error {
			return certifier.PlotRadiusCurve(b, []certifier.Run{{Name: "certmix", Results: results}}, eps, certifier.PlotOptions{})
		}},
		{ConfusionPlot, func(b *bytes.Buffer) error {
			return certifier.PlotConfusion(b, certifier.NewConfusion(results, eps), certifier.PlotOptions{})
		}},
	}
	// An older summary would mark the directory complete while the other
	// files are being replaced.
	if err := os.Remove(filepath.Join(dir, SummaryFile)); err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, f := range files {
		var b bytes.Buffer
		if err := f.write(&b); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, f.name), err)
		}
		if err := WriteFileAtomic(filepath.Join(dir, f.name), b.Bytes()); err != nil {
			return err
		}
	}
	return WriteSummary(dir, s)
}
