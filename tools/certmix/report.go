package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"

	"certmix/internal/cli"
	"certmix/report"
)

const reportExamples = `  # report.md, report.html and the plots into runs/demo/report
  certmix report runs/demo
  # the expected certified-accuracy gain of a model whose base generalization gap is 6.2 points
  certmix report --predict 6.2 --family gloro runs/demo
  # from the 5M cells only, with a 90% interval
  certmix report --predict 6.2 --generated 5M --level 0.9 runs/demo
  # Fig. 3 and the prediction from the cells at fraction 0.3 instead of 0.7
  certmix report --fraction 0.3 runs/demo
`

func runReport(ctx context.Context, args []string) error {
	fs := newFlags("report", "report [--out DIR] [--fraction F] SWEEPDIR  |  report --predict GAP [--family F] [--generated NAME] [--fraction F] [--level L] SWEEPDIR", reportExamples)
	out := fs.String("out", "", "report directory (default SWEEPDIR/report)")
	fraction := fs.Float64("fraction", report.DefaultFraction, "fit the gain-against-gap lines (Fig. 3) and predict from the cells of this generated fraction")
	var gap float64
	predict := false
	fs.Func("predict", "print the expected gain in certified accuracy (points) of a model whose base generalization gap is GAP points, from the fitted lines, and write nothing", func(s string) error {
		predict = true
		_, err := fmt.Sscan(s, &gap)
		return err
	})
	family := fs.String("family", "", "--predict: only this family (as the sweep file's family: names it, e.g. gloro, lot-cosine)")
	generated := fs.String("generated", "", "--predict: fit on the cells of this amount of generated data only")
	level := fs.Float64("level", 0.95, "--predict: probability of the prediction interval")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("name one sweep directory")
	}
	if !(*fraction > 0 && *fraction <= 1) {
		return fmt.Errorf("--fraction %v: want a generated fraction above 0 and at most 1", *fraction)
	}
	r, err := report.BuildAt(pos[0], *fraction)
	if err != nil {
		return err
	}
	if predict {
		return printPrediction(r, gap, *family, *generated, *fraction, *level)
	}
	if set(fs, "family") || set(fs, "generated") || set(fs, "level") {
		return errors.New("--family, --generated and --level go with --predict")
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join(pos[0], "report")
	}
	files, err := r.Write(dir)
	if err != nil {
		return err
	}
	fmt.Print(r.MainTable().Markdown(), "\n", r.CellsTable().Markdown())
	if len(r.Gains) > 0 {
		fmt.Print("\n", r.GainsTable().Markdown())
	}
	for _, f := range r.Fits {
		if f.Err == nil {
			fmt.Print("\n", r.FitsTable().Markdown())
			break
		}
	}
	if u := r.Unfinished(); len(u) > 0 {
		fmt.Printf("\n%d of %d cells not finished\n", len(u), len(r.Results))
	}
	fmt.Printf("\nwrote %d files: %s and %s\n", len(files), filepath.Join(dir, "report.md"), filepath.Join(dir, "report.html"))
	return nil
}

func printPrediction(r *report.Report, gap float64, family, generated string, fraction, level float64) error {
	ps, err := report.Predict(r.Gains, gap, family, generated, fraction, level)
	if err != nil {
		return err
	}
	for _, p := range ps {
		fmt.Printf("%s: ", p.Family)
		switch {
		case p.Line.N == 0:
			fmt.Printf("%v\n", p.Err)
			continue
		case p.Err != nil:
			fmt.Printf("expected gain %+.2f points at a base generalization gap of %.2f (%v)\n", p.Gain, gap, p.Err)
		default:
			fmt.Printf("expected gain %+.2f points at a base generalization gap of %.2f, %g%% prediction interval [%+.2f, %+.2f]\n",
				p.Gain, gap, 100*level, p.Lo, p.Hi)
		}
		fmt.Printf("  from %s, fitted on the averages of %d base models (%d settings) at f = %g\n", p.Line.Equation(), p.Line.N, p.Line.Points, fraction)
		if p.Line.Points > p.Line.N && generated == "" {
			fmt.Println("  the interval is for a new base model's gain averaged over the sweep's amounts; --generated NAME predicts one amount")
		}
	}
	return nil
}

func set(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}
