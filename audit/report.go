package audit

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"certmix/internal/imagegrid"
)

// Thresholds decide which pairs are flagged as near-copies. A pair is
// flagged when either test holds; a zero threshold is off.
type Thresholds struct {
	// MaxDist flags a pair whose distance (root mean square pixel
	// difference, see Neighbour.Dist) is at most this.
	MaxDist float64 `json:"max_dist"`
	// MaxRatio flags a pair whose distance is at most this fraction of the
	// median, over the test set, of each test image's nearest distance in
	// the same dataset: relative to how close images of this data usually are.
	MaxRatio float64 `json:"max_ratio"`
}

// DefaultThresholds flag pairs that differ by at most 6/255 per pixel on
// average, or are at most a quarter as far apart as a typical nearest neighbour.
var DefaultThresholds = Thresholds{MaxDist: 6.0 / 255, MaxRatio: 0.25}

// Report is a Result judged by Thresholds: what shardtool audit prints and
// writes as JSON.
type Report struct {
	Version    int             `json:"version"`
	Thresholds Thresholds      `json:"thresholds"`
	Settings   Settings        `json:"settings"`
	Test       TestSet         `json:"test"`
	Datasets   []DatasetReport `json:"datasets"`
}

// DatasetReport is the verdict on one dataset.
type DatasetReport struct {
	URL       string `json:"url"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Rows      int64  `json:"rows"`
	Scanned   int64  `json:"scanned"`
	PartCount int    `json:"part_count"`
	Parts     []int  `json:"parts"`
	// MedianNearest is the median over test images of the nearest distance.
	MedianNearest float64 `json:"median_nearest"`
	// Flagged lists the flagged pairs, closest first.
	Flagged []Flag `json:"flagged"`
	// FlaggedTests counts the test images with at least one flagged pair.
	FlaggedTests int `json:"flagged_tests"`
	// FlaggedIDs are the dataset's ids in a flagged pair, sorted: the
	// input of shardtool build --exclude-ids.
	FlaggedIDs []int64 `json:"flagged_ids"`
	// Nearest is, per test image (in TestSet order), its nearest rows.
	Nearest [][]Neighbour `json:"nearest"`
	pairs   []Pair
}

// Flag is one flagged pair.
type Flag struct {
	Test      int       `json:"test"` // position in TestSet
	TestID    int64     `json:"test_id"`
	TestLabel int16     `json:"test_label"`
	Match     Neighbour `json:"match"`
	Ratio     float64   `json:"ratio"`    // Match.Dist / MedianNearest
	ByDist    bool      `json:"by_dist"`  // flagged by MaxDist
	ByRatio   bool      `json:"by_ratio"` // flagged by MaxRatio
	Complete  bool      `json:"-"`        // unused
}

// Judge flags the pairs of r under th. It refuses a result that does not
// cover every row of a dataset (a part not merged): flags relative to the
// median would change once the other parts are in.
func Judge(r *Result, th Thresholds) (*Report, error) {
	if th.MaxDist < 0 || th.MaxRatio < 0 || math.IsNaN(th.MaxDist) || math.IsNaN(th.MaxRatio) {
		return nil, fmt.Errorf("thresholds %+v: want non-negative numbers (0 = off)", th)
	}
	rep := &Report{Version: ResultVersion, Thresholds: th, Settings: r.Settings, Test: r.Test}
	for _, d := range r.Datasets {
		if d.Scanned != d.Rows || len(d.Parts) != d.PartCount {
			return nil, fmt.Errorf("%s: the result covers %d of %d rows (parts %v of %d): merge every part first", d.URL, d.Scanned, d.Rows, plusOne(d.Parts), d.PartCount)
		}
		dr := DatasetReport{URL: d.URL, Name: d.Name, Kind: d.Kind, Rows: d.Rows, Scanned: d.Scanned,
			PartCount: d.PartCount, Parts: d.Parts, Nearest: d.Neighbours, pairs: d.Pairs}
		var nearest []float64
		for _, ns := range d.Neighbours {
			if len(ns) > 0 {
				nearest = append(nearest, ns[0].Dist)
			}
		}
		dr.MedianNearest = median(nearest)
		ids := map[int64]bool{}
		for i, ns := range d.Neighbours {
			flagged := false
			for _, n := range ns {
				f := Flag{Test: i, TestID: r.Test.IDs[i], TestLabel: r.Test.Labels[i], Match: n}
				if dr.MedianNearest > 0 {
					f.Ratio = n.Dist / dr.MedianNearest
				}
				f.ByDist = th.MaxDist > 0 && n.Dist <= th.MaxDist
				f.ByRatio = th.MaxRatio > 0 && dr.MedianNearest > 0 && f.Ratio <= th.MaxRatio
				if f.ByDist || f.ByRatio {
					dr.Flagged = append(dr.Flagged, f)
					ids[n.ID], flagged = true, true
				}
			}
			if flagged {
				dr.FlaggedTests++
			}
		}
		slices.SortFunc(dr.Flagged, func(a, b Flag) int {
			return cmp.Or(less(a.Match, b.Match), cmp.Compare(a.Test, b.Test))
		})
		for id := range ids {
			dr.FlaggedIDs = append(dr.FlaggedIDs, id)
		}
		slices.Sort(dr.FlaggedIDs)
		rep.Datasets = append(rep.Datasets, dr)
	}
	return rep, nil
}

func plusOne(parts []int) []int {
	out := make([]int, len(parts))
	for i, p := range parts {
		out[i] = p + 1
	}
	return out
}

// median of xs (the mean of the middle two for an even count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// WriteTable prints, per dataset, a summary line and the first limit
// flagged pairs (all with limit < 0), as aligned columns.
func (rep *Report) WriteTable(w io.Writer, limit int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for k, d := range rep.Datasets {
		fmt.Fprintf(w, "dataset %d: %s (%s, %d rows): %d of %d test images flagged, %d pairs, %d distinct rows; median nearest distance %.4f\n",
			k+1, d.URL, d.Kind, d.Rows, d.FlaggedTests, len(rep.Test.IDs), len(d.Flagged), len(d.FlaggedIDs), d.MedianNearest)
		if len(d.Flagged) == 0 {
			continue
		}
		fmt.Fprintln(tw, "test id\ttest label\trow id\trow label\tdist\tratio\tvariant\tby\t")
		for j, f := range d.Flagged {
			if limit >= 0 && j >= limit {
				fmt.Fprintf(tw, "... %d more\t\t\t\t\t\t\t\t\n", len(d.Flagged)-j)
				break
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.4f\t%.3f\t%s\t%s\t\n", f.TestID, f.TestLabel, f.Match.ID, f.Match.Label, f.Match.Dist, f.Ratio, f.Match.Variant, f.by())
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func (f Flag) by() string {
	switch {
	case f.ByDist && f.ByRatio:
		return "dist,ratio"
	case f.ByDist:
		return "dist"
	}
	return "ratio"
}

// Files written by WriteFiles into the output directory; k is the 1-based
// position of a dataset on the command line.
const (
	ReportFile  = "audit.json"         // the Report
	TableFile   = "flagged.txt"        // every flagged pair, as WriteTable prints it
	PairsFile   = "pairs-%d.png"       // the closest pairs, side by side
	HistFile    = "hist-%d.png"        // the nearest distances, with the thresholds
	ExcludeFile = "exclude-ids-%d.txt" // flagged row ids, for shardtool build --exclude-ids
)

// WriteFiles writes the report's files into dir (made if missing) and
// returns their paths. Each file appears whole or not at all.
func (rep *Report) WriteFiles(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	put := func(name string, data []byte) error {
		p := filepath.Join(dir, name)
		if err := writeAtomic(p, data); err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	}
	data, err := json.MarshalIndent(rep, "", " ")
	if err != nil {
		return nil, err
	}
	if err := put(ReportFile, append(data, '\n')); err != nil {
		return nil, err
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table, -1); err != nil {
		return nil, err
	}
	if err := put(TableFile, table.Bytes()); err != nil {
		return nil, err
	}
	for k, d := range rep.Datasets {
		var ex bytes.Buffer
		fmt.Fprintf(&ex, "# rows of %s flagged as near-copies of %s by shardtool audit (max dist %g, max ratio %g)\n",
			d.URL, rep.Test.URL, rep.Thresholds.MaxDist, rep.Thresholds.MaxRatio)
		for _, id := range d.FlaggedIDs {
			fmt.Fprintln(&ex, id)
		}
		if err := put(fmt.Sprintf(ExcludeFile, k+1), ex.Bytes()); err != nil {
			return nil, err
		}
		var hist bytes.Buffer
		if err := rep.plotHistogram(&hist, k); err != nil {
			return nil, err
		}
		if err := put(fmt.Sprintf(HistFile, k+1), hist.Bytes()); err != nil {
			return nil, err
		}
		if len(d.pairs) == 0 {
			continue
		}
		var grid bytes.Buffer
		if err := rep.renderPairs(&grid, k); err != nil {
			return nil, err
		}
		if err := put(fmt.Sprintf(PairsFile, k+1), grid.Bytes()); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// renderPairs draws the closest pairs of dataset k, test image then its
// nearest row, four pairs to a line; a flagged row has a red ring.
func (rep *Report) renderPairs(w io.Writer, k int) error {
	d := rep.Datasets[k]
	s := rep.Test.Shape
	flagged := map[[2]int64]bool{}
	for _, f := range d.Flagged {
		flagged[[2]int64{int64(f.Test), f.Match.ID}] = true
	}
	var tiles []imagegrid.Tile
	for _, p := range d.pairs {
		n := d.Nearest[p.Test][0]
		t := imagegrid.Tile{Pixels: p.TestPixels, Caption: fmt.Sprintf("test %d", rep.Test.IDs[p.Test]), Border: color.RGBA{0x40, 0x80, 0xff, 0xff}}
		m := imagegrid.Tile{Pixels: p.MatchPixels, Caption: fmt.Sprintf("%d %.3f %s", n.ID, n.Dist, n.Variant)}
		if flagged[[2]int64{int64(p.Test), p.ID}] {
			m.Border = color.RGBA{0xff, 0x30, 0x30, 0xff}
		}
		tiles = append(tiles, t, m)
	}
	scale := max(1, min(imagegrid.MaxScale, 96/max(s.Width, s.Height)))
	return imagegrid.WritePNG(w, tiles, s.Height, s.Width, s.Channels, 8, scale)
}

// plotHistogram draws the histogram of each test image's nearest distance
// in dataset k, with the two thresholds as vertical lines.
func (rep *Report) plotHistogram(w io.Writer, k int) error {
	d := rep.Datasets[k]
	var vals plotter.Values
	for _, ns := range d.Nearest {
		if len(ns) > 0 {
			vals = append(vals, ns[0].Dist)
		}
	}
	if len(vals) == 0 {
		return errors.New("histogram: no distances")
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("nearest distance of each test image in %s", d.Name)
	p.X.Label.Text = "root mean square pixel difference to the nearest row"
	p.Y.Label.Text = "test images"
	h, err := plotter.NewHist(vals, 100)
	if err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	h.FillColor = color.RGBA{0x60, 0x90, 0xd0, 0xff}
	p.Add(plotter.NewGrid(), h)
	top := 0.0
	for _, b := range h.Bins {
		top = max(top, b.Weight)
	}
	line := func(x float64, name string, c color.Color) error {
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: top}})
		if err != nil {
			return err
		}
		l.Color, l.Width = c, vg.Points(1.5)
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	if t := rep.Thresholds.MaxDist; t > 0 {
		if err := line(t, fmt.Sprintf("max dist %.4g", t), color.RGBA{0xd0, 0x20, 0x20, 0xff}); err != nil {
			return err
		}
	}
	if t := rep.Thresholds.MaxRatio; t > 0 && d.MedianNearest > 0 {
		if err := line(t*d.MedianNearest, fmt.Sprintf("%.3g × median %.4g", t, d.MedianNearest), color.RGBA{0xe0, 0x90, 0x10, 0xff}); err != nil {
			return err
		}
	}
	p.Legend.Top = true
	const width, height, dpi = 900.0, 600.0, 96
	c := vgimg.NewWith(vgimg.UseWH(width/dpi*vg.Inch, height/dpi*vg.Inch), vgimg.UseDPI(dpi))
	p.Draw(draw.New(c))
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
		return fmt.Errorf("histogram: write png: %w", err)
	}
	return nil
}
