package certifier

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
)

// CleanAccuracy is the fraction of results whose prediction equals the label
// ("Clean" in the paper's tables); 0 for no results.
func CleanAccuracy(results []Result) float64 {
	if len(results) == 0 {
		return 0
	}
	n := 0
	for _, r := range results {
		if r.Correct() {
			n++
		}
	}
	return float64(n) / float64(len(results))
}

// CertifiedAccuracy is the fraction of results that are correct and certified
// at eps ([Result.Certified]: Radius > eps, or eps <= IBP; "Cert." in the
// paper's tables, also called verified robust accuracy); 0 for no results.
func CertifiedAccuracy(results []Result, eps float64) float64 {
	if len(results) == 0 {
		return 0
	}
	n := 0
	for _, r := range results {
		if r.Correct() && r.Certified(eps) {
			n++
		}
	}
	return float64(n) / float64(len(results))
}

// RadiusAccuracy is the certified accuracy at one radius.
type RadiusAccuracy struct {
	Radius float64 `json:"radius"`
	// Count is the number of correct images certified at Radius
	// ([Result.Certified]).
	Count    int     `json:"count"`
	Accuracy float64 `json:"accuracy"`
}

// CertifiedAccuracies returns the certified accuracy at each radius in radii
// (in the given order).
func CertifiedAccuracies(results []Result, radii []float64) []RadiusAccuracy {
	out := make([]RadiusAccuracy, len(radii))
	for i, eps := range radii {
		k := 0
		for _, r := range results {
			if r.Correct() && r.Certified(eps) {
				k++
			}
		}
		out[i] = RadiusAccuracy{Radius: eps, Count: k, Accuracy: ratio(k, len(results))}
	}
	return out
}

// RadiusCurve is the paper's Fig. 5: for each threshold r in Radii, the number
// of images whose certified radius is >= r ("equal to or above", as the paper
// states), counted separately for correctly and incorrectly classified
// images. It is the complementary cumulative distribution of the radii, not
// normalised per group: Correct[i]/N at r = 0 is the clean accuracy, and just
// above ε it is the certified accuracy. The fractions are of all N images.
//
// Note >= here against > for [Result.Certified]: the two differ only for
// radii exactly equal to a threshold.
type RadiusCurve struct {
	N                 int       `json:"n"`
	Radii             []float64 `json:"radii"`
	Correct           []int     `json:"correct"`
	Incorrect         []int     `json:"incorrect"`
	CorrectFraction   []float64 `json:"correct_fraction"`
	IncorrectFraction []float64 `json:"incorrect_fraction"`
}

// NewRadiusCurve evaluates the Fig. 5 curve of results at the given radii.
func NewRadiusCurve(results []Result, radii []float64) RadiusCurve {
	correct := sortedRadii(results, true)
	incorrect := sortedRadii(results, false)
	c := RadiusCurve{
		N:                 len(results),
		Radii:             slices.Clone(radii),
		Correct:           make([]int, len(radii)),
		Incorrect:         make([]int, len(radii)),
		CorrectFraction:   make([]float64, len(radii)),
		IncorrectFraction: make([]float64, len(radii)),
	}
	atLeast := func(s []float64, r float64) int {
		return len(s) - sort.SearchFloat64s(s, r) // first index with s[i] >= r
	}
	for i, r := range radii {
		c.Correct[i] = atLeast(correct, r)
		c.Incorrect[i] = atLeast(incorrect, r)
		c.CorrectFraction[i] = ratio(c.Correct[i], c.N)
		c.IncorrectFraction[i] = ratio(c.Incorrect[i], c.N)
	}
	return c
}

// LinearGrid returns n >= 2 evenly spaced values from lo to hi inclusive.
func LinearGrid(lo, hi float64, n int) []float64 {
	if n < 2 {
		return []float64{lo}
	}
	g := make([]float64, n)
	for i := range g {
		g[i] = lo + (hi-lo)*float64(i)/float64(n-1)
	}
	g[n-1] = hi
	return g
}

// Confusion is the paper's Fig. 7 for one model: every image is correct or
// not and certified (radius > ε) or not. IncorrectCertified counts images the
// model is robustly wrong about: no perturbation within ε can fix them.
type Confusion struct {
	Eps                   float64 `json:"eps"`
	CorrectCertified      int     `json:"correct_certified"`
	CorrectNotCertified   int     `json:"correct_not_certified"`
	IncorrectCertified    int     `json:"incorrect_certified"`
	IncorrectNotCertified int     `json:"incorrect_not_certified"`
}

// NewConfusion counts results into the four correct/certified cells at eps.
func NewConfusion(results []Result, eps float64) Confusion {
	c := Confusion{Eps: eps}
	for _, r := range results {
		switch ok, cert := r.Correct(), r.Certified(eps); {
		case ok && cert:
			c.CorrectCertified++
		case ok:
			c.CorrectNotCertified++
		case cert:
			c.IncorrectCertified++
		default:
			c.IncorrectNotCertified++
		}
	}
	return c
}

// Total is the number of images counted.
func (c Confusion) Total() int {
	return c.CorrectCertified + c.CorrectNotCertified + c.IncorrectCertified + c.IncorrectNotCertified
}

// Matrix returns the counts as rows {correct, incorrect} × columns
// {certified, not certified}, the layout of the heat map.
func (c Confusion) Matrix() [2][2]int {
	return [2][2]int{
		{c.CorrectCertified, c.CorrectNotCertified},
		{c.IncorrectCertified, c.IncorrectNotCertified},
	}
}

// State is one of the four correct/certified constellations of an image.
type State int

// The four constellations, in the order of [Confusion.Matrix] read row-wise.
const (
	CorrectCertified State = iota
	CorrectNotCertified
	IncorrectCertified
	IncorrectNotCertified
)

// StateNames are short labels for the states, in State order.
var StateNames = [4]string{"Correct, Cert.", "Correct, ¬Cert.", "¬Correct, Cert.", "¬Correct, ¬Cert."}

// StateOf returns the constellation of one result at eps.
func StateOf(r Result, eps float64) State {
	s := CorrectCertified
	if !r.Certified(eps) {
		s++
	}
	if !r.Correct() {
		s += 2
	}
	return s
}

// Transition cross-tabulates two models on the same images (the comparison
// of Fig. 7 between a model trained without and one with generated data):
// entry [a][b] counts the images in state a under the first model and state b
// under the second.
func Transition(first, second []Result, eps float64) ([4][4]int, error) {
	var t [4][4]int
	if len(first) != len(second) {
		return t, fmt.Errorf("transition: %d and %d results: %w", len(first), len(second), ErrShape)
	}
	for i := range first {
		if first[i].Label != second[i].Label {
			return t, fmt.Errorf("transition: image %d has label %d and %d; not the same images: %w",
				i, first[i].Label, second[i].Label, ErrShape)
		}
		t[StateOf(first[i], eps)][StateOf(second[i], eps)]++
	}
	return t, nil
}

// Report collects the paper's per-model analyses of one result set.
type Report struct {
	N                 int     `json:"n"`
	Eps               float64 `json:"eps"`
	Correct           int     `json:"correct"`
	CleanAccuracy     float64 `json:"clean_accuracy"`
	CertifiedAccuracy float64 `json:"certified_accuracy"`
	// InfiniteRadii counts images whose prediction no perturbation can change
	// according to the bound (K_cj = 0 for all classes).
	InfiniteRadii int              `json:"infinite_radii"`
	AtRadii       []RadiusAccuracy `json:"at_radii"`
	Confusion     Confusion        `json:"confusion"`
	Curve         RadiusCurve      `json:"radius_curve"`
}

// ReportOptions chooses the radii a [Report] is evaluated at.
type ReportOptions struct {
	// Eps is the certification radius (36/255 for the paper's ℓ2 models).
	Eps float64
	// Norm is the norm of the radii ("l2" or "linf"); it chooses the
	// default radii.
	Norm string
	// Radii lists the radii for the certified accuracy; nil means
	// [ReportRadii](Norm, Eps).
	Radii []float64
	// CurveRadii are the thresholds of the Fig. 5 curve; nil means 201 points
	// from 0 to the largest finite radius (at least 2ε).
	CurveRadii []float64
}

// Summarize computes a [Report]. It rejects empty input, NaN or negative
// radii and non-finite or negative evaluation radii, so that the report is
// always valid JSON.
func Summarize(results []Result, opts ReportOptions) (*Report, error) {
	if len(results) == 0 {
		return nil, fmt.Errorf("summarize: no results: %w", ErrShape)
	}
	if err := checkRadius("ε", opts.Eps); err != nil {
		return nil, fmt.Errorf("summarize: %w", err)
	}
	inf, maxFinite := 0, 0.0
	for i, r := range results {
		if math.IsNaN(r.Radius) || r.Radius < 0 || math.IsNaN(r.IBP) || r.IBP < 0 || math.IsInf(r.IBP, 0) {
			return nil, fmt.Errorf("summarize: result %d has radius %v, interval radius %v", i, r.Radius, r.IBP)
		}
		if math.IsInf(r.Radius, 1) {
			inf++
		} else {
			maxFinite = max(maxFinite, r.CertifiedRadius())
		}
	}
	radii := opts.Radii
	if radii == nil {
		radii = ReportRadii(opts.Norm, opts.Eps)
	}
	curve := opts.CurveRadii
	if curve == nil {
		curve = LinearGrid(0, max(maxFinite, 2*opts.Eps), 201)
	}
	for _, list := range [][]float64{radii, curve} {
		for _, r := range list {
			if err := checkRadius("radius", r); err != nil {
				return nil, fmt.Errorf("summarize: %w", err)
			}
		}
	}
	conf := NewConfusion(results, opts.Eps)
	correct := conf.CorrectCertified + conf.CorrectNotCertified
	return &Report{
		N:                 len(results),
		Eps:               opts.Eps,
		Correct:           correct,
		CleanAccuracy:     ratio(correct, len(results)),
		CertifiedAccuracy: ratio(conf.CorrectCertified, len(results)),
		InfiniteRadii:     inf,
		AtRadii:           CertifiedAccuracies(results, radii),
		Confusion:         conf,
		Curve:             NewRadiusCurve(results, curve),
	}, nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// ReadReport decodes a report written by [Report.WriteJSON].
func ReadReport(rd io.Reader) (*Report, error) {
	var r Report
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	return &r, nil
}

func checkRadius(name string, r float64) error {
	if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return fmt.Errorf("%s = %v, want finite and >= 0", name, r)
	}
	return nil
}

// sortedRadii returns the ascending certified radii (max(Radius, IBP)) of
// the correct (or incorrect) results.
func sortedRadii(results []Result, correct bool) []float64 {
	var s []float64
	for _, r := range results {
		if r.Correct() == correct {
			s = append(s, r.CertifiedRadius())
		}
	}
	slices.Sort(s)
	return s
}

func ratio(k, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(k) / float64(n)
}
