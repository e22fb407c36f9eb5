package certifier

import (
	"errors"
	"math"
	"reflect"
	"testing"
)

// handmade is a result set whose statistics are worked out by hand at
// ε = 0.5. Radius 0.5 equals ε and is therefore not certified.
var handmade = []Result{
	{Label: 0, Prediction: 0, Radius: 1.0},         // correct, certified
	{Label: 1, Prediction: 1, Radius: 0.5},         // correct, radius = ε: not certified
	{Label: 2, Prediction: 2, Radius: 0.2},         // correct, not certified
	{Label: 0, Prediction: 1, Radius: 0.7},         // incorrect, certified (robustly wrong)
	{Label: 1, Prediction: 0, Radius: 0},           // incorrect, not certified
	{Label: 2, Prediction: 2, Radius: math.Inf(1)}, // correct, certified
	{Label: 3, Prediction: 3, Radius: 0.5},         // correct, radius = ε
	{Label: 3, Prediction: 1, Radius: 2.0},         // incorrect, certified
}

// TestStatisticsHandmade checks every statistic on the hand-made set.
func TestStatisticsHandmade(t *testing.T) {
	const eps = 0.5
	if got := CleanAccuracy(handmade); got != 5.0/8 {
		t.Errorf("clean accuracy %v, want 5/8", got)
	}
	certTests := []struct {
		eps  float64
		want float64
	}{
		{0, 5.0 / 8}, {0.2, 4.0 / 8}, {0.5, 2.0 / 8}, {1, 1.0 / 8}, {1e300, 1.0 / 8},
	}
	for _, tc := range certTests {
		if got := CertifiedAccuracy(handmade, tc.eps); got != tc.want {
			t.Errorf("certified accuracy at %v: %v, want %v", tc.eps, got, tc.want)
		}
	}
	radii := []float64{1, 0, 0.5, 3}
	wantAt := []RadiusAccuracy{{1, 1, 1.0 / 8}, {0, 5, 5.0 / 8}, {0.5, 2, 2.0 / 8}, {3, 1, 1.0 / 8}}
	if got := CertifiedAccuracies(handmade, radii); !reflect.DeepEqual(got, wantAt) {
		t.Errorf("certified accuracies %+v, want %+v", got, wantAt)
	}
	for _, tc := range certTests {
		if got := CertifiedAccuracies(handmade, []float64{tc.eps})[0].Accuracy; got != tc.want {
			t.Errorf("CertifiedAccuracies at %v = %v, CertifiedAccuracy %v", tc.eps, got, tc.want)
		}
	}

	curve := NewRadiusCurve(handmade, []float64{0, 0.5, 1, 2, 3})
	wantCurve := RadiusCurve{
		N:                 8,
		Radii:             []float64{0, 0.5, 1, 2, 3},
		Correct:           []int{5, 4, 2, 1, 1}, // radii 0.2, 0.5, 0.5, 1, +Inf
		Incorrect:         []int{3, 2, 1, 1, 0}, // radii 0, 0.7, 2
		CorrectFraction:   []float64{5.0 / 8, 4.0 / 8, 2.0 / 8, 1.0 / 8, 1.0 / 8},
		IncorrectFraction: []float64{3.0 / 8, 2.0 / 8, 1.0 / 8, 1.0 / 8, 0},
	}
	if !reflect.DeepEqual(curve, wantCurve) {
		t.Errorf("radius curve %+v, want %+v", curve, wantCurve)
	}

	conf := NewConfusion(handmade, eps)
	wantConf := Confusion{Eps: eps, CorrectCertified: 2, CorrectNotCertified: 3, IncorrectCertified: 2, IncorrectNotCertified: 1}
	if conf != wantConf || conf.Total() != 8 {
		t.Errorf("confusion %+v (total %d), want %+v", conf, conf.Total(), wantConf)
	}
	if m := conf.Matrix(); m != [2][2]int{{2, 3}, {2, 1}} {
		t.Errorf("matrix %v", m)
	}
	wantStates := []State{CorrectCertified, CorrectNotCertified, CorrectNotCertified, IncorrectCertified,
		IncorrectNotCertified, CorrectCertified, CorrectNotCertified, IncorrectCertified}
	for i, r := range handmade {
		if got := StateOf(r, eps); got != wantStates[i] {
			t.Errorf("result %d: state %d (%s), want %d (%s)", i, got, StateNames[got], wantStates[i], StateNames[wantStates[i]])
		}
	}
}

// TestSummarize checks the report's defaults and its validation.
func TestSummarize(t *testing.T) {
	rep, err := Summarize(handmade, ReportOptions{Eps: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if rep.N != 8 || rep.Correct != 5 || rep.CleanAccuracy != 5.0/8 || rep.CertifiedAccuracy != 2.0/8 || rep.InfiniteRadii != 1 {
		t.Errorf("report %+v", rep)
	}
	// Default radii: ReportRadii for l2, ε/2 to 3ε.
	wantRadii := []float64{0.25, 0.5, 1, 1.5}
	wantCounts := []int{4, 2, 1, 1}
	if len(rep.AtRadii) != len(wantRadii) {
		t.Fatalf("at radii %+v, want radii %v", rep.AtRadii, wantRadii)
	}
	for i, a := range rep.AtRadii {
		if a.Radius != wantRadii[i] || a.Count != wantCounts[i] {
			t.Errorf("at radii %+v, want radii %v counts %v", rep.AtRadii, wantRadii, wantCounts)
			break
		}
	}
	// Default curve: 201 points from 0 to the largest finite radius, 2.
	if c := rep.Curve; len(c.Radii) != 201 || c.Radii[0] != 0 || c.Radii[200] != 2 || c.Radii[100] != 1 || c.Correct[100] != 2 {
		t.Errorf("default curve: %d points from %v to %v", len(c.Radii), c.Radii[0], c.Radii[len(c.Radii)-1])
	}
	if rep.Confusion != NewConfusion(handmade, 0.5) {
		t.Errorf("confusion %+v", rep.Confusion)
	}

	bad := []struct {
		name    string
		results []Result
		opts    ReportOptions
	}{
		{"empty", nil, ReportOptions{Eps: 0.5}},
		{"NaN radius", []Result{{Radius: math.NaN()}}, ReportOptions{Eps: 0.5}},
		{"negative radius", []Result{{Radius: -1}}, ReportOptions{Eps: 0.5}},
		{"negative ε", handmade, ReportOptions{Eps: -0.1}},
		{"infinite ε", handmade, ReportOptions{Eps: math.Inf(1)}},
		{"infinite radius in the list", handmade, ReportOptions{Eps: 0.5, Radii: []float64{math.Inf(1)}}},
		{"NaN curve radius", handmade, ReportOptions{Eps: 0.5, CurveRadii: []float64{math.NaN()}}},
	}
	for _, tc := range bad {
		if _, err := Summarize(tc.results, tc.opts); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// TestTransition cross-tabulates two hand-made models.
func TestTransition(t *testing.T) {
	second := []Result{
		{Label: 0, Prediction: 0, Radius: 0.1},  // CC → CN
		{Label: 1, Prediction: 1, Radius: 0.6},  // CN → CC
		{Label: 2, Prediction: 2, Radius: 0.9},  // CN → CC
		{Label: 0, Prediction: 0, Radius: 0.9},  // IC → CC
		{Label: 1, Prediction: 0, Radius: 0.55}, // IN → IC
		{Label: 2, Prediction: 2, Radius: 3},    // CC → CC
		{Label: 3, Prediction: 0, Radius: 0},    // CN → IN
		{Label: 3, Prediction: 1, Radius: 2.0},  // IC → IC
	}
	got, err := Transition(handmade, second, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	var want [4][4]int
	want[CorrectCertified][CorrectNotCertified] = 1
	want[CorrectNotCertified][CorrectCertified] = 2
	want[IncorrectCertified][CorrectCertified] = 1
	want[IncorrectNotCertified][IncorrectCertified] = 1
	want[CorrectCertified][CorrectCertified] = 1
	want[CorrectNotCertified][IncorrectNotCertified] = 1
	want[IncorrectCertified][IncorrectCertified] = 1
	if got != want {
		t.Errorf("transition %v, want %v", got, want)
	}
	if _, err := Transition(handmade, second[:3], 0.5); !errors.Is(err, ErrShape) {
		t.Errorf("lengths differ: %v, want ErrShape", err)
	}
	other := append([]Result(nil), second...)
	other[0].Label = 9
	if _, err := Transition(handmade, other, 0.5); !errors.Is(err, ErrShape) {
		t.Errorf("labels differ: %v, want ErrShape", err)
	}
}

// TestStatisticsEmpty checks that empty input gives zeros, not NaN.
func TestStatisticsEmpty(t *testing.T) {
	if CleanAccuracy(nil) != 0 || CertifiedAccuracy(nil, 0.1) != 0 {
		t.Error("accuracies of no results are not 0")
	}
	if a := CertifiedAccuracies(nil, []float64{0.1}); a[0].Accuracy != 0 || a[0].Count != 0 {
		t.Errorf("%+v", a)
	}
	if c := NewRadiusCurve(nil, []float64{0}); c.CorrectFraction[0] != 0 {
		t.Errorf("%+v", c)
	}
	if g := LinearGrid(0, 1, 5); !reflect.DeepEqual(g, []float64{0, 0.25, 0.5, 0.75, 1}) {
		t.Errorf("grid %v", g)
	}
}
