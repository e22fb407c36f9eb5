package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"certmix/certifier"
	"certmix/rundir"
)

const tableExamples = `  certmix table "real only=runs/real/certify" "real + 70% auxiliary=runs/mix/certify"
`

// runTable prints the certify summaries of several runs as a Markdown table.
func runTable(ctx context.Context, args []string) error {
	fs := newFlags("table", "table NAME=DIR ...", tableExamples)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("name at least one run as NAME=DIR (a directory written by certmix certify)")
	}
	var rows []string
	var header string
	for _, a := range fs.Args() {
		name, dir, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("%q: want NAME=DIR", a)
		}
		s, err := rundir.ReadSummary(dir)
		if err != nil {
			return err
		}
		cols := []string{"run", "clean"}
		vals := []string{name, fmt.Sprintf("%.2f", 100*s.Clean)}
		for i, e := range s.Radii {
			cols = append(cols, "cert. "+certifier.RadiusLabel(e))
			vals = append(vals, fmt.Sprintf("%.2f", 100*s.Certified[i]))
		}
		cols = append(cols, "gen. gap")
		vals = append(vals, fmt.Sprintf("%.2f", 100*s.GeneralizationGap))
		header = "| " + strings.Join(cols, " | ") + " |\n|" + strings.Repeat("---|", len(cols))
		rows = append(rows, "| "+strings.Join(vals, " | ")+" |")
	}
	fmt.Println(header)
	fmt.Println(strings.Join(rows, "\n"))
	return nil
}
