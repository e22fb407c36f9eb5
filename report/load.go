package report

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"certmix/certifier"
	"certmix/rundir"
	"certmix/sweep"
)

// Result is what a cell's files say, in percent (accuracies) and points
// (differences of accuracies).
type Result struct {
	sweep.Cell
	// Done is false for a cell of the plan that has not finished; its
	// numbers are then zero.
	Done bool
	// Clean and Certified are the test accuracies of the certified
	// checkpoint, certified at Eps (certify's report.json).
	Clean, Certified float64
	Eps              float64
	// Images is the number of test images certified (report.json's n),
	// for the binomial interval of a single seed.
	Images int
	// Radii and CertifiedAt are the certified accuracies at several radii
	// (certify's summary.json).
	Radii, CertifiedAt []float64
	// TrainClean is the clean accuracy on the real training images and
	// GeneralizationGap = TrainClean - Clean (summary.json).
	TrainClean, GeneralizationGap float64
	// History holds the per-epoch evaluations of the training run
	// (metrics.jsonl): certified accuracy on its evaluation images.
	History []rundir.Epoch
}

// Dir is the cell's directory.
func (r Result) dir(sweepDir string) string { return sweep.CellDir(sweepDir, r.Name) }

// Load reads the results of every cell of the sweep directory dir's plan.
// A cell that is not done is returned with Done false; a done cell whose
// files are missing or broken is an error.
func Load(dir string) (*sweep.Plan, []Result, error) {
	p, err := sweep.ReadPlan(dir)
	if err != nil {
		return nil, nil, err
	}
	var out []Result
	for _, c := range p.Cells {
		r := Result{Cell: c}
		if sweep.IsDone(dir, c.Name) {
			if err := r.load(sweep.CellDir(dir, c.Name)); err != nil {
				return nil, nil, fmt.Errorf("cell %s: %w", c.Name, err)
			}
			r.Done = true
		}
		out = append(out, r)
	}
	return p, out, nil
}

func (r *Result) load(cd string) error {
	f, err := os.Open(filepath.Join(cd, "certify", rundir.ReportFile))
	if err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	rep, err := certifier.ReadReport(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("certify/report.json: %w", err)
	}
	r.Clean, r.Certified, r.Eps, r.Images = 100*rep.CleanAccuracy, 100*rep.CertifiedAccuracy, rep.Eps, rep.N
	s, err := rundir.ReadSummary(filepath.Join(cd, "certify"))
	if err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	r.Radii = s.Radii
	for _, c := range s.Certified {
		r.CertifiedAt = append(r.CertifiedAt, 100*c)
	}
	r.TrainClean, r.GeneralizationGap = 100*s.TrainClean, 100*s.GeneralizationGap
	for _, v := range []float64{r.Clean, r.Certified, r.TrainClean, r.GeneralizationGap} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("certify's results hold a NaN or an infinity")
		}
	}
	r.History, err = rundir.ReadMetrics(filepath.Join(cd, "train"))
	return err
}

// radii reads the cell's per-image results (certify's radii.csv) for the
// radius CDF.
func (r Result) radii(sweepDir string) ([]certifier.Result, error) {
	f, err := os.Open(filepath.Join(r.dir(sweepDir), "certify", rundir.RadiiFile))
	if err != nil {
		return nil, fmt.Errorf("cell %s: %w", r.Name, err)
	}
	defer f.Close()
	res, err := certifier.ReadCSV(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("cell %s: radii.csv: %w", r.Name, err)
	}
	return res, nil
}
