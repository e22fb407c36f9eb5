package report

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Gain is one point of the paper's Fig. 3: a cell with generated data
// against its base model (the row's cell without), in points.
type Gain struct {
	Cell, Base string
	Family     string
	Generated  string
	// BaseGap is the base model's generalization gap; Gain the cell's
	// certified accuracy minus the base's.
	BaseGap, Gain float64
	// Gap is the cell's own generalization gap (Fig. 3, right).
	Gap float64
}

// Gains are the points of every finished cell with generated data whose
// base has finished, in table order.
func (t Table) Gains() []Gain {
	var out []Gain
	for _, row := range t.Rows {
		if row.Base == nil || !row.Base.Done {
			continue
		}
		for _, a := range row.Aux {
			if a == nil || !a.Done {
				continue
			}
			out = append(out, Gain{Cell: a.Name, Base: row.Base.Name, Family: row.Family, Generated: a.Generated,
				BaseGap: row.Base.GeneralizationGap, Gain: a.Certified - row.Base.Certified, Gap: a.GeneralizationGap})
		}
	}
	return out
}

// Fit is the least-squares line of one family's gains against their base
// gaps.
type Fit struct {
	Family string
	Line   Line
	// Err says why there is no line (fewer than two points, one x).
	Err error
}

// Fits fits one line per family (in order of first appearance), over the
// gains of the amount generated, or of all amounts when it is empty.
func Fits(gains []Gain, generated string) []Fit {
	var families []string
	for _, g := range gains {
		if !slices.Contains(families, g.Family) {
			families = append(families, g.Family)
		}
	}
	var out []Fit
	for _, f := range families {
		var x, y []float64
		for _, g := range gains {
			if g.Family == f && (generated == "" || g.Generated == generated) {
				x, y = append(x, g.BaseGap), append(y, g.Gain)
			}
		}
		if len(x) == 0 {
			continue
		}
		l, err := FitLine(x, y)
		out = append(out, Fit{Family: f, Line: l, Err: err})
	}
	return out
}

// Prediction is the expected certified-accuracy gain of a model of a
// family whose base generalization gap is Gap, from the fitted line, with
// a prediction interval at Level.
type Prediction struct {
	Family    string
	Generated string // the amount the line was fitted on; empty: all
	Gap       float64
	Gain      float64
	// Lo and Hi bound the interval; Err says why there is none.
	Lo, Hi float64
	Level  float64
	Err    error
	Line   Line
}

// ErrNoFit marks a prediction asked of a family or amount the sweep has no
// line for.
var ErrNoFit = errors.New("no fitted line")

// Predict gives the expected gain at a base generalization gap of gap
// points for each family (or only family), from the lines fitted on the
// amount generated (all amounts when empty). A family without a line has
// a NaN gain and Err set; asked for by name, it is an error.
func Predict(gains []Gain, gap float64, family, generated string, level float64) ([]Prediction, error) {
	var out []Prediction
	for _, f := range Fits(gains, generated) {
		if family != "" && f.Family != family {
			continue
		}
		if f.Err != nil {
			if family != "" {
				return nil, fmt.Errorf("%s: %w: %w", f.Family, ErrNoFit, f.Err)
			}
			out = append(out, Prediction{Family: f.Family, Generated: generated, Gap: gap, Gain: math.NaN(), Level: level, Err: f.Err})
			continue
		}
		p := Prediction{Family: f.Family, Generated: generated, Gap: gap, Gain: f.Line.At(gap), Level: level, Line: f.Line}
		p.Lo, p.Hi, p.Err = f.Line.PredictionInterval(gap, level)
		out = append(out, p)
	}
	if len(out) == 0 {
		what := "any family"
		if family != "" {
			what = "family " + family
		}
		if generated != "" {
			what += " with generated " + generated
		}
		return nil, fmt.Errorf("%w for %s: the sweep has no finished cell with generated data and its base there", ErrNoFit, what)
	}
	return out, nil
}
