package report

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"certmix/certifier"
)

// A document is a list of sections, rendered once as Markdown and once as
// HTML, so that the two reports say the same.
type section struct {
	Title  string
	Text   []string
	Tables []TextTable
	// Images are PNG file names in the report's directory; SideBySide puts
	// them in one row in the HTML report.
	Images     []string
	SideBySide bool
}

// Write writes report.md, report.html and the PNG plots into out and
// returns the paths it wrote.
func (r *Report) Write(out string) ([]string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("write report: %w", err)
	}
	var written []string
	png := func(name string, draw func(*bytes.Buffer) error) (bool, error) {
		var b bytes.Buffer
		if err := draw(&b); err != nil {
			return false, err
		}
		path := filepath.Join(out, name)
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			return false, fmt.Errorf("write report: %w", err)
		}
		written = append(written, path)
		return true, nil
	}
	secs, err := r.sections(png)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name   string
		render func([]section) ([]byte, error)
	}{{"report.md", r.markdown}, {"report.html", r.html}} {
		data, err := f.render(secs)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(out, f.name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return nil, fmt.Errorf("write report: %w", err)
		}
		written = append(written, path)
	}
	return written, nil
}

// errNoData marks a plot left out because the sweep has nothing for it yet.
var errNoData = errors.New("no data")

// sections lays out the report, drawing the plots through png (which
// reports false for a plot without data).
func (r *Report) sections(png func(string, func(*bytes.Buffer) error) (bool, error)) ([]section, error) {
	eps := math.NaN()
	for _, c := range r.Results {
		if c.Done {
			eps = c.Eps
			break
		}
	}
	name := r.Plan.Name
	if name == "" {
		name = filepath.Base(r.Dir)
	}
	head := section{Title: "Sweep " + name}
	head.Text = append(head.Text, fmt.Sprintf("%d cells, %d finished. Accuracies in %%, certified at ε = %s; differences in points; the generalization gap is clean accuracy on the real training images minus clean test accuracy.",
		len(r.Results), len(r.Results)-len(r.Unfinished()), certifier.RadiusLabel(eps)))
	if u := r.Unfinished(); len(u) > 0 {
		head.Text = append(head.Text, "Not finished (shown as –): "+strings.Join(u, ", ")+".")
	}
	secs := []section{head,
		{Title: "Clean and certified test accuracy (the paper's Tables 1-4)", Tables: []TextTable{r.MainTable()},
			Text: []string{"Each entry is the mean over the setting's finished seeds with its 95% interval in brackets: Student's t over seeds, or with one seed the Wilson interval of the accuracy on the test set's images (its binomial error only). A number in parentheses counts the seeds when fewer than the row's have finished. " +
				"ΔCert. is the largest of the row's paired gains in certified accuracy over its base model (see Paired gains), \"n.s.\" when its interval covers 0; picking the largest of several columns is itself optimistic."}},
		{Title: "Every cell", Tables: []TextTable{r.CellsTable()},
			Text: []string{"Best epoch and best − last: certified accuracy on the training run's evaluation images, per epoch."}},
	}
	plot := func(s *section, file string, draw func(*bytes.Buffer) error) error {
		ok, err := png(file, draw)
		switch {
		case err != nil && !errors.Is(err, errNoData):
			return err
		case ok:
			s.Images = append(s.Images, file)
		default:
			s.Text = append(s.Text, "No plot: nothing to draw yet.")
		}
		return nil
	}
	noData := func(n int, draw func(*bytes.Buffer) error) func(*bytes.Buffer) error {
		if n == 0 {
			return func(*bytes.Buffer) error { return errNoData }
		}
		return draw
	}
	done := len(r.Results) - len(r.Unfinished())

	fig4 := section{Title: "Accuracy against the generated fraction (Fig. 4)"}
	if err := plot(&fig4, "fraction.png", noData(done, func(b *bytes.Buffer) error { return PlotFraction(b, r.Table) })); err != nil {
		return nil, err
	}
	fr := strconv.FormatFloat(r.Fraction, 'g', -1, 64)
	fig3 := section{Title: "Gain against the base model's generalization gap (Fig. 3)",
		Text: []string{"One point per architecture configuration and amount of generated data at f = " + fr +
			" (certmix report --fraction picks another): x is the base model's generalization gap (mean over its seeds), y the gain in certified accuracy over the base, computed per seed pair (same seed, same real-image order) and averaged; error bars are 95% intervals. " +
			"The points of one base model share its errors, so the line of each family is fitted on the per-base averages (rings): its standard errors and the 95% prediction band (for a new base model's gain averaged over the amounts) count base models, not points. See docs/statistics.md."}}
	if inf := r.InferredFamilies(); len(inf) > 0 {
		fig3.Text = append(fig3.Text, "The sweep file names no family for "+strings.Join(inf, ", ")+": their family is taken as the preset up to its first '-'. Name families with family: in the sweep file's grids.")
	}
	if err := plot(&fig3, "gain_vs_gap.png", noData(len(r.Fits), func(b *bytes.Buffer) error { return PlotGains(b, r.Fits) })); err != nil {
		return nil, err
	}
	if len(r.Fits) > 0 {
		fig3.Tables = append(fig3.Tables, r.FitsTable())
	} else if fs := r.fractionsRun(); len(fs) > 0 && !slices.Contains(fs, r.Fraction) {
		var names []string
		for _, f := range fs {
			names = append(names, strconv.FormatFloat(f, 'g', -1, 64))
		}
		fig3.Text = append(fig3.Text, "The sweep has no cell at f = "+fr+"; it ran "+strings.Join(names, ", ")+": pick one with certmix report --fraction.")
	}
	pairs := section{Title: "Paired gains in certified accuracy",
		Text: []string{"Each setting with generated data against its base model, seed by seed: the mean of the per-seed differences with Student's t interval over the seed pairs (one pair: Newcombe's interval from the two Wilson intervals on the test set). \"n.s.\" and \"no significant difference\": the 95% interval covers 0."}}
	if len(r.Gains) > 0 {
		pairs.Tables = append(pairs.Tables, r.GainsTable())
	} else {
		pairs.Text = append(pairs.Text, "No setting with generated data has finished together with its base yet.")
	}
	gaps := section{Title: "Generalization gaps without and with generated data (Fig. 3, right)", Tables: []TextTable{r.gapsTable()}}
	if err := plot(&gaps, "gaps.png", noData(done, func(b *bytes.Buffer) error { return PlotGaps(b, r.Table) })); err != nil {
		return nil, err
	}
	fig6 := section{Title: "Best against last epoch (Fig. 6)"}
	if err := plot(&fig6, "best_last.png", noData(len(r.BestLast), func(b *bytes.Buffer) error {
		return PlotBestLast(b, r.BestLast, r.Plan.Generated)
	})); err != nil {
		return nil, err
	}
	fig5 := section{Title: "Certified radii (Fig. 5)", SideBySide: true,
		Text: []string{"Per row: the share of test images certified at radius ≥ r, correct (solid) and incorrect (dashed), for the model without generated data and the row's best column with, one seed (the same for both)."}}
	for _, row := range r.Table.Rows {
		runs, err := r.radiusRuns(row)
		if err != nil {
			return nil, err
		}
		if len(runs) == 0 {
			continue
		}
		file := "radius_cdf_" + row.Key + ".png"
		if _, err := png(file, func(b *bytes.Buffer) error {
			return certifier.PlotRadiusCurve(b, runs, eps, certifier.PlotOptions{Title: row.Label()})
		}); err != nil {
			return nil, err
		}
		fig5.Images = append(fig5.Images, file)
	}
	return append(secs, pairs, fig4, fig3, gaps, fig6, fig5), nil
}

// fractionsRun are the generated fractions of the plan's cells, above 0,
// in increasing order.
func (r *Report) fractionsRun() []float64 {
	var out []float64
	for _, c := range r.Table.Columns {
		if !slices.Contains(out, c.Fraction) {
			out = append(out, c.Fraction)
		}
	}
	slices.Sort(out)
	return out
}

// radiusRuns are, for the row's first seed finished both without and in
// the row's best column, the base model and that cell, for the radius
// plot; without such a pair, whichever of the two has a finished cell.
func (r *Report) radiusRuns(row Row) ([]certifier.Run, error) {
	var base, best *Result
	var aux *Setting
	if row.HasDelta {
		aux = row.Generated[row.Best]
	}
	if row.Base.Finished() {
		base = row.Base.Done[0]
	}
	if aux.Finished() {
		best = aux.Done[0]
		for _, a := range aux.Done {
			if i := slices.IndexFunc(row.Base.Done, func(b *Result) bool { return b.Seed == a.Seed }); i >= 0 {
				base, best = row.Base.Done[i], a
				break
			}
		}
	}
	var runs []certifier.Run
	if base != nil {
		res, err := base.radii(r.Dir)
		if err != nil {
			return nil, err
		}
		runs = append(runs, certifier.Run{Name: fmt.Sprintf("no generated, seed %d", base.Seed), Results: res})
	}
	if best != nil {
		res, err := best.radii(r.Dir)
		if err != nil {
			return nil, err
		}
		name := "f=" + strconv.FormatFloat(best.Fraction, 'g', -1, 64)
		if best.Amount != "" {
			name = best.Amount + " " + name
		}
		runs = append(runs, certifier.Run{Name: fmt.Sprintf("%s, seed %d", name, best.Seed), Results: res})
	}
	return runs, nil
}

func (r *Report) markdown(secs []section) ([]byte, error) {
	var b strings.Builder
	for i, s := range secs {
		level := "## "
		if i == 0 {
			level = "# "
		}
		b.WriteString(level + s.Title + "\n\n")
		for _, t := range s.Text {
			b.WriteString(t + "\n\n")
		}
		for _, t := range s.Tables {
			t.markdown(&b)
			b.WriteString("\n")
		}
		for _, img := range s.Images {
			fmt.Fprintf(&b, "![%s](%s)\n", strings.TrimSuffix(img, ".png"), img)
		}
		if len(s.Images) > 0 {
			b.WriteString("\n")
		}
	}
	return []byte(b.String()), nil
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{(index . 0).Title}}</title>
<style>
body { font-family: sans-serif; margin: 2em; max-width: 1400px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
.row { display: flex; flex-wrap: wrap; gap: 1em; }
.row img { width: 600px; }
img { max-width: 100%; }
</style></head><body>
{{range $i, $s := .}}{{if eq $i 0}}<h1>{{$s.Title}}</h1>{{else}}<h2>{{$s.Title}}</h2>{{end}}
{{range $s.Text}}<p>{{.}}</p>
{{end}}{{range $s.Tables}}<table><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
{{end}}{{if $s.Images}}<div{{if $s.SideBySide}} class="row"{{end}}>{{range $s.Images}}<img src="{{.}}" alt="{{.}}">
{{end}}</div>{{end}}
{{end}}</body></html>
`))

func (r *Report) html(secs []section) ([]byte, error) {
	var b bytes.Buffer
	if err := page.Execute(&b, secs); err != nil {
		return nil, fmt.Errorf("write report.html: %w", err)
	}
	return b.Bytes(), nil
}
