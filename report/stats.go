package report

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// This file holds the report's statistics as pure functions of numbers:
// the interval of a cell summarised over its seeds, the paired gain of a
// cell with generated data over its base, and the line of Fig. 3 fitted
// with the dependence of points that share a base model. docs/statistics.md
// says what each interval is and why.

// IntervalKind says how an [Interval] was computed.
type IntervalKind string

const (
	// OverSeeds is Student's t interval of the mean over seeds:
	// x̄ ± t(1-α/2; n-1)·s/√n.
	OverSeeds IntervalKind = "t over seeds"
	// Wilson is the Wilson score interval of one accuracy measured on the
	// test set's images (one seed: the test set's binomial error only).
	Wilson IntervalKind = "Wilson"
	// Newcombe is Newcombe's hybrid score interval of a difference of two
	// accuracies from their Wilson intervals (one seed pair).
	Newcombe IntervalKind = "Newcombe"
	// NoInterval: nothing to compute an interval from.
	NoInterval IntervalKind = "none"
)

// Interval is an estimate (in percent, or points for a difference) with a
// two-sided interval [Lo, Hi] at Level (0.95: 95%). N counts the seeds (or
// seed pairs) the estimate is the mean of; with Kind NoInterval, Lo and Hi
// are NaN.
type Interval struct {
	Mean, Lo, Hi float64
	N            int
	Level        float64
	Kind         IntervalKind
}

// Covers says whether v is inside the interval (ends included); an
// interval that could not be computed covers everything.
func (i Interval) Covers(v float64) bool {
	if i.Kind == NoInterval || math.IsNaN(i.Lo) || math.IsNaN(i.Hi) {
		return true
	}
	return i.Lo <= v && v <= i.Hi
}

// Significant says whether the interval excludes 0: for a difference, a
// significant difference at the interval's level.
func (i Interval) Significant() bool { return !i.Covers(0) }

// Level is the report's confidence level.
const Level = 0.95

// TQuantile is the p-quantile of Student's t distribution with df degrees
// of freedom (df may be fractional, as Satterthwaite's are).
func TQuantile(p, df float64) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(p)
}

// zQuantile is the p-quantile of the standard normal distribution.
func zQuantile(p float64) float64 { return distuv.UnitNormal.Quantile(p) }

// MeanInterval is the mean of xs with Student's t interval at level:
//
//	x̄ ± t(1 - (1-level)/2; n-1) · s/√n, s² = Σ(x - x̄)²/(n-1).
//
// One value gives its mean and no interval (Kind NoInterval); none gives
// NaN.
func MeanInterval(xs []float64, level float64) Interval {
	n := len(xs)
	in := Interval{Mean: math.NaN(), Lo: math.NaN(), Hi: math.NaN(), N: n, Level: level, Kind: NoInterval}
	if n == 0 {
		return in
	}
	in.Mean = stat.Mean(xs, nil)
	if n < 2 || !(level > 0 && level < 1) {
		return in
	}
	half := TQuantile(1-(1-level)/2, float64(n-1)) * stat.StdDev(xs, nil) / math.Sqrt(float64(n))
	in.Lo, in.Hi, in.Kind = in.Mean-half, in.Mean+half, OverSeeds
	return in
}

// WilsonInterval is the Wilson score interval of a proportion p (0 to 1)
// observed on n trials, at level:
//
//	(p + z²/2n ± z·√(p(1-p)/n + z²/4n²)) / (1 + z²/n),  z = Φ⁻¹(1 - (1-level)/2).
//
// Unlike p ± z·√(p(1-p)/n) it stays inside [0, 1] and keeps its coverage
// near 0 and 1; it is what we use for one seed (not Clopper-Pearson, which
// is conservative by construction).
func WilsonInterval(p float64, n int, level float64) (lo, hi float64) {
	if n <= 0 || !(level > 0 && level < 1) {
		return math.NaN(), math.NaN()
	}
	z := zQuantile(1 - (1-level)/2)
	nf := float64(n)
	d := 1 + z*z/nf
	c := (p + z*z/(2*nf)) / d
	h := z / d * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf))
	return max(c-h, 0), min(c+h, 1)
}

// SeedInterval summarises one setting's accuracies (percent) over its
// seeds: with two or more, Student's t over seeds; with one, the Wilson
// interval of that accuracy on images test images (the test set's
// binomial error, which is all one seed can show); images 0 gives none.
func SeedInterval(values []float64, images int, level float64) Interval {
	if len(values) != 1 {
		return MeanInterval(values, level)
	}
	in := Interval{Mean: values[0], Lo: math.NaN(), Hi: math.NaN(), N: 1, Level: level, Kind: NoInterval}
	if images > 0 {
		lo, hi := WilsonInterval(values[0]/100, images, level)
		in.Lo, in.Hi, in.Kind = 100*lo, 100*hi, Wilson
	}
	return in
}

// PairedGain is the gain aux - base (points) of a setting with generated
// data over its base model, from seed pairs: aux[i] and base[i] are the
// accuracies (percent) of one seed, which gives both the same real-image
// order. With two or more pairs it is Student's t interval of the mean of
// the per-pair differences; with one pair, Newcombe's hybrid score
// interval from the two Wilson intervals on images test images (which
// treats the two accuracies as independent, so it is wider than a paired
// per-image test would be).
func PairedGain(aux, base []float64, images int, level float64) (Interval, error) {
	if len(aux) != len(base) {
		return Interval{}, fmt.Errorf("paired gain: %d accuracies with generated data and %d without", len(aux), len(base))
	}
	d := make([]float64, len(aux))
	for i := range aux {
		d[i] = aux[i] - base[i]
	}
	if len(d) != 1 {
		return MeanInterval(d, level), nil
	}
	in := Interval{Mean: d[0], Lo: math.NaN(), Hi: math.NaN(), N: 1, Level: level, Kind: NoInterval}
	if images > 0 {
		p1, p2 := aux[0]/100, base[0]/100
		l1, u1 := WilsonInterval(p1, images, level)
		l2, u2 := WilsonInterval(p2, images, level)
		in.Lo = 100 * (p1 - p2 - math.Hypot(p1-l1, u2-p2))
		in.Hi = 100 * (p1 - p2 + math.Hypot(u1-p1, p2-l2))
		in.Kind = Newcombe
	}
	return in, nil
}

// Cluster is the points of Fig. 3 that share one base model: X is the base
// model's generalization gap (mean over its seeds) and Y the gains of the
// settings with generated data over it (one per amount, each the mean of
// its paired gains over seeds). Their Y share the base's own error, so they
// are not independent observations.
type Cluster struct {
	Name string
	X    float64
	Y    []float64
}

// ClusterLine is the line of Fig. 3 fitted on per-base averages: an
// ordinary least-squares line through (X, mean Y) of each cluster. With
// every cluster at one X this is the same line as least squares through
// all points (when clusters are of equal size), but its standard errors
// count base models, not points: the averages are independent where the
// points are not. Line.N is the number of clusters.
type ClusterLine struct {
	Line
	// Points is the number of points over all clusters.
	Points int
	// Amounts is the harmonic mean of the clusters' sizes (points per base
	// model).
	Amounts float64
	// Within is the pooled variance of points around their cluster's mean
	// (Σ over clusters of Σ(y - ȳ)², over WithinDF = Points - clusters): how
	// much the amounts of one base differ; NaN when every cluster has one
	// point.
	Within   float64
	WithinDF int
}

// ErrCluster marks a cluster without points; too few clusters, or all at
// one gap, are FitLine's ErrFit.
var ErrCluster = errors.New("no line")

// FitClusters fits the line of gain against base gap on the clusters'
// averages (see [ClusterLine]) and pools the within-cluster variance.
func FitClusters(cs []Cluster) (ClusterLine, error) {
	var x, y []float64
	cl := ClusterLine{Within: math.NaN()}
	var inv, ssw float64
	for _, c := range cs {
		if len(c.Y) == 0 {
			return ClusterLine{}, fmt.Errorf("%w: cluster %s has no point", ErrCluster, c.Name)
		}
		m := stat.Mean(c.Y, nil)
		x, y = append(x, c.X), append(y, m)
		for _, v := range c.Y {
			ssw += (v - m) * (v - m)
		}
		cl.Points += len(c.Y)
		inv += 1 / float64(len(c.Y))
	}
	l, err := FitLine(x, y)
	if err != nil {
		return ClusterLine{}, fmt.Errorf("the averages of %d base model(s): %w", len(cs), err)
	}
	cl.Line = l
	cl.Amounts = float64(len(cs)) / inv
	cl.WithinDF = cl.Points - len(cs)
	if cl.WithinDF > 0 {
		cl.Within = ssw / float64(cl.WithinDF)
	}
	return cl, nil
}

// PredictionInterval is the interval that holds, with probability level,
// the gain of a new base model whose gap is x, averaged (as the clusters
// are) over the amounts of generated data: the textbook interval of the
// line through the G per-base averages,
//
//	ŷ ± t(1 - (1-level)/2; G-2) · s_b · √(1 + 1/G + (x - x̄)²/Sxx),
//
// which is exact when the averages scatter normally with one variance
// around the line, whatever the dependence of the points within a base.
// (The gain at one amount has the extra within-base spread; fit on that
// amount alone for it.) Two base models give no error estimate and no
// interval.
func (l ClusterLine) PredictionInterval(x, level float64) (lo, hi float64, err error) {
	return l.Line.PredictionInterval(x, level)
}
