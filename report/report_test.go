package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"certmix/certifier"
	"certmix/sweep"
)

const knownFile = `
name: known
data: {real: r, test: t, generated: {1M: g1, 5M: g5}}
grids:
  - {preset: gloro-xs, family: gloro, fraction: [0, 0.7], generated: [1M, 5M], epochs: [800, 1600]}
  - {preset: gloro-s, family: gloro, fraction: [0, 0.7], generated: [1M, 5M], epochs: 800}
  - {preset: lot-s, fraction: [0, 0.7], generated: 1M, epochs: [200, 400]}
`

// known are the cells' results: clean and certified test accuracy (%),
// generalization gap (points) and the per-epoch certified accuracies of
// the training run (fractions). Accuracies are from the paper's Table 2.
var known = map[string]cellResult{
	"gloro-xs_e800_f0_s0":       {76.51, 63.44, 4, []float64{0.60, 0.64, 0.61, 0.63, 0.62}},
	"gloro-xs_e800_f0.7_1M_s0":  {77.30, 65.29, 1.0, nil},
	"gloro-xs_e800_f0.7_5M_s0":  {77.42, 65.57, 0.5, nil},
	"gloro-xs_e1600_f0_s0":      {76.95, 63.79, 5, nil},
	"gloro-xs_e1600_f0.7_1M_s0": {78.13, 66.24, 1.2, nil},
	"gloro-xs_e1600_f0.7_5M_s0": {78.21, 65.98, 0.8, nil},
	"gloro-s_e800_f0_s0":        {77.22, 64.33, 3, nil},
	"gloro-s_e800_f0.7_1M_s0":   {78.12, 66.17, 0.9, nil},
	// gloro-s_e800_f0.7_5M_s0 has not finished.
	"lot-s_e200_f0_s0":      {76.60, 63.45, 2.5, nil},
	"lot-s_e200_f0.7_1M_s0": {79.19, 65.81, 0.4, nil},
	"lot-s_e400_f0_s0":      {76.50, 63.48, 3.5, nil},
	"lot-s_e400_f0.7_1M_s0": {79.87, 66.99, 0.6, nil},
}

const eps = 36.0 / 255

// cellResult is what a synthetic cell's files say: clean and certified
// test accuracy (%), generalization gap (points) and the per-epoch
// certified accuracies of the training run (fractions; nil: one epoch at
// the certified accuracy).
type cellResult struct {
	clean, cert, gap float64
	epochs           []float64
}

// knownSweep writes a sweep directory holding the known results in the
// files certmix train and certify write.
func knownSweep(t *testing.T) string { return writeSweep(t, knownFile, known) }

// writeSweep prepares the sweep of file and writes the results of the
// cells named in results (the others stay unfinished).
func writeSweep(t *testing.T, file string, results map[string]cellResult) string {
	t.Helper()
	f, src, err := sweep.Parse([]byte(file), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p, err := sweep.NewPlan(f, "/")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := sweep.Prepare(dir, p, src); err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Cells {
		k, ok := results[c.Name]
		if !ok {
			continue
		}
		cd := sweep.CellDir(dir, c.Name)
		write := func(name string, data []byte) {
			path := filepath.Join(cd, name)
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		rep, _ := json.Marshal(map[string]any{"n": 10000, "eps": eps, "clean_accuracy": k.clean / 100, "certified_accuracy": k.cert / 100})
		write("certify/report.json", rep)
		sum, _ := json.Marshal(map[string]any{"images": 10000, "clean": k.clean / 100, "eps": []float64{eps / 2, eps, 2 * eps, 3 * eps},
			"certified":   []float64{(k.cert + 5) / 100, k.cert / 100, (k.cert - 10) / 100, (k.cert - 20) / 100},
			"train_clean": (k.clean + k.gap) / 100, "generalization_gap": k.gap / 100})
		write("certify/summary.json", sum)
		epochs := k.epochs
		if epochs == nil {
			epochs = []float64{k.cert / 100}
		}
		var metrics bytes.Buffer
		for i, v := range epochs {
			e := i
			if len(epochs) == 5 {
				e = []int{0, 1, 2, 2, 3}[i] // epoch 2 twice: a resumed run
			}
			fmt.Fprintf(&metrics, `{"epoch":%d,"train_loss":1,"test_certified":%v}`+"\n", e, v)
		}
		write("train/metrics.jsonl", metrics.Bytes())
		var csv bytes.Buffer
		certifier.WriteCSV(&csv, []certifier.Result{{Label: 1, Prediction: 1, Radius: 0.3}, {Label: 2, Prediction: 2, Radius: 0.1},
			{Label: 3, Prediction: 4, Radius: 0.05}, {Label: 5, Prediction: 5, Radius: math.Inf(1)}}, eps)
		write("certify/radii.csv", csv.Bytes())
		write("done", []byte("{}\n"))
	}
	return dir
}

// TestReportNumbers checks every table entry, the best gains, the fitted
// lines and the predictions against the known results and values worked
// out by hand.
func TestReportNumbers(t *testing.T) {
	r, err := Build(knownSweep(t))
	if err != nil {
		t.Fatal(err)
	}
	if u := r.Unfinished(); len(u) != 1 || u[0] != "gloro-s_e800_f0.7_5M_s0" {
		t.Errorf("unfinished %v", u)
	}
	// One seed: each entry's interval is the Wilson interval on 10,000
	// test images, ΔCert.'s Newcombe's (both worked out with z =
	// 1.959963984540054 and the formulas of stats.go, then rounded).
	main := r.MainTable()
	wantHeader := "| architecture | epochs | seeds | no generated: clean | cert. | 1M: clean | cert. | 5M: clean | cert. | ΔCert. |"
	wantRows := []string{
		"| gloro-xs | 800 | 1 | 76.51 [75.67, 77.33] | 63.44 [62.49, 64.38] | 77.30 [76.47, 78.11] | 65.29 [64.35, 66.22] | 77.42 [76.59, 78.23] | 65.57 [64.63, 66.50] | +2.13 [+0.80, +3.46] (5M) |",
		"| gloro-xs | 1600 | 1 | 76.95 [76.11, 77.77] | 63.79 [62.84, 64.73] | 78.13 [77.31, 78.93] | 66.24 [65.31, 67.16] | 78.21 [77.39, 79.01] | 65.98 [65.05, 66.90] | +2.45 [+1.13, +3.77] (1M) |",
		"| gloro-s | 800 | 1 | 77.22 [76.39, 78.03] | 64.33 [63.39, 65.26] | 78.12 [77.30, 78.92] | 66.17 [65.24, 67.09] | – | – | +1.84 [+0.52, +3.16] (1M) |",
		"| lot-s | 200 | 1 | 76.60 [75.76, 77.42] | 63.45 [62.50, 64.39] | 79.19 [78.38, 79.97] | 65.81 [64.87, 66.73] | – | – | +2.36 [+1.03, +3.68] (1M) |",
		"| lot-s | 400 | 1 | 76.50 [75.66, 77.32] | 63.48 [62.53, 64.42] | 79.87 [79.07, 80.64] | 66.99 [66.06, 67.90] | – | – | +3.51 [+2.19, +4.83] (1M) |",
	}
	md := main.Markdown()
	if lines := strings.Split(strings.TrimSpace(md), "\n"); lines[0] != wantHeader || strings.Join(lines[2:], "\n") != strings.Join(wantRows, "\n") {
		t.Errorf("main table\n%s\nwant\n%s\n%s", md, wantHeader, strings.Join(wantRows, "\n"))
	}
	// The numbers behind the formatting.
	for i, d := range []float64{65.57 - 63.44, 66.24 - 63.79, 66.17 - 64.33, 65.81 - 63.45, 66.99 - 63.48} {
		if row := r.Table.Rows[i]; !row.HasDelta || !near(row.DeltaCert.Mean, d, 1e-9) || row.DeltaCert.Kind != Newcombe {
			t.Errorf("row %s: ΔCert %+v, want %v", row.Key, row.DeltaCert, d)
		}
	}
	for _, res := range r.Results {
		k, ok := known[res.Name]
		if ok != res.Done || (ok && (!near(res.Clean, k.clean, 1e-9) || !near(res.Certified, k.cert, 1e-9) || !near(res.GeneralizationGap, k.gap, 1e-9) || res.Images != 10000)) {
			t.Errorf("cell %s: done %v clean %v cert %v gap %v, want %+v", res.Name, res.Done, res.Clean, res.Certified, res.GeneralizationGap, k)
		}
	}
	if inf := r.InferredFamilies(); len(inf) != 1 || inf[0] != "lot-s" {
		t.Errorf("inferred families for %v, want lot-s", inf)
	}
	// Every cell, with the four radii and the best epoch.
	cells := r.CellsTable().Markdown()
	for _, want := range []string{
		"| cell | clean | cert. 18/255 | cert. 36/255 | cert. 72/255 | cert. 108/255 | train clean | gen. gap | best epoch | best − last |",
		"| gloro-xs_e800_f0_s0 | 76.51 | 68.44 | 63.44 | 53.44 | 43.44 | 80.51 | 4.00 | 2 of 4 | 2.00 |",
		"| lot-s_e400_f0.7_1M_s0 | 79.87 | 71.99 | 66.99 | 56.99 | 46.99 | 80.47 | 0.60 | 1 of 1 | 0.00 |",
		"| gloro-s_e800_f0.7_5M_s0 | – | – | – | – | – | – | – | – | – |",
	} {
		if !strings.Contains(cells, want+"\n") {
			t.Errorf("cells table lacks\n%s\nin\n%s", want, cells)
		}
	}

	// Fig. 3 at f = 0.7: gains against base gaps, one cluster per base.
	// gloro: xs800 at x = 4 (1.85, 2.13; mean 1.99), xs1600 at 5 (2.45,
	// 2.19; 2.32), s800 at 3 (1.84). On the means: x̄ = 4, ȳ = 2.05, Sxx =
	// 2, Sxy = 0.48, b = 0.24, a = 1.09; residuals -0.06, 0.03, 0.03, SSR =
	// 0.0054 on 1 df; SE(b) = s/√2, SE(a) = s√(1/3 + 16/2). Within: 2·0.14²
	// + 2·0.13² = 0.073 on 2 df; clusters of 2, 2, 1 (harmonic mean 1.5).
	// lot (family inferred from lot-s): two bases, the line through them.
	if len(r.Gains) != 7 {
		t.Fatalf("%d gains, want 7: %+v", len(r.Gains), r.Gains)
	}
	s := math.Sqrt(0.0054)
	want := []struct {
		family                         string
		n, points                      int
		slope, intercept, slopeSE, aSE float64
		within, amounts                float64
	}{
		{"gloro", 3, 5, 0.24, 1.09, s / math.Sqrt(2), s * math.Sqrt(1.0/3+8), 0.0365, 1.5},
		{"lot", 2, 2, 1.15, -0.515, math.NaN(), math.NaN(), math.NaN(), 1},
	}
	if len(r.Fits) != 2 {
		t.Fatalf("%d fits, want 2", len(r.Fits))
	}
	for i, w := range want {
		f := r.Fits[i]
		l := f.Line
		if f.Family != w.family || f.Err != nil || l.N != w.n || l.Points != w.points || !near(l.Slope, w.slope, 1e-9) || !near(l.Intercept, w.intercept, 1e-9) ||
			!near(l.SlopeSE, w.slopeSE, 1e-9) || !near(l.InterceptSE, w.aSE, 1e-9) || !near(l.Within, w.within, 1e-9) || !near(l.Amounts, w.amounts, 1e-12) {
			t.Errorf("fit %s: %+v (%v), want %+v", w.family, l, f.Err, w)
		}
	}

	// The prediction at a base gap of 6 points: ŷ = 1.09 + 6·0.24 = 2.53,
	// 95% interval ŷ ± t(0.975; 1)·s·√(1 + 1/3 + 2²/2), t(0.975; 1) =
	// 12.706204736174707.
	ps, err := Predict(r.Gains, 6, "gloro", "", 0.7, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	half := 12.706204736174707 * s * math.Sqrt(1+1.0/3+2)
	if p := ps[0]; len(ps) != 1 || !near(p.Gain, 2.53, 1e-9) || !near(p.Lo, 2.53-half, 1e-9) || !near(p.Hi, 2.53+half, 1e-9) || p.Err != nil {
		t.Errorf("prediction %+v, want 2.53 in [%v, %v]", ps, 2.53-half, 2.53+half)
	}
	if !near(half, 1.7047162515669854, 1e-9) {
		t.Errorf("hand half-width %v", half)
	}
	// All families: lot's two bases give a gain but no interval.
	ps, err = Predict(r.Gains, 6, "", "", 0.7, 0.95)
	if err != nil || len(ps) != 2 || ps[1].Family != "lot" || !near(ps[1].Gain, -0.515+6*1.15, 1e-9) || !errors.Is(ps[1].Err, ErrNoInterval) {
		t.Errorf("predictions %+v, %v", ps, err)
	}
	// Only the 5M settings: gloro (4, 2.13) (5, 2.19), slope 0.06.
	ps, err = Predict(r.Gains, 6, "gloro", "5M", 0.7, 0.95)
	if err != nil || !near(ps[0].Line.Slope, 0.06, 1e-9) || !near(ps[0].Gain, 2.13+2*0.06, 1e-9) || ps[0].Err == nil {
		t.Errorf("5M prediction %+v, %v", ps, err)
	}
	if _, err := Predict(r.Gains, 6, "sortnet", "", 0.7, 0.95); !errors.Is(err, ErrNoFit) {
		t.Errorf("unknown family: err = %v, want ErrNoFit", err)
	}
	// No cell at f = 0.3: no line there.
	if _, err := Predict(r.Gains, 6, "", "", 0.3, 0.95); !errors.Is(err, ErrNoFit) {
		t.Errorf("fraction 0.3: err = %v, want ErrNoFit", err)
	}

	// Fig. 6: the base xs800 run was best at epoch 1 (64%) and ended at
	// epoch 3 with 62% (epoch 2 written twice keeps its last line).
	var bl *BestLast
	for i := range r.BestLast {
		if r.BestLast[i].Cell == "gloro-xs_e800_f0_s0" {
			bl = &r.BestLast[i]
		}
	}
	if len(r.BestLast) != 12 || bl == nil || bl.BestEpoch != 1 || bl.LastEpoch != 3 || bl.EpochsAfterBest != 2 || !near(bl.Diff, 2, 1e-9) {
		t.Errorf("best-last %+v (%d points)", bl, len(r.BestLast))
	}
	// Fig. 3 right: the gaps with and without generated data.
	gaps := r.gapsTable().Markdown()
	if !strings.Contains(gaps, "| gloro-xs | 1600 | 5.00 | 1.20 | 0.80 |\n") || !strings.Contains(gaps, "| gloro-s | 800 | 3.00 | 0.90 | – |\n") {
		t.Errorf("gaps table\n%s", gaps)
	}
}

func TestReportWrite(t *testing.T) {
	dir := knownSweep(t)
	r, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "report")
	if d := os.Getenv("CERTMIX_REPORT_KEEP"); d != "" {
		out = d // to look at the plots
	}
	files, err := r.Write(out)
	if err != nil {
		t.Fatal(err)
	}
	pngs := []string{"fraction.png", "gain_vs_gap.png", "gaps.png", "best_last.png", "radius_cdf_gloro-xs_e800.png", "radius_cdf_lot-s_e400.png"}
	for _, name := range pngs {
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Errorf("%s: %v (wrote %v)", name, err, files)
			continue
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() < 600 {
			t.Errorf("%s: %v", name, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	html, _ := os.ReadFile(filepath.Join(out, "report.html"))
	for _, want := range append([]string{"# Sweep known", "| gloro-xs | 800 | 1 | 76.51 [75.67, 77.33] | 63.44 [62.49, 64.38] |", "| gloro-xs_e800_f0.7_1M | gloro-xs_e800_f0 | gloro | 1 | 4.00 | +1.85 [+0.52, +3.18] | Newcombe | gain |",
		"no family for lot-s",
		"| gloro | 0.7 | 3 | 5 | 0.240 | 0.052 | 1.090 | 0.212 | 0.073 | 0.191 |"}, pngs...) {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	for _, want := range []string{"<td>&#43;2.13 [&#43;0.80, &#43;3.46] (5M)</td>", `<img src="gain_vs_gap.png"`, `class="row"`, "<h2>Certified radii (Fig. 5)</h2>"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}

// TestReportOfAnEmptySweep: nothing finished yet is a report that says so.
func TestReportOfAnEmptySweep(t *testing.T) {
	dir := knownSweep(t)
	os.RemoveAll(filepath.Join(dir, "cells"))
	r, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Unfinished()) != 13 || len(r.Gains) != 0 || len(r.Fits) != 0 {
		t.Fatalf("unfinished %d, gains %d, fits %d", len(r.Unfinished()), len(r.Gains), len(r.Fits))
	}
	if _, err := r.Write(filepath.Join(dir, "report")); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report", "report.md"))
	if !strings.Contains(string(md), "13 cells, 0 finished") || !strings.Contains(string(md), "No plot: nothing to draw yet.") {
		t.Errorf("report.md:\n%s", md)
	}
}
