package report

import (
	"fmt"
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

// The report's plots are 900 × 600 pixel PNGs at 96 dpi, drawn in pure Go
// (no display), in the style of certifier's plots.
const (
	plotWidth, plotHeight, plotDPI = 900, 600, 96
)

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	return p
}

func writePNG(w io.Writer, p *plot.Plot) error {
	dpi := vg.Length(plotDPI)
	c := vgimg.NewWith(vgimg.UseWH(plotWidth/dpi*vg.Inch, plotHeight/dpi*vg.Inch), vgimg.UseDPI(plotDPI))
	p.Draw(draw.New(c))
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
		return fmt.Errorf("write png: %w", err)
	}
	return nil
}

func addLine(p *plot.Plot, xy plotter.XYs, k int, dashed bool, name string) error {
	l, s, err := plotter.NewLinePoints(xy)
	if err != nil {
		return err
	}
	l.Color, s.Color = plotutil.Color(k), plotutil.Color(k)
	l.Width = vg.Points(1.5)
	s.Shape = plotutil.Shape(k)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	}
	p.Add(l, s)
	if name != "" {
		p.Legend.Add(name, l, s)
	}
	return nil
}

// PlotFraction draws the paper's Fig. 4: clean (solid) and certified
// (dashed) test accuracy against the generated fraction of each batch, one
// colour per row and amount, each series starting at its base model (0).
func PlotFraction(w io.Writer, t Table) error {
	p := newPlot("Accuracy against the generated fraction", "generated fraction of each batch", "test accuracy (%)")
	p.X.Min, p.X.Max = 0, 1
	k := 0
	for _, row := range t.Rows {
		amounts := []string{}
		for _, c := range t.Columns {
			if !slices.Contains(amounts, c.Generated) {
				amounts = append(amounts, c.Generated)
			}
		}
		for _, amount := range amounts {
			var clean, cert plotter.XYs
			if row.Base != nil && row.Base.Done {
				clean = append(clean, plotter.XY{X: 0, Y: row.Base.Clean})
				cert = append(cert, plotter.XY{X: 0, Y: row.Base.Certified})
			}
			for j, c := range t.Columns {
				if a := row.Aux[j]; c.Generated == amount && a != nil && a.Done {
					clean = append(clean, plotter.XY{X: a.Fraction, Y: a.Clean})
					cert = append(cert, plotter.XY{X: a.Fraction, Y: a.Certified})
				}
			}
			if len(clean) == 0 {
				continue
			}
			name := row.Label()
			if len(amounts) > 1 {
				name += " " + amount
			}
			if err := addLine(p, clean, k, false, name+", clean"); err != nil {
				return fmt.Errorf("plot fraction: %w", err)
			}
			if err := addLine(p, cert, k, true, name+", certified"); err != nil {
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

// PlotGains draws the paper's Fig. 3 (left): each cell's gain in certified
// accuracy against its base model's generalization gap, one colour and
// shape per family, with the family's least-squares line.
func PlotGains(w io.Writer, gains []Gain, fits []Fit) error {
	p := newPlot("Certified accuracy gain against the base model's generalization gap",
		"generalization gap of the base model (points)", "Δ certified accuracy (points)")
	for k, f := range fits {
		var xy plotter.XYs
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, g := range gains {
			if g.Family == f.Family {
				xy = append(xy, plotter.XY{X: g.BaseGap, Y: g.Gain})
				lo, hi = min(lo, g.BaseGap), max(hi, g.BaseGap)
			}
		}
		s, err := plotter.NewScatter(xy)
		if err != nil {
			return fmt.Errorf("plot gains: %w", err)
		}
		s.Color, s.Shape = plotutil.Color(k), plotutil.Shape(k)
		s.Radius = vg.Points(4)
		p.Add(s)
		name := f.Family
		if f.Err == nil {
			l, err := plotter.NewLine(plotter.XYs{{X: lo, Y: f.Line.At(lo)}, {X: hi, Y: f.Line.At(hi)}})
			if err != nil {
				return fmt.Errorf("plot gains: %w", err)
			}
			l.Color, l.Width = plotutil.Color(k), vg.Points(1.5)
			p.Add(l)
			name += ": " + f.Line.Equation()
			p.Legend.Add(name, s, l)
			continue
		}
		p.Legend.Add(name, s)
	}
	if len(gains) == 0 {
		return fmt.Errorf("plot gains: no cell with generated data and its base has finished")
	}
	return writePNG(w, p)
}

// PlotGaps draws the paper's Fig. 3 (right): the generalization gap of
// each row's base model and of its cells with generated data, one line per
// row across the columns.
func PlotGaps(w io.Writer, t Table) error {
	p := newPlot("Generalization gaps without and with generated data", "", "generalization gap (points)")
	names := []string{"no generated"}
	for _, c := range t.Columns {
		names = append(names, c.Label)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	n := 0
	for k, row := range t.Rows {
		var xy plotter.XYs
		off := 0.04 * (float64(k) - float64(len(t.Rows)-1)/2)
		if row.Base != nil && row.Base.Done {
			xy = append(xy, plotter.XY{X: off, Y: row.Base.GeneralizationGap})
		}
		for j, a := range row.Aux {
			if a != nil && a.Done {
				xy = append(xy, plotter.XY{X: float64(j+1) + off, Y: a.GeneralizationGap})
			}
		}
		if len(xy) == 0 {
			continue
		}
		name := ""
		if len(t.Rows) <= 12 {
			name = row.Label()
		}
		if err := addLine(p, xy, k, false, name); err != nil {
			return fmt.Errorf("plot gaps: %w", err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("plot gaps: no finished cells")
	}
	return writePNG(w, p)
}

// PlotBestLast draws the paper's Fig. 6: for each cell, the epochs between
// its best and its last epoch against how much better the best was, in
// certified accuracy on the training run's evaluation images; one colour
// and shape per amount of generated data.
func PlotBestLast(w io.Writer, points []BestLast, amounts []string) error {
	p := newPlot("Best against last epoch", "epochs from the best to the last epoch", "best − last certified accuracy (points)")
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
