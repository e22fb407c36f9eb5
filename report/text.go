package report

import (
	"certmix/certifier"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// TextTable is a table of formatted values, rendered in Markdown and HTML.
type TextTable struct {
	Header []string
	Rows   [][]string
}

// Markdown renders the table for a terminal or a README.
func (t TextTable) Markdown() string {
	var b strings.Builder
	t.markdown(&b)
	return b.String()
}

func (t TextTable) markdown(b *strings.Builder) {
	b.WriteString("| " + strings.Join(t.Header, " | ") + " |\n|")
	b.WriteString(strings.Repeat("---|", len(t.Header)) + "\n")
	for _, r := range t.Rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
}

// pct formats a percentage or a difference of percentages.
func pct(v float64) string { return fmt.Sprintf("%.2f", v) }

func signed(v float64) string { return fmt.Sprintf("%+.2f", v) }

const missing = "–"

// interval formats an estimate with its interval, "63.44 [62.49, 64.38]";
// without an interval just the estimate, without an estimate "–".
func interval(in Interval) string {
	switch {
	case math.IsNaN(in.Mean):
		return missing
	case in.Kind == NoInterval:
		return pct(in.Mean)
	}
	return fmt.Sprintf("%.2f [%.2f, %.2f]", in.Mean, in.Lo, in.Hi)
}

// signedInterval formats a difference with its interval, "+1.85 [+0.52,
// +3.18]", and "n.s." when the interval covers 0.
func signedInterval(in Interval) string {
	switch {
	case math.IsNaN(in.Mean):
		return missing
	case in.Kind == NoInterval:
		return signed(in.Mean)
	}
	s := fmt.Sprintf("%+.2f [%+.2f, %+.2f]", in.Mean, in.Lo, in.Hi)
	if !in.Significant() {
		s += " n.s."
	}
	return s
}

// verdict says what a difference's interval supports.
func verdict(in Interval) string {
	switch {
	case math.IsNaN(in.Mean):
		return missing
	case in.Kind == NoInterval:
		return "no interval"
	case !in.Significant():
		return "no significant difference"
	case in.Mean > 0:
		return "gain"
	}
	return "loss"
}

// MainTable is the paper's layout of [Table] in percent: each entry the
// mean over the setting's finished seeds with its 95% interval (t over
// seeds; one seed: the Wilson interval of the test set), followed by the
// number of seeds in parentheses where fewer than the row's have
// finished; ΔCert. is the row's largest paired gain.
func (r *Report) MainTable() TextTable {
	t := r.Table
	varySchedule := false
	for _, row := range t.Rows {
		varySchedule = varySchedule || row.Schedule != t.Rows[0].Schedule
	}
	h := []string{"architecture", "epochs"}
	if varySchedule {
		h = append(h, "schedule")
	}
	h = append(h, "seeds", "no generated: clean", "cert.")
	for _, c := range t.Columns {
		h = append(h, c.Label+": clean", "cert.")
	}
	h = append(h, "ΔCert.")
	tt := TextTable{Header: h}
	for _, row := range t.Rows {
		entry := func(s *Setting) []string {
			if !s.Finished() {
				return []string{missing, missing}
			}
			clean, cert := interval(s.Clean), interval(s.Certified)
			if len(s.Done) < len(row.Seeds) {
				n := fmt.Sprintf(" (%d)", len(s.Done))
				clean, cert = clean+n, cert+n
			}
			return []string{clean, cert}
		}
		line := []string{row.Arch, strconv.Itoa(row.Epochs)}
		if varySchedule {
			line = append(line, row.Schedule)
		}
		line = append(line, strconv.Itoa(len(row.Seeds)))
		line = append(line, entry(row.Base)...)
		for _, a := range row.Generated {
			line = append(line, entry(a)...)
		}
		d := missing
		if row.HasDelta {
			d = signedInterval(row.DeltaCert)
			if len(t.Columns) > 1 {
				d += " (" + t.Columns[row.Best].Label + ")"
			}
		}
		tt.Rows = append(tt.Rows, append(line, d))
	}
	return tt
}

// CellsTable lists every cell: clean accuracy, certified accuracy at each
// radius of certify's summary, the generalization gap and the best epoch.
func (r *Report) CellsTable() TextTable {
	var radii []float64
	for _, c := range r.Results {
		if c.Done && len(c.Radii) > len(radii) {
			radii = c.Radii
		}
	}
	h := []string{"cell", "clean"}
	for _, e := range radii {
		h = append(h, "cert. "+certifier.RadiusLabel(e))
	}
	h = append(h, "train clean", "gen. gap", "best epoch", "best − last")
	tt := TextTable{Header: h}
	best := map[string]BestLast{}
	for _, b := range r.BestLast {
		best[b.Cell] = b
	}
	for _, c := range r.Results {
		line := []string{c.Name}
		if !c.Done {
			for range len(h) - 1 {
				line = append(line, missing)
			}
			tt.Rows = append(tt.Rows, line)
			continue
		}
		line = append(line, pct(c.Clean))
		for i := range radii {
			v := missing
			if i < len(c.CertifiedAt) && c.Radii[i] == radii[i] {
				v = pct(c.CertifiedAt[i])
			}
			line = append(line, v)
		}
		line = append(line, pct(c.TrainClean), pct(c.GeneralizationGap))
		if b, ok := best[c.Name]; ok {
			line = append(line, fmt.Sprintf("%d of %d", b.BestEpoch+1, b.LastEpoch+1), pct(b.Diff))
		} else {
			line = append(line, missing, missing)
		}
		tt.Rows = append(tt.Rows, line)
	}
	return tt
}

// FitsTable gives each family's line, fitted on the per-base averages,
// with standard errors that count base models.
func (r *Report) FitsTable() TextTable {
	tt := TextTable{Header: []string{"family", "fraction", "base models", "points", "slope", "± SE", "intercept", "± SE", "residual SE", "within-base SD"}}
	num := func(v float64) string {
		if math.IsNaN(v) {
			return missing
		}
		return fmt.Sprintf("%.3f", v)
	}
	for _, f := range r.Fits {
		fr := strconv.FormatFloat(f.Fraction, 'g', -1, 64)
		if f.Err != nil {
			tt.Rows = append(tt.Rows, []string{f.Family, fr, "", strconv.Itoa(len(f.Points)), f.Err.Error(), "", "", "", "", ""})
			continue
		}
		l := f.Line
		tt.Rows = append(tt.Rows, []string{f.Family, fr, strconv.Itoa(l.N), strconv.Itoa(l.Points), num(l.Slope), num(l.SlopeSE),
			num(l.Intercept), num(l.InterceptSE), num(l.S), num(math.Sqrt(l.Within))})
	}
	return tt
}

// GainsTable gives every paired comparison of a setting with generated
// data against its base: the seed pairs, the base's generalization gap
// and the gain in certified accuracy with its interval and what it
// supports.
func (r *Report) GainsTable() TextTable {
	tt := TextTable{Header: []string{"setting", "base", "family", "seed pairs", "base gen. gap", "Δ cert.", "interval", "verdict"}}
	for _, g := range r.Gains {
		tt.Rows = append(tt.Rows, []string{g.Setting, g.Base, g.Family, strconv.Itoa(g.Gain.N), interval(g.BaseGap), signedInterval(g.Gain),
			string(g.Gain.Kind), verdict(g.Gain)})
	}
	return tt
}

func (r *Report) gapsTable() TextTable {
	h := []string{"architecture", "epochs", "no generated"}
	for _, c := range r.Table.Columns {
		h = append(h, c.Label)
	}
	tt := TextTable{Header: h}
	gap := func(s *Setting) string {
		if !s.Finished() {
			return missing
		}
		return interval(s.Gap)
	}
	for _, row := range r.Table.Rows {
		line := []string{row.Arch, strconv.Itoa(row.Epochs), gap(row.Base)}
		for _, a := range row.Generated {
			line = append(line, gap(a))
		}
		tt.Rows = append(tt.Rows, line)
	}
	return tt
}
