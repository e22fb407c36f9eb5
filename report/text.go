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

// MainTable is the paper's layout of [Table] in percent.
func (r *Report) MainTable() TextTable {
	t := r.Table
	vary := map[string]bool{}
	for _, row := range t.Rows {
		vary["schedule"] = vary["schedule"] || row.Schedule != t.Rows[0].Schedule
		vary["seed"] = vary["seed"] || row.Seed != t.Rows[0].Seed
	}
	h := []string{"architecture", "epochs"}
	if vary["schedule"] {
		h = append(h, "schedule")
	}
	if vary["seed"] {
		h = append(h, "seed")
	}
	h = append(h, "no generated: clean", "cert.")
	for _, c := range t.Columns {
		h = append(h, c.Label+": clean", "cert.")
	}
	h = append(h, "ΔCert.")
	tt := TextTable{Header: h}
	entry := func(res *Result) []string {
		if res == nil || !res.Done {
			return []string{missing, missing}
		}
		return []string{pct(res.Clean), pct(res.Certified)}
	}
	for _, row := range t.Rows {
		line := []string{row.Arch, strconv.Itoa(row.Epochs)}
		if vary["schedule"] {
			line = append(line, row.Schedule)
		}
		if vary["seed"] {
			line = append(line, strconv.FormatUint(row.Seed, 10))
		}
		line = append(line, entry(row.Base)...)
		for _, a := range row.Aux {
			line = append(line, entry(a)...)
		}
		d := missing
		if row.HasDelta {
			d = signed(row.DeltaCert)
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

// FitsTable gives each family's line with standard errors.
func (r *Report) FitsTable() TextTable {
	tt := TextTable{Header: []string{"family", "cells", "slope", "± SE", "intercept", "± SE", "residual SE"}}
	se := func(v float64) string {
		if math.IsNaN(v) {
			return missing
		}
		return fmt.Sprintf("%.3f", v)
	}
	for _, f := range r.Fits {
		if f.Err != nil {
			tt.Rows = append(tt.Rows, []string{f.Family, "", f.Err.Error(), "", "", "", ""})
			continue
		}
		l := f.Line
		tt.Rows = append(tt.Rows, []string{f.Family, strconv.Itoa(l.N), fmt.Sprintf("%.3f", l.Slope), se(l.SlopeSE),
			fmt.Sprintf("%.3f", l.Intercept), se(l.InterceptSE), se(l.S)})
	}
	return tt
}

func (r *Report) gainsTable() TextTable {
	tt := TextTable{Header: []string{"cell", "base", "base gen. gap", "Δ cert."}}
	for _, g := range r.Gains {
		tt.Rows = append(tt.Rows, []string{g.Cell, g.Base, pct(g.BaseGap), signed(g.Gain)})
	}
	return tt
}

func (r *Report) gapsTable() TextTable {
	h := []string{"architecture", "epochs", "no generated"}
	for _, c := range r.Table.Columns {
		h = append(h, c.Label)
	}
	tt := TextTable{Header: h}
	gap := func(res *Result) string {
		if res == nil || !res.Done {
			return missing
		}
		return pct(res.GeneralizationGap)
	}
	for _, row := range r.Table.Rows {
		line := []string{row.Arch, strconv.Itoa(row.Epochs), gap(row.Base)}
		for _, a := range row.Aux {
			line = append(line, gap(a))
		}
		tt.Rows = append(tt.Rows, line)
	}
	return tt
}
