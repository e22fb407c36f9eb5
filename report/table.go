package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"certmix/sweep"
)

// Table is the paper's layout (Tables 1-4) with seeds as an axis: a row per
// architecture configuration (preset, label, training length and
// schedule), the base model without generated data, then each amount of
// generated data (and fraction). Each entry summarises the cells that
// differ only in seed (a [Setting]); the row's paired gains compare each
// column with the base seed by seed.
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

// Setting is the cells of one row and column (or the row's base) that
// differ only in seed, and their summaries over the finished ones (see
// [SeedInterval]): accuracies in percent, the generalization gap in
// points.
type Setting struct {
	// Cells are the plan's cells in seed order; Done the finished ones.
	Cells, Done []*Result
	// Clean, Certified and Gap summarise Done; with no finished cell their
	// means are NaN. A gap from one seed has no interval (the training
	// set's size is not recorded).
	Clean, Certified, Gap Interval
}

// Name is the setting's cells' name without the seed suffix.
func (s *Setting) Name() string {
	if s == nil || len(s.Cells) == 0 {
		return ""
	}
	c := s.Cells[0]
	return strings.TrimSuffix(c.Name, "_s"+strconv.FormatUint(c.Seed, 10))
}

// Finished says whether any of the setting's cells has finished.
func (s *Setting) Finished() bool { return s != nil && len(s.Done) > 0 }

// Row is one row of a [Table]. Base and Generated[i] (for Columns[i]) are nil
// where the plan has no such cells.
type Row struct {
	// Key is the cells' sweep.Cell.Row without the seed: what the cells of
	// the row share.
	Key      string
	Arch     string
	Family   string
	Epochs   int
	Schedule string
	// Seeds are the seeds the plan gives the row, in order.
	Seeds     []uint64
	Base      *Setting
	Generated []*Setting
	// Gains[i] is the paired gain of Generated[i] over Base in certified
	// accuracy ([PairedGain] over the seeds finished in both); its Mean is
	// NaN where no seed has finished in both.
	Gains []Interval
	// DeltaCert is the largest of the row's paired gains and Best its
	// column; HasDelta is false when no gain could be computed.
	DeltaCert Interval
	Best      int
	HasDelta  bool
}

// configKey is a cell's row without its seed.
func configKey(c sweep.Cell) string {
	return strings.TrimSuffix(c.Row(), "_s"+strconv.FormatUint(c.Seed, 10))
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
		c := Column{Generated: r.Amount, Fraction: r.Fraction}
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
		key := configKey(r.Cell)
		k, ok := rows[key]
		if !ok {
			k = len(t.Rows)
			rows[key] = k
			t.Rows = append(t.Rows, Row{Key: key, Arch: r.Arch(), Family: familyOf(r.Cell), Epochs: r.Epochs, Schedule: r.Schedule,
				Generated: make([]*Setting, len(t.Columns)), Gains: make([]Interval, len(t.Columns))})
		}
		row := &t.Rows[k]
		if !slices.Contains(row.Seeds, r.Seed) {
			row.Seeds = append(row.Seeds, r.Seed)
		}
		s := &row.Base
		if r.Fraction != 0 {
			j := slices.IndexFunc(t.Columns, func(c Column) bool { return c.Generated == r.Amount && c.Fraction == r.Fraction })
			s = &row.Generated[j]
		}
		if *s == nil {
			*s = &Setting{}
		}
		(*s).Cells = append((*s).Cells, r)
		if r.Done {
			(*s).Done = append((*s).Done, r)
		}
	}
	for i := range t.Rows {
		row := &t.Rows[i]
		row.Base.summarise()
		for j, a := range row.Generated {
			a.summarise()
			row.Gains[j] = pairedCertified(a, row.Base)
			if g := row.Gains[j]; !math.IsNaN(g.Mean) && (!row.HasDelta || g.Mean > row.DeltaCert.Mean) {
				row.DeltaCert, row.Best, row.HasDelta = g, j, true
			}
		}
	}
	return t
}

// summarise computes the setting's intervals over its finished seeds.
func (s *Setting) summarise() {
	if s == nil {
		return
	}
	var clean, cert, gap []float64
	images := 0
	for _, r := range s.Done {
		clean, cert, gap = append(clean, r.Clean), append(cert, r.Certified), append(gap, r.GeneralizationGap)
		images = r.Images
	}
	s.Clean = SeedInterval(clean, images, Level)
	s.Certified = SeedInterval(cert, images, Level)
	s.Gap = MeanInterval(gap, Level)
}

// pairedCertified is the paired gain in certified accuracy of aux over
// base, over the seeds finished in both.
func pairedCertified(aux, base *Setting) Interval {
	none := Interval{Mean: math.NaN(), Lo: math.NaN(), Hi: math.NaN(), Level: Level, Kind: NoInterval}
	if !aux.Finished() || !base.Finished() {
		return none
	}
	var a, b []float64
	images := 0
	for _, r := range aux.Done {
		for _, s := range base.Done {
			if s.Seed == r.Seed {
				a, b = append(a, r.Certified), append(b, s.Certified)
				images = r.Images
			}
		}
	}
	if len(a) == 0 {
		return none
	}
	g, err := PairedGain(a, b, images, Level)
	if err != nil { // lengths are equal by construction
		return none
	}
	return g
}

// Label names a row for legends: its architecture, epochs, and schedule
// when set.
func (r Row) Label() string {
	s := fmt.Sprintf("%s e%d", r.Arch, r.Epochs)
	if r.Schedule != "" {
		s += " " + r.Schedule
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
