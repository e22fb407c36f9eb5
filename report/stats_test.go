package report

import (
	"math"
	"testing"
)

// TestIntervals checks every interval of stats.go against values worked
// out by hand (exact fractions where they are rational; t quantiles from
// statistical tables, z = 1.959963984540054).
func TestIntervals(t *testing.T) {
	// Three seeds 63, 64, 65.5: x̄ = 385/6, s² = 19/12, t(0.975; 2) =
	// 4.302652729911275, half = t·s/√3.
	in := MeanInterval([]float64{63, 64, 65.5}, 0.95)
	half := 4.302652729911275 * math.Sqrt(19.0/12/3)
	if in.Kind != OverSeeds || in.N != 3 || !near(in.Mean, 385.0/6, 1e-12) || !near(in.Lo, 385.0/6-half, 1e-9) || !near(in.Hi, 385.0/6+half, 1e-9) {
		t.Errorf("t interval %+v, want %v ± %v", in, 385.0/6, half)
	}
	if !near(half, 3.1258047398054423, 1e-9) {
		t.Errorf("hand half-width %v", half)
	}
	if one := MeanInterval([]float64{2}, 0.95); one.Kind != NoInterval || one.Mean != 2 || !math.IsNaN(one.Lo) || !one.Covers(100) {
		t.Errorf("one value: %+v", one)
	}

	// Wilson at p = 0.6344, n = 10,000: (p + z²/2n ± z√(p(1-p)/n + z²/4n²))/(1 + z²/n).
	lo, hi := WilsonInterval(0.6344, 10000, 0.95)
	if !near(lo, 0.6249109145057179, 1e-12) || !near(hi, 0.6437858667322442, 1e-12) {
		t.Errorf("Wilson [%v, %v]", lo, hi)
	}
	// At 0 successes the interval starts at 0 and is not empty: [0, z²/(n+z²)].
	if lo, hi := WilsonInterval(0, 100, 0.95); lo != 0 || !near(hi, 3.8414588206941245/(100+3.8414588206941245), 1e-12) {
		t.Errorf("Wilson at 0: [%v, %v]", lo, hi)
	}
	// One seed: the Wilson interval in percent.
	if in := SeedInterval([]float64{63.44}, 10000, 0.95); in.Kind != Wilson || !near(in.Lo, 62.49109145057179, 1e-9) || !near(in.Hi, 64.37858667322442, 1e-9) {
		t.Errorf("one seed: %+v", in)
	}
	if in := SeedInterval([]float64{63, 64, 65.5}, 10000, 0.95); in.Kind != OverSeeds || !near(in.Lo, 385.0/6-half, 1e-9) {
		t.Errorf("three seeds: %+v", in)
	}

	// Paired gains over three seeds: differences 1, 2, 1.5 (mean 1.5, s² =
	// 0.25, half = t(0.975; 2)·0.5/√3), significant.
	g, err := PairedGain([]float64{64, 66, 65.5}, []float64{63, 64, 64}, 10000, 0.95)
	if h := 4.302652729911275 * 0.5 / math.Sqrt(3); err != nil || g.Kind != OverSeeds || !near(g.Mean, 1.5, 1e-12) || !near(g.Hi-g.Mean, h, 1e-9) || !g.Significant() {
		t.Errorf("paired gain %+v %v", g, err)
	}
	// Differences 1, -1, 0.5: the interval covers 0.
	if g, _ := PairedGain([]float64{64, 63, 64.5}, []float64{63, 64, 64}, 10000, 0.95); g.Significant() {
		t.Errorf("paired gain %+v is significant", g)
	}
	// One pair: Newcombe's interval from the Wilson intervals of 65.29% and
	// 63.44% on 10,000 images.
	g, err = PairedGain([]float64{65.29}, []float64{63.44}, 10000, 0.95)
	if err != nil || g.Kind != Newcombe || !near(g.Lo, 0.5225243666898672, 1e-9) || !near(g.Hi, 3.1765613962444186, 1e-9) || !near(g.Mean, 1.85, 1e-9) {
		t.Errorf("one pair: %+v %v", g, err)
	}
	if _, err := PairedGain([]float64{1, 2}, []float64{1}, 10, 0.95); err == nil {
		t.Error("unpaired lengths: no error")
	}
}

// TestFitClusters checks the per-base line, its standard errors, the
// pooled within-base variance and the prediction interval against exact
// fractions.
func TestFitClusters(t *testing.T) {
	// Four base models at x = 1..4 with 3, 2, 3 and 3 points; their means
	// 3/2, 5/2, 17/5, 67/15. Least squares on the means: b = 49/50, a =
	// 31/60, SSR = 7/1500, s_b² = 7/3000; within: SS = 31/15 on 7 df, s_w²
	// = 31/105; harmonic mean size A = 8/3.
	cs := []Cluster{{"a", 1, []float64{1, 2, 1.5}}, {"b", 2, []float64{2, 3}}, {"c", 3, []float64{4, 3, 3.2}}, {"d", 4, []float64{4, 5, 4.4}}}
	l, err := FitClusters(cs)
	if err != nil {
		t.Fatal(err)
	}
	if l.N != 4 || l.Points != 11 || !near(l.Slope, 0.98, 1e-12) || !near(l.Intercept, 31.0/60, 1e-12) || !near(l.S*l.S, 7.0/3000, 1e-12) ||
		!near(l.Within, 31.0/105, 1e-12) || l.WithinDF != 7 || !near(l.Amounts, 8.0/3, 1e-12) {
		t.Errorf("line %+v", l)
	}
	// SE(b) = √(s_b²/Sxx), Sxx = 5; SE(a) = √(s_b² (1/4 + 6.25/5)).
	if !near(l.SlopeSE, math.Sqrt(7.0/3000/5), 1e-12) || !near(l.InterceptSE, math.Sqrt(7.0/3000*1.5), 1e-12) {
		t.Errorf("SEs %v %v", l.SlopeSE, l.InterceptSE)
	}
	// At x = 5: ŷ = 31/60 + 5·0.98 ± t(0.975; 2)·√(s_b² (1 + 1/4 + 6.25/5))
	// = √(7/1200).
	lo, hi, err := l.PredictionInterval(5, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	yhat, half := 31.0/60+4.9, 4.302652729911275*math.Sqrt(7.0/1200)
	if !near(lo, yhat-half, 1e-9) || !near(hi, yhat+half, 1e-9) {
		t.Errorf("prediction [%v, %v], want %v ± %v", lo, hi, yhat, half)
	}
	// One point per base: the textbook interval on G - 2 df, as FitLine's.
	single := []Cluster{{"a", 0, []float64{1}}, {"b", 1, []float64{3}}, {"c", 2, []float64{2}}, {"d", 3, []float64{5}}}
	l, _ = FitClusters(single)
	lo, hi, _ = l.PredictionInterval(2, 0.95)
	if h := 4.302652729911275 * math.Sqrt(1.755); !near(lo, 3.3-h, 1e-9) || !near(hi, 3.3+h, 1e-9) {
		t.Errorf("single points: [%v, %v]", lo, hi)
	}
	if l, _ := FitClusters(cs[:2]); func() bool { _, _, err := l.PredictionInterval(1, 0.95); return err == nil }() {
		t.Error("two base models gave an interval")
	}
	if _, err := FitClusters([]Cluster{{"a", 1, []float64{1, 2}}, {"b", 1, []float64{3}}}); err == nil {
		t.Error("one x: no error")
	}
}
