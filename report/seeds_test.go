package report

import (
	"math"
	"strings"
	"testing"
)

const seedsFile = `
name: seeds
data: {real: r, test: t, generated: {1M: g1, 5M: g5}}
grids:
  - {preset: gloro-xs, family: gloro, fraction: [0, 0.7], generated: [1M, 5M], epochs: [10, 20, 30], seed: [1, 2]}
`

// seeded are the certified accuracies (%) of the seeds sweep, seed 1 and
// seed 2, and the base models' generalization gaps; clean accuracy is
// certified + 13 and every cell with generated data has a gap of 2.
var seeded = map[string][2]float64{
	"e10_f0": {60, 61}, "e10_f0.7_1M": {62, 62.5}, "e10_f0.7_5M": {63, 64},
	"e20_f0": {62, 62}, "e20_f0.7_1M": {64.5, 64}, "e20_f0.7_5M": {65, 65.5},
	"e30_f0": {63, 63.5}, "e30_f0.7_1M": {66, 66.5}, "e30_f0.7_5M": {67, 66.5},
}

var seededGaps = map[string][2]float64{"e10": {5, 6}, "e20": {7, 8}, "e30": {9, 10}}

// TestReportSeeds checks, on a sweep of three configurations × two amounts
// × two seeds, the intervals over seeds, the paired gains and the Fig. 3
// line on per-base averages with its standard errors and prediction,
// against values worked out by hand. With two seeds every t interval uses
// t(0.975; 1) = 12.706204736174707.
func TestReportSeeds(t *testing.T) {
	results := map[string]cellResult{}
	for k, v := range seeded {
		for i, seed := range []string{"1", "2"} {
			gap := 2.0
			if strings.HasSuffix(k, "_f0") {
				gap = seededGaps[strings.TrimSuffix(k, "_f0")][i]
			}
			results["gloro-xs_"+k+"_s"+seed] = cellResult{clean: v[i] + 13, cert: v[i], gap: gap}
		}
	}
	r, err := Build(writeSweep(t, seedsFile, results))
	if err != nil {
		t.Fatal(err)
	}
	const t1 = 12.706204736174707
	if len(r.Table.Rows) != 3 || len(r.Table.Rows[0].Seeds) != 2 {
		t.Fatalf("%d rows (want 3, one per configuration), seeds %v", len(r.Table.Rows), r.Table.Rows[0].Seeds)
	}
	row := r.Table.Rows[0]
	// e10's base: certified 60 and 61, mean 60.5, s² = 0.5, half-width
	// t·√(0.5/2) = t/2; gap 5 and 6, the same half-width around 5.5.
	if c := row.Base.Certified; c.Kind != OverSeeds || c.N != 2 || !near(c.Mean, 60.5, 1e-12) || !near(c.Lo, 60.5-t1/2, 1e-9) || !near(c.Hi, 60.5+t1/2, 1e-9) {
		t.Errorf("e10 base certified %+v", c)
	}
	if g := row.Base.Gap; !near(g.Mean, 5.5, 1e-12) || !near(g.Lo, 5.5-t1/2, 1e-9) {
		t.Errorf("e10 base gap %+v", g)
	}
	// Paired gains: 1M 2 and 1.5 (mean 1.75, s² = 0.125, half t/4: covers
	// 0); 5M 3 and 3 (no spread: [3, 3], significant).
	if g := row.Gains[0]; !near(g.Mean, 1.75, 1e-12) || !near(g.Lo, 1.75-t1/4, 1e-9) || !near(g.Hi, 1.75+t1/4, 1e-9) || g.Significant() {
		t.Errorf("e10 1M gain %+v", g)
	}
	if g := row.Gains[1]; !near(g.Mean, 3, 1e-12) || !near(g.Lo, 3, 1e-12) || !g.Significant() || !row.HasDelta || row.Best != 1 {
		t.Errorf("e10 5M gain %+v (best column %d)", g, row.Best)
	}
	md := r.MainTable().Markdown()
	if want := "| gloro-xs | 10 | 2 | 73.50 [67.15, 79.85] | 60.50 [54.15, 66.85] | 75.25 [72.07, 78.43] | 62.25 [59.07, 65.43] | 76.50 [70.15, 82.85] | 63.50 [57.15, 69.85] | +3.00 [+3.00, +3.00] (5M) |\n"; !strings.Contains(md, want) {
		t.Errorf("main table\n%s\nlacks\n%s", md, want)
	}
	gains := r.GainsTable().Markdown()
	if want := "| gloro-xs_e10_f0.7_1M | gloro-xs_e10_f0 | gloro | 2 | 5.50 [-0.85, 11.85] | +1.75 [-1.43, +4.93] n.s. | t over seeds | no significant difference |\n"; !strings.Contains(gains, want) {
		t.Errorf("gains table\n%s\nlacks\n%s", gains, want)
	}

	// Fig. 3: bases at 5.5, 7.5, 9.5 with gain averages 2.375, 2.75, 3.25:
	// Sxx = 8, Sxy = 1.75, b = 7/32, a = 8.375/3 - 7.5·7/32; residuals
	// 1/48, -1/24, 1/48, SSR = 1/384 on 1 df; SE(b) = s/√8, SE(a) =
	// s√(1/3 + 7.5²/8). Within: (±0.625, ±0.5, ±0.25) gives 1.40625 on 3
	// df.
	if len(r.Fits) != 1 || r.Fits[0].Err != nil {
		t.Fatalf("fits %+v", r.Fits)
	}
	l := r.Fits[0].Line
	s := math.Sqrt(1.0 / 384)
	a := 8.375/3 - 7.5*7.0/32
	if l.N != 3 || l.Points != 6 || !near(l.Slope, 7.0/32, 1e-12) || !near(l.Intercept, a, 1e-12) || !near(l.S, s, 1e-12) ||
		!near(l.SlopeSE, s/math.Sqrt(8), 1e-12) || !near(l.InterceptSE, s*math.Sqrt(1.0/3+56.25/8), 1e-12) ||
		!near(l.Within, 1.40625/3, 1e-12) || l.WithinDF != 3 || l.Amounts != 2 {
		t.Errorf("line %+v", l)
	}
	if !near(l.SlopeSE, 0.018042195912175804, 1e-12) || !near(l.InterceptSE, 0.13848683125321176, 1e-12) {
		t.Errorf("hand SEs %v %v", l.SlopeSE, l.InterceptSE)
	}
	// Prediction at a base gap of 11.5: ŷ = a + 11.5·7/32 = 11/3, half =
	// t·s·√(1 + 1/3 + 4²/8).
	ps, err := Predict(r.Gains, 11.5, "gloro", "", 0.7, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	half := t1 * s * math.Sqrt(1+1.0/3+2)
	if p := ps[0]; !near(p.Gain, 11.0/3, 1e-12) || !near(p.Lo, 11.0/3-half, 1e-9) || !near(p.Hi, 11.0/3+half, 1e-9) || !near(half, 1.183830730254851, 1e-9) {
		t.Errorf("prediction %+v, want 11/3 ± %v", p, half)
	}
}
