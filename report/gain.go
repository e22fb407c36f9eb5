package report

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// DefaultFraction is the generated fraction the Fig. 3 line is fitted on
// unless asked otherwise: the paper fits its line on the 70% cells.
const DefaultFraction = 0.7

// Gain is one point of the paper's Fig. 3: a setting with generated data
// (one configuration, one amount, one fraction, its seeds) against its
// base model (the same configuration without generated data), in points.
type Gain struct {
	// Setting and Base name the cells without their seed suffix; Row is
	// the base model's configuration, which the points of one base share.
	Setting, Base, Row string
	Family             string
	Generated          string
	Fraction           float64
	// BaseGap is the base model's generalization gap over its seeds; Gain
	// the paired gain in certified accuracy (see [PairedGain]); Gap the
	// setting's own generalization gap (Fig. 3, right).
	BaseGap, Gain, Gap Interval
}

// Gains are the points of every setting with generated data that has a
// seed finished together with its base, in table order.
func (t Table) Gains() []Gain {
	var out []Gain
	for _, row := range t.Rows {
		if !row.Base.Finished() {
			continue
		}
		for j, a := range row.Generated {
			g := row.Gains[j]
			if a == nil || math.IsNaN(g.Mean) {
				continue
			}
			out = append(out, Gain{Setting: a.Name(), Base: row.Base.Name(), Row: row.Key, Family: row.Family,
				Generated: t.Columns[j].Generated, Fraction: t.Columns[j].Fraction, BaseGap: row.Base.Gap, Gain: g, Gap: a.Gap})
		}
	}
	return out
}

// Fit is the line of one family's gains against their base gaps at one
// fraction, fitted on per-base averages ([FitClusters]).
type Fit struct {
	Family    string
	Fraction  float64
	Generated string // the amount fitted on; empty: all amounts
	// Points are the gains the line is fitted on.
	Points []Gain
	Line   ClusterLine
	// Err says why there is no line (fewer than two base models, one gap).
	Err error
}

// Fits fits one line per family (in order of first appearance) over the
// gains at fraction, of the amount generated or of all amounts when it is
// empty. The points of one base model form one cluster: the line goes
// through the clusters' averages.
func Fits(gains []Gain, fraction float64, generated string) []Fit {
	var families []string
	for _, g := range gains {
		if !slices.Contains(families, g.Family) {
			families = append(families, g.Family)
		}
	}
	var out []Fit
	for _, f := range families {
		fit := Fit{Family: f, Fraction: fraction, Generated: generated}
		var cs []Cluster
		for _, g := range gains {
			if g.Family != f || g.Fraction != fraction || (generated != "" && g.Generated != generated) {
				continue
			}
			fit.Points = append(fit.Points, g)
			i := slices.IndexFunc(cs, func(c Cluster) bool { return c.Name == g.Row })
			if i < 0 {
				i = len(cs)
				cs = append(cs, Cluster{Name: g.Row, X: g.BaseGap.Mean})
			}
			cs[i].Y = append(cs[i].Y, g.Gain.Mean)
		}
		if len(cs) == 0 {
			continue
		}
		fit.Line, fit.Err = FitClusters(cs)
		out = append(out, fit)
	}
	return out
}

// Prediction is the expected certified-accuracy gain of a model of a
// family whose base generalization gap is Gap, from the fitted line, with
// a prediction interval at Level.
type Prediction struct {
	Family    string
	Fraction  float64
	Generated string // the amount the line was fitted on; empty: all
	Gap       float64
	Gain      float64
	// Lo and Hi bound the interval; Err says why there is none.
	Lo, Hi float64
	Level  float64
	Err    error
	Line   ClusterLine
}

// ErrNoFit marks a prediction asked of a family or amount the sweep has no
// line for.
var ErrNoFit = errors.New("no fitted line")

// Predict gives the expected gain at a base generalization gap of gap
// points for each family (or only family), from the lines fitted at
// fraction on the amount generated (all amounts when empty). A family
// without a line has a NaN gain and Err set; asked for by name, it is an
// error.
func Predict(gains []Gain, gap float64, family, generated string, fraction, level float64) ([]Prediction, error) {
	var out []Prediction
	for _, f := range Fits(gains, fraction, generated) {
		if family != "" && f.Family != family {
			continue
		}
		p := Prediction{Family: f.Family, Fraction: fraction, Generated: generated, Gap: gap, Gain: math.NaN(), Level: level, Err: f.Err}
		if f.Err != nil {
			if family != "" {
				return nil, fmt.Errorf("%s: %w: %w", f.Family, ErrNoFit, f.Err)
			}
			out = append(out, p)
			continue
		}
		p.Gain, p.Line = f.Line.At(gap), f.Line
		p.Lo, p.Hi, p.Err = f.Line.PredictionInterval(gap, level)
		out = append(out, p)
	}
	if len(out) == 0 {
		what := "any family"
		if family != "" {
			what = "family " + family
		}
		what += " at fraction " + strconv.FormatFloat(fraction, 'g', -1, 64)
		if generated != "" {
			what += " with generated " + generated
		}
		return nil, fmt.Errorf("%w for %s: the sweep has no finished setting with generated data there and its base", ErrNoFit, what)
	}
	return out, nil
}
