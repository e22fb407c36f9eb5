// Package report turns a sweep directory (see package sweep) into the
// paper's tables and figures, with seeds as an axis: cells that differ
// only in seed are one setting, summarised as a mean with a 95% interval
// (Student's t over seeds; one seed: the Wilson interval of the test set).
// It gives clean and certified accuracy per architecture configuration
// with and without generated data and the paired gains over the base
// model, seed by seed, with their intervals (Tables 1-4); accuracy against
// the generated fraction (Fig. 4); the gain against the base model's
// generalization gap at one fraction (0.7 unless asked), with a line per
// family (as the sweep file names them) fitted on per-base averages, and
// the gaps with and without generated data (Fig. 3); best against last
// epoch (Fig. 6) and the radius distributions (Fig. 5); and, from the
// fitted lines, a prediction of the gain a new model would get, with a
// prediction interval. docs/statistics.md says what each interval is.
//
// Every number comes from the cells' files (certify's report.json and
// summary.json, train's metrics.jsonl, radii.csv): TestReportNumbers and
// TestReportSeeds build sweep directories of known results and check each
// table entry, interval, fitted line with its standard errors, and
// prediction against values computed by hand.
package report

import (
	"slices"

	"certmix/sweep"
)

// Report is a sweep's results and what the report derives from them.
type Report struct {
	Dir string
	// Fraction is the generated fraction the Fig. 3 lines are fitted on.
	Fraction float64
	Plan     *sweep.Plan
	Results  []Result
	Table    Table
	Gains    []Gain
	Fits     []Fit
	BestLast []BestLast
}

// Build reads the sweep directory dir and derives the tables, gains, fits
// (at [DefaultFraction]) and best-versus-last points.
func Build(dir string) (*Report, error) { return BuildAt(dir, DefaultFraction) }

// BuildAt is [Build] with the Fig. 3 lines fitted on the cells of the
// generated fraction.
func BuildAt(dir string, fraction float64) (*Report, error) {
	p, results, err := Load(dir)
	if err != nil {
		return nil, err
	}
	r := &Report{Dir: dir, Fraction: fraction, Plan: p, Results: results}
	r.Table = NewTable(results, p.Generated)
	r.Gains = r.Table.Gains()
	r.Fits = Fits(r.Gains, fraction, "")
	r.BestLast = BestVsLast(results)
	return r, nil
}

// InferredFamilies lists the presets whose family the sweep file does not
// name, so that the report took the preset up to its first '-'.
func (r *Report) InferredFamilies() []string {
	var out []string
	for _, c := range r.Results {
		if c.Family == "" && !slices.Contains(out, c.Preset) {
			out = append(out, c.Preset)
		}
	}
	return out
}

// Unfinished names the cells of the plan that are not done.
func (r *Report) Unfinished() []string {
	var out []string
	for _, c := range r.Results {
		if !c.Done {
			out = append(out, c.Name)
		}
	}
	return out
}
