package certifier

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotOptions sets the size and labels of a PNG plot. Zero fields take the
// defaults. Rendering is pure Go (no display needed).
type PlotOptions struct {
	// Width and Height in pixels (default 900 × 600).
	Width, Height int
	// DPI sets the text size relative to the pixels (default 96).
	DPI int
	// Title above the plot; a default describing the plot when empty.
	Title string
	// MaxRadius is the right end of the radius axis of [PlotRadiusCurve];
	// 0 means the 99.5th percentile of each run's finite radii, the largest
	// over runs and at least 2ε (so a few outliers do not squeeze the
	// region around ε).
	MaxRadius float64
}

func (o PlotOptions) withDefaults() PlotOptions {
	if o.Width <= 0 {
		o.Width = 900
	}
	if o.Height <= 0 {
		o.Height = 600
	}
	if o.DPI <= 0 {
		o.DPI = 96
	}
	return o
}

// Run is one model's results, named for a legend (e.g. "w/o aux", "5M").
type Run struct {
	Name    string
	Results []Result
}

// PlotRadiusCurve draws the paper's Fig. 5 as a PNG: for each run, the
// fraction of all images whose certified radius is >= r, as a function of r,
// with one solid curve for correctly and one dashed curve for incorrectly
// classified images (same colour per run), and a vertical line at ε. The
// curves are exact step functions of the sorted radii, not sampled on a grid.
func PlotRadiusCurve(w io.Writer, runs []Run, eps float64, opts PlotOptions) error {
	opts = opts.withDefaults()
	if len(runs) == 0 {
		return fmt.Errorf("plot radius curve: no runs: %w", ErrShape)
	}
	if err := checkRadius("ε", eps); err != nil {
		return fmt.Errorf("plot radius curve: %w", err)
	}
	xmax := opts.MaxRadius
	if xmax <= 0 {
		xmax = 2 * eps
		for _, r := range runs {
			xmax = max(xmax, finiteQuantile(r.Results, 0.995))
		}
		if xmax == 0 {
			xmax = 1
		}
	}
	p := plot.New()
	p.Title.Text = opts.Title
	if p.Title.Text == "" {
		p.Title.Text = "Cumulative distribution of certified radii"
	}
	p.X.Label.Text = "certified radius r"
	p.Y.Label.Text = "fraction of images with radius ≥ r"
	p.X.Min, p.X.Max = 0, xmax
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	for k, run := range runs {
		if len(run.Results) == 0 {
			return fmt.Errorf("plot radius curve: run %q has no results: %w", run.Name, ErrShape)
		}
		col := plotutil.Color(k)
		for _, correct := range []bool{true, false} {
			radii := sortedRadii(run.Results, correct)
			if slices.ContainsFunc(radii, func(r float64) bool { return math.IsNaN(r) || r < 0 }) {
				return fmt.Errorf("plot radius curve: run %q has a NaN or negative radius", run.Name)
			}
			l, err := plotter.NewLine(survivalSteps(radii, len(run.Results), xmax))
			if err != nil {
				return fmt.Errorf("plot radius curve: run %q: %w", run.Name, err)
			}
			l.Color = col
			l.Width = vg.Points(1.5)
			name := "correct"
			if !correct {
				name = "incorrect"
				l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			if run.Name != "" {
				name = run.Name + ", " + name
			}
			p.Add(l)
			p.Legend.Add(name, l)
		}
	}
	e, err := plotter.NewLine(plotter.XYs{{X: eps, Y: 0}, {X: eps, Y: 1}})
	if err != nil {
		return fmt.Errorf("plot radius curve: ε line: %w", err)
	}
	e.Color = color.Gray{Y: 90}
	e.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	p.Add(e)
	p.Legend.Add(fmt.Sprintf("ε = %.4g", eps), e)
	return writePNG(w, p, opts)
}

// finiteQuantile is the q-quantile (nearest rank) of the finite radii, 0 if
// there are none.
func finiteQuantile(results []Result, q float64) float64 {
	var s []float64
	for _, r := range results {
		if !math.IsInf(r.Radius, 0) && !math.IsNaN(r.Radius) {
			s = append(s, r.Radius)
		}
	}
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	return s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)]
}

// survivalSteps returns the step curve r ↦ #{radius >= r}/n for ascending
// radii, drawn from r = 0 to xmax. The count drops right after each radius,
// since radius >= r still holds at r = radius.
func survivalSteps(sorted []float64, n int, xmax float64) plotter.XYs {
	xy := plotter.XYs{{X: 0, Y: ratio(len(sorted), n)}}
	for i := 0; i < len(sorted); {
		r := sorted[i]
		if r > xmax {
			break
		}
		j := i
		for j < len(sorted) && sorted[j] == r {
			j++
		}
		xy = append(xy, plotter.XY{X: r, Y: ratio(len(sorted)-i, n)}, plotter.XY{X: r, Y: ratio(len(sorted)-j, n)})
		i = j
	}
	last := xy[len(xy)-1].Y
	return append(xy, plotter.XY{X: xmax, Y: last})
}

// PlotConfusion draws the paper's Fig. 7 for one model as a PNG: a 2 × 2 heat
// map, rows correct / incorrect, columns certified / not certified at the
// confusion's ε, each cell labelled with its count and percentage of all
// images; the colour scales with the largest cell.
func PlotConfusion(w io.Writer, c Confusion, opts PlotOptions) error {
	m := c.Matrix()
	title := opts.Title
	if title == "" {
		title = fmt.Sprintf("Correctness and certification at ε = %.4g", c.Eps)
	}
	return plotMatrix(w, [][]int{m[0][:], m[1][:]},
		[]string{"Correct", "¬Correct"}, []string{"Cert.", "¬Cert."}, "", "", title, opts)
}

// PlotTransition draws a [Transition] table as a 4 × 4 heat map: rows the
// state under the first model, columns under the second.
func PlotTransition(w io.Writer, t [4][4]int, first, second string, opts PlotOptions) error {
	rows := make([][]int, 4)
	for i := range t {
		rows[i] = t[i][:]
	}
	title := opts.Title
	if title == "" {
		title = fmt.Sprintf("%s → %s", first, second)
	}
	names := StateNames[:]
	return plotMatrix(w, rows, names, names, second, first, title, opts)
}

// plotMatrix renders a heat map of counts with "count (percent)" labels, row
// 0 at the top.
func plotMatrix(w io.Writer, counts [][]int, rowNames, colNames []string, xlabel, ylabel, title string, opts PlotOptions) error {
	opts = opts.withDefaults()
	g := countGrid(counts)
	total, most := 0, 1
	for _, row := range counts {
		for _, v := range row {
			total += v
			most = max(most, v)
		}
	}
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.X.Padding, p.Y.Padding = 0, 0
	// Colour scales with the largest cell, so the palette's whole range is
	// used; the labels carry the exact shares.
	h := plotter.NewHeatMap(g, bluePalette{})
	h.Min, h.Max = 0, float64(most)
	p.Add(h)

	var xys plotter.XYs
	var labels []string
	var dark []bool
	for r, row := range counts {
		for c, v := range row {
			xys = append(xys, plotter.XY{X: g.X(c), Y: g.Y(len(counts) - 1 - r)})
			labels = append(labels, fmt.Sprintf("%d\n(%.2f%%)", v, 100*ratio(v, total)))
			dark = append(dark, float64(v) > 0.55*float64(most))
		}
	}
	lab, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return fmt.Errorf("plot matrix: labels: %w", err)
	}
	for i := range lab.TextStyle {
		lab.TextStyle[i].XAlign = draw.XCenter
		lab.TextStyle[i].YAlign = draw.YCenter
		lab.TextStyle[i].Font.Size = vg.Points(13)
		if dark[i] {
			lab.TextStyle[i].Color = color.White
		}
	}
	p.Add(lab)

	xt := make([]plot.Tick, len(colNames))
	for c, name := range colNames {
		xt[c] = plot.Tick{Value: g.X(c), Label: name}
	}
	yt := make([]plot.Tick, len(rowNames))
	for r, name := range rowNames {
		yt[r] = plot.Tick{Value: g.Y(len(rowNames) - 1 - r), Label: name}
	}
	p.X.Tick.Marker = plot.ConstantTicks(xt)
	p.Y.Tick.Marker = plot.ConstantTicks(yt)
	p.X.Min, p.X.Max = -0.5, float64(len(colNames))-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(len(rowNames))-0.5
	return writePNG(w, p, opts)
}

// countGrid adapts a row-major count table (row 0 drawn at the top) to
// plotter.GridXYZ, whose row 0 is at the bottom.
type countGrid [][]int

func (g countGrid) Dims() (c, r int)   { return len(g[0]), len(g) }
func (g countGrid) Z(c, r int) float64 { return float64(g[len(g)-1-r][c]) }
func (g countGrid) X(c int) float64    { return float64(c) }
func (g countGrid) Y(r int) float64    { return float64(r) }

// bluePalette runs from white to dark blue in 256 steps.
type bluePalette struct{}

func (bluePalette) Colors() []color.Color {
	const n = 256
	lo, hi := [3]float64{255, 255, 255}, [3]float64{8, 48, 107}
	cs := make([]color.Color, n)
	for i := range cs {
		t := float64(i) / (n - 1)
		var v [3]uint8
		for k := range v {
			v[k] = uint8(math.Round(lo[k] + t*(hi[k]-lo[k])))
		}
		cs[i] = color.RGBA{R: v[0], G: v[1], B: v[2], A: 255}
	}
	return cs
}

// writePNG renders p at exactly opts.Width × opts.Height pixels.
func writePNG(w io.Writer, p *plot.Plot, opts PlotOptions) error {
	dpi := vg.Length(opts.DPI)
	c := vgimg.NewWith(
		vgimg.UseWH(vg.Length(opts.Width)/dpi*vg.Inch, vg.Length(opts.Height)/dpi*vg.Inch),
		vgimg.UseDPI(opts.DPI),
	)
	p.Draw(draw.New(c))
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
		return fmt.Errorf("write png: %w", err)
	}
	return nil
}
