package report

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	"certmix/sweep"
)

// Table is the paper's layout (Tables 1-4): a row per architecture and
// training length (and schedule and seed), the base model without
// generated data, then each amount of generated data (and fraction), each
// with clean and certified accuracy, and the best gain in certified
// accuracy of the row.
type Table struct {
	Columns []Column
	Rows    []Row
}

// Column is one setting of generated data: an amount at a fraction.
type Column struct {
	Generated string
	Fraction  float64
	// Label is the header: the amount, the fraction, or both, as the sweep
	// varies them.
	Label string
}

// Row is one row of a [Table]. Base and Aux[i] (for Columns[i]) are nil
// where the plan has no such cell.
type Row struct {
	Key      string // the cells' sweep.Cell.Row
	Arch     string
	Family   string
	Epochs   int
	Schedule string
	Seed     uint64
	Base     *Result
	Aux      []*Result
	// DeltaCert is the best gain in certified accuracy over the base, in
	// points, among the finished cells of the row; HasDelta is false when
	// the base or all of them are unfinished.
	DeltaCert float64
	HasDelta  bool
}

// NewTable lays out results; generated gives the amounts in column order.
func NewTable(results []Result, generated []string) Table {
	var t Table
	order := func(name string) int {
		if i := slices.Index(generated, name); i >= 0 {
			return i
		}
		return len(generated)
	}
	amounts, fractions := map[string]bool{}, map[float64]bool{}
	for _, r := range results {
		if r.Fraction == 0 {
			continue
		}
		c := Column{Generated: r.Generated, Fraction: r.Fraction}
		if !slices.ContainsFunc(t.Columns, func(x Column) bool { return x.Generated == c.Generated && x.Fraction == c.Fraction }) {
			t.Columns = append(t.Columns, c)
			amounts[c.Generated], fractions[c.Fraction] = true, true
		}
	}
	slices.SortStableFunc(t.Columns, func(a, b Column) int {
		return cmp.Or(cmp.Compare(order(a.Generated), order(b.Generated)), cmp.Compare(a.Fraction, b.Fraction))
	})
	for i := range t.Columns {
		c := &t.Columns[i]
		f := "f=" + strconv.FormatFloat(c.Fraction, 'g', -1, 64)
		switch {
		case len(fractions) == 1:
			c.Label = c.Generated
		case len(amounts) == 1:
			c.Label = f
		default:
			c.Label = c.Generated + " " + f
		}
	}
	rows := map[string]int{}
	for i := range results {
		r := &results[i]
		k, ok := rows[r.Row()]
		if !ok {
			k = len(t.Rows)
			rows[r.Row()] = k
			t.Rows = append(t.Rows, Row{Key: r.Row(), Arch: r.Arch(), Family: familyOf(r.Cell), Epochs: r.Epochs, Schedule: r.Schedule,
				Seed: r.Seed, Aux: make([]*Result, len(t.Columns))})
		}
		row := &t.Rows[k]
		if r.Fraction == 0 {
			row.Base = r
			continue
		}
		j := slices.IndexFunc(t.Columns, func(c Column) bool { return c.Generated == r.Generated && c.Fraction == r.Fraction })
		row.Aux[j] = r
	}
	for i := range t.Rows {
		row := &t.Rows[i]
		if row.Base == nil || !row.Base.Done {
			continue
		}
		for _, a := range row.Aux {
			if a == nil || !a.Done {
				continue
			}
			if d := a.Certified - row.Base.Certified; !row.HasDelta || d > row.DeltaCert {
				row.DeltaCert, row.HasDelta = d, true
			}
		}
	}
	return t
}

// Label names a row for legends: its architecture, epochs, and schedule
// and seed when set.
func (r Row) Label() string {
	s := fmt.Sprintf("%s e%d", r.Arch, r.Epochs)
	if r.Schedule != "" {
		s += " " + r.Schedule
	}
	if r.Seed != 0 {
		s += fmt.Sprintf(" s%d", r.Seed)
	}
	return s
}

// familyOf is the cell's family as its sweep file names it, or, for a
// sweep directory made before grids had family:, the preset up to its
// first '-' (the report says so).
func familyOf(c sweep.Cell) string {
	if c.Family != "" {
		return c.Family
	}
	return sweep.PresetFamily(c.Preset)
}
