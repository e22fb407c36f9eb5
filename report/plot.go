package report

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The report's plots are PNGs at 96 dpi, drawn in pure Go (no display), in
// the style of certifier's plots: a 900 × 600 pixel plot, widened on the
// right for its legend, which is drawn outside the data.
const (
	plotWidth, plotHeight, plotDPI = 900, 600, 96
)

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Add(plotter.NewGrid())
	return p
}

// writePNG draws p with its legend to the right of the plot, outside the
// data, the image widened by the legend's width.
func writePNG(w io.Writer, p *plot.Plot) error {
	dpi := vg.Length(plotDPI)
	width, height := plotWidth/dpi*vg.Inch, plotHeight/dpi*vg.Inch
	legend := p.Legend
	probe := draw.New(vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(plotDPI)))
	legend.Padding = vg.Points(4)
	lw := legend.Rectangle(probe).Size().X
	pad := vg.Points(12)
	if lw > 0 {
		lw += 2 * pad
	}
	c := vgimg.NewWith(vgimg.UseWH(width+lw, height), vgimg.UseDPI(plotDPI))
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	// Room above and below the data, so that no glyph or error-bar cap
	// sits on the frame.
	room := 0.04 * (p.Y.Max - p.Y.Min)
	p.Y.Min, p.Y.Max = p.Y.Min-room, p.Y.Max+room
	p.Legend = plot.NewLegend()
	p.Draw(draw.Crop(dc, 0, -lw, 0, 0))
	p.Legend = legend
	if lw > 0 {
		legend.Top, legend.Left = true, true
		legend.Padding = vg.Points(4)
		top := p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y + p.Title.Padding + pad
		legend.Draw(draw.Crop(dc, width+pad, -pad, 0, -top))
	}
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
		return fmt.Errorf("write png: %w", err)
	}
	return nil
}

// fractionTicks are ticks at the fractions that were run.
func fractionTicks(fractions []float64) plot.ConstantTicks {
	var ts plot.ConstantTicks
	for _, f := range fractions {
		ts = append(ts, plot.Tick{Value: f, Label: strconv.FormatFloat(f, 'g', -1, 64)})
	}
	return ts
}

// point is a plotted estimate with its interval.
type point struct {
	X float64
	Y Interval
}

// addSeries draws the means of pts joined by a line (none when line is
// false), with error bars for their intervals, in style k, and names it in
// the legend.
func addSeries(p *plot.Plot, pts []point, k int, line, dashed bool, name string) error {
	var xy plotter.XYs
	var bars struct {
		plotter.XYs
		plotter.YErrors
	}
	for _, q := range pts {
		xy = append(xy, plotter.XY{X: q.X, Y: q.Y.Mean})
		if q.Y.Kind != NoInterval && !math.IsNaN(q.Y.Lo) {
			bars.XYs = append(bars.XYs, plotter.XY{X: q.X, Y: q.Y.Mean})
			bars.YErrors = append(bars.YErrors, struct{ Low, High float64 }{q.Y.Mean - q.Y.Lo, q.Y.Hi - q.Y.Mean})
		}
	}
	col := plotutil.Color(k)
	s, err := plotter.NewScatter(xy)
	if err != nil {
		return err
	}
	s.Color, s.Shape, s.Radius = col, plotutil.Shape(k), vg.Points(3.5)
	p.Add(s)
	thumbs := []plot.Thumbnailer{s}
	if line && len(xy) > 1 {
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.Color, l.Width = col, vg.Points(1.5)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(l)
		thumbs = append(thumbs, l)
	}
	if len(bars.XYs) > 0 {
		e, err := plotter.NewYErrorBars(bars)
		if err != nil {
			return err
		}
		e.Color = col
		p.Add(e)
	}
	if name != "" {
		p.Legend.Add(name, thumbs...)
	}
	return nil
}

// PlotFraction draws the paper's Fig. 4: clean (solid) and certified
// (dashed) test accuracy against the generated fraction of each batch, one
// colour per row and amount, each series starting at its base model (0):
// means over seeds with their 95% intervals as error bars, ticks at the
// fractions that were run.
func PlotFraction(w io.Writer, t Table) error {
	p := newPlot("Accuracy against the generated fraction (mean and 95% interval over seeds)", "generated fraction of each batch", "test accuracy (%)")
	fractions := []float64{0}
	for _, c := range t.Columns {
		if !slices.Contains(fractions, c.Fraction) {
			fractions = append(fractions, c.Fraction)
		}
	}
	slices.Sort(fractions)
	p.X.Tick.Marker = fractionTicks(fractions)
	p.X.Min, p.X.Max = -0.05, fractions[len(fractions)-1]+0.05
	amounts := []string{}
	for _, c := range t.Columns {
		if !slices.Contains(amounts, c.Generated) {
			amounts = append(amounts, c.Generated)
		}
	}
	series := len(t.Rows) * len(amounts)
	k := 0
	for _, row := range t.Rows {
		for _, amount := range amounts {
			// Series are shifted apart a little so that their bars do not
			// hide one another.
			off := 0.008 * (float64(k) - float64(series-1)/2)
			var clean, cert []point
			if row.Base.Finished() {
				clean = append(clean, point{off, row.Base.Clean})
				cert = append(cert, point{off, row.Base.Certified})
			}
			for j, c := range t.Columns {
				if a := row.Generated[j]; c.Generated == amount && a.Finished() {
					clean = append(clean, point{c.Fraction + off, a.Clean})
					cert = append(cert, point{c.Fraction + off, a.Certified})
				}
			}
			// A series of the base alone is drawn once per row, not per amount.
			if len(clean) == 0 || (len(clean) == 1 && row.Base.Finished() && amount != amounts[0]) {
				continue
			}
			name := row.Label()
			if len(amounts) > 1 {
				name += " " + amount
			}
			if err := addSeries(p, clean, k, true, false, name+", clean"); err != nil {
				return fmt.Errorf("plot fraction: %w", err)
			}
			if err := addSeries(p, cert, k, true, true, name+", certified"); err != nil {
				return fmt.Errorf("plot fraction: %w", err)
			}
			k++
		}
	}
	if k == 0 {
		return fmt.Errorf("plot fraction: no finished cells")
	}
	return writePNG(w, p)
}

// PlotGains draws the paper's Fig. 3 (left) for the fits' fraction: each
// setting's paired gain in certified accuracy against its base model's
// generalization gap, with 95% intervals as error bars both ways, one
// colour and shape per family; the per-base averages the line is fitted
// on (rings), the line, and its 95% prediction band.
func PlotGains(w io.Writer, fits []Fit) error {
	if len(fits) == 0 {
		return fmt.Errorf("plot gains: no setting with generated data and its base has finished at this fraction")
	}
	p := newPlot(fmt.Sprintf("Certified accuracy gain against the base model's generalization gap (f = %s)",
		strconv.FormatFloat(fits[0].Fraction, 'g', -1, 64)),
		"generalization gap of the base model (points)", "Δ certified accuracy (points)")
	xlo, xhi := math.Inf(1), math.Inf(-1)
	for _, f := range fits {
		for _, g := range f.Points {
			xlo, xhi = min(xlo, g.BaseGap.Mean), max(xhi, g.BaseGap.Mean)
			if g.BaseGap.Kind != NoInterval { // the error bars are drawn whole
				xlo, xhi = min(xlo, g.BaseGap.Lo), max(xhi, g.BaseGap.Hi)
			}
		}
	}
	span := max(xhi-xlo, 1)
	xlo, xhi = xlo-0.05*span, xhi+0.05*span
	for k, f := range fits {
		col := plotutil.Color(k)
		var xy plotter.XYs
		var ybars struct {
			plotter.XYs
			plotter.YErrors
		}
		var xbars struct {
			plotter.XYs
			plotter.XErrors
		}
		for _, g := range f.Points {
			q := plotter.XY{X: g.BaseGap.Mean, Y: g.Gain.Mean}
			xy = append(xy, q)
			if g.Gain.Kind != NoInterval {
				ybars.XYs = append(ybars.XYs, q)
				ybars.YErrors = append(ybars.YErrors, struct{ Low, High float64 }{g.Gain.Mean - g.Gain.Lo, g.Gain.Hi - g.Gain.Mean})
			}
			if g.BaseGap.Kind != NoInterval {
				xbars.XYs = append(xbars.XYs, q)
				xbars.XErrors = append(xbars.XErrors, struct{ Low, High float64 }{g.BaseGap.Mean - g.BaseGap.Lo, g.BaseGap.Hi - g.BaseGap.Mean})
			}
		}
		name := f.Family
		if f.Err == nil {
			l := f.Line
			// The prediction band first, under the points.
			var upper, lower plotter.XYs
			const steps = 60
			for i := 0; i <= steps; i++ {
				x := xlo + (xhi-xlo)*float64(i)/steps
				lo, hi, err := l.PredictionInterval(x, Level)
				if err != nil {
					break
				}
				upper, lower = append(upper, plotter.XY{X: x, Y: hi}), append(lower, plotter.XY{X: x, Y: lo})
			}
			if len(upper) > 0 {
				slices.Reverse(lower)
				band, err := plotter.NewPolygon(append(upper, lower...))
				if err != nil {
					return fmt.Errorf("plot gains: %w", err)
				}
				r, g, b, _ := col.RGBA()
				band.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 0x30}
				band.LineStyle.Width = 0
				p.Add(band)
				p.Legend.Add(fmt.Sprintf("%s: 95%% prediction band", f.Family), band)
			}
			line, err := plotter.NewLine(plotter.XYs{{X: xlo, Y: l.At(xlo)}, {X: xhi, Y: l.At(xhi)}})
			if err != nil {
				return fmt.Errorf("plot gains: %w", err)
			}
			line.Color, line.Width = col, vg.Points(1.5)
			p.Add(line)
			var means plotter.XYs
			for _, g := range f.Points {
				m := plotter.XY{X: g.BaseGap.Mean}
				if slices.ContainsFunc(means, func(q plotter.XY) bool { return q.X == m.X }) {
					continue
				}
				n := 0.0
				for _, h := range f.Points {
					if h.Row == g.Row {
						m.Y += h.Gain.Mean
						n++
					}
				}
				m.Y /= n
				means = append(means, m)
			}
			ring, err := plotter.NewScatter(means)
			if err != nil {
				return fmt.Errorf("plot gains: %w", err)
			}
			ring.Color, ring.Shape, ring.Radius = col, draw.RingGlyph{}, vg.Points(6)
			p.Add(ring)
			p.Legend.Add(fmt.Sprintf("%s: %s", f.Family, l.Equation()), line)
			p.Legend.Add(fmt.Sprintf("%s: per-base average (fitted)", f.Family), ring)
			name += ": settings (paired gain, 95% intervals)"
		} else {
			name += fmt.Sprintf(": settings (no line: base models at %d distinct gap(s), a line needs 2)", distinctGaps(f.Points))
		}
		if len(ybars.XYs) > 0 {
			e, err := plotter.NewYErrorBars(ybars)
			if err != nil {
				return fmt.Errorf("plot gains: %w", err)
			}
			e.Color = col
			p.Add(e)
		}
		if len(xbars.XYs) > 0 {
			e, err := plotter.NewXErrorBars(xbars)
			if err != nil {
				return fmt.Errorf("plot gains: %w", err)
			}
			e.Color = col
			p.Add(e)
		}
		s, err := plotter.NewScatter(xy)
		if err != nil {
			return fmt.Errorf("plot gains: %w", err)
		}
		s.Color, s.Shape, s.Radius = col, plotutil.Shape(k), vg.Points(3.5)
		p.Add(s)
		p.Legend.Add(name, s)
	}
	rule, err := plotter.NewLine(plotter.XYs{{X: xlo, Y: 0}, {X: xhi, Y: 0}})
	if err != nil {
		return fmt.Errorf("plot gains: %w", err)
	}
	rule.Color, rule.Width = color.Gray{Y: 0x60}, vg.Points(0.75)
	p.Add(rule)
	p.X.Min, p.X.Max = xlo, xhi
	return writePNG(w, p)
}

// PlotGaps draws the paper's Fig. 3 (right): the generalization gap of
// each row's base model and of its settings with generated data, mean and
// 95% interval over seeds, one line per row across the columns.
func PlotGaps(w io.Writer, t Table) error {
	p := newPlot("Generalization gaps without and with generated data (mean and 95% interval over seeds)", "", "generalization gap (points)")
	names := []string{"no generated"}
	for _, c := range t.Columns {
		names = append(names, c.Label)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	n := 0
	for k, row := range t.Rows {
		var pts []point
		off := 0.04 * (float64(k) - float64(len(t.Rows)-1)/2)
		if row.Base.Finished() {
			pts = append(pts, point{off, row.Base.Gap})
		}
		for j, a := range row.Generated {
			if a.Finished() {
				pts = append(pts, point{float64(j+1) + off, a.Gap})
			}
		}
		if len(pts) == 0 {
			continue
		}
		if err := addSeries(p, pts, k, true, false, row.Label()); err != nil {
			return fmt.Errorf("plot gaps: %w", err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("plot gaps: no finished cells")
	}
	p.Y.Min = min(p.Y.Min, 0)
	return writePNG(w, p)
}

// PlotBestLast draws the paper's Fig. 6: for each cell (every seed), the
// epochs between its best and its last epoch against how much better the
// best was, in certified accuracy on the training run's evaluation
// images; one colour and shape per amount of generated data.
func PlotBestLast(w io.Writer, points []BestLast, amounts []string) error {
	p := newPlot("Best against last epoch (one point per cell)", "epochs from the best to the last epoch", "best − last certified accuracy (points)")
	groups := append([]string{""}, amounts...)
	for k, g := range groups {
		var xy plotter.XYs
		for _, b := range points {
			if b.Generated == g {
				xy = append(xy, plotter.XY{X: float64(b.EpochsAfterBest), Y: b.Diff})
			}
		}
		if len(xy) == 0 {
			continue
		}
		s, err := plotter.NewScatter(xy)
		if err != nil {
			return fmt.Errorf("plot best-last: %w", err)
		}
		s.Color, s.Shape, s.Radius = plotutil.Color(k), plotutil.Shape(k), vg.Points(4)
		p.Add(s)
		if g == "" {
			g = "no generated"
		}
		p.Legend.Add(g, s)
	}
	if len(points) == 0 {
		return fmt.Errorf("plot best-last: no cell has per-epoch certified accuracies")
	}
	p.Y.Min = min(p.Y.Min, 0)
	p.X.Min = min(p.X.Min, 0)
	return writePNG(w, p)
}

// distinctGaps counts the distinct base gaps among points.
func distinctGaps(points []Gain) int {
	var xs []float64
	for _, g := range points {
		if !slices.Contains(xs, g.BaseGap.Mean) {
			xs = append(xs, g.BaseGap.Mean)
		}
	}
	return len(xs)
}
