package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"certmix/internal/cli"
	"certmix/rundir"
)

const tableExamples = `  certmix table "real only=runs/real/certify" "real + 70% auxiliary=runs/mix/certify"
`

// runTable prints the certify summaries of several runs as a Markdown table.
func runTable(ctx context.Context, args []string) error {
	fs := newFlags("table", "table NAME=DIR ...", tableExamples)
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return errors.New("name at least one run as NAME=DIR (a directory written by certmix certify)")
	}
	var runs []rundir.Run
	for _, a := range pos {
		name, dir, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("%q: want NAME=DIR", a)
		}
		s, err := rundir.ReadSummary(dir)
		if err != nil {
			return err
		}
		runs = append(runs, rundir.Run{Name: name, Summary: s})
	}
	fmt.Print(rundir.Table(runs))
	return nil
}
