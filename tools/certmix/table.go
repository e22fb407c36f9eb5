package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"certmix/internal/cli"
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
	var rows []string
	var header string
	for _, a := range pos {
		name, dir, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("%q: want NAME=DIR", a)
		}
		data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
		if err != nil {
			return err
		}
		var s Summary
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		cols := []string{"run", "clean"}
		vals := []string{name, fmt.Sprintf("%.2f", 100*s.Clean)}
		for i, e := range s.Eps {
			cols = append(cols, "cert. "+radiusLabel(e))
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

// radiusLabel writes a radius as k/255 when it is one (36/255, 8/255), else
// as a decimal (0.1).
func radiusLabel(e float64) string {
	if k := math.Round(e * 255); math.Abs(e*255-k) < 1e-6 {
		return fmt.Sprintf("%.0f/255", k)
	}
	return fmt.Sprintf("%.3g", e)
}
