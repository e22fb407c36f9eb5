package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"certmix/shards"
)

const inspectExamples = `  shardtool inspect data/fmnist-train
  shardtool inspect --json s3://bucket/cifar10-gen-1m
`

func runInspect(ctx context.Context, args []string) error {
	fs := newFlags("inspect", "inspect [--json] URL", inspectExamples)
	asJSON := fs.Bool("json", false, "print the whole manifest as JSON")
	s3cfg := s3Flags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("want one dataset URL, got %d arguments", len(pos))
	}
	d, err := shards.Open(ctx, pos[0], s3cfg())
	if err != nil {
		return err
	}
	if *asJSON {
		data, err := d.Manifest.Marshal()
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(data)
		return err
	}
	printSummary(os.Stdout, d.String(), d.Manifest)
	return nil
}

// printSummary writes a human summary of a manifest: what, how big, how made,
// and the per-class histogram.
func printSummary(w io.Writer, url string, m *shards.Manifest) {
	var bytes int64
	for _, s := range m.Shards {
		bytes += s.Bytes
	}
	raw := m.Rows * int64(m.ImageBytes())
	fmt.Fprintf(w, "dataset   %s\n", url)
	fmt.Fprintf(w, "name      %s (%s, %s split)\n", m.Name, m.Kind, m.Split)
	fmt.Fprintf(w, "images    %d of %dx%dx%d (%s), %d classes", m.Rows, m.Height, m.Width, m.Channels, m.Layout, m.Classes)
	if m.CoarseClasses > 0 {
		fmt.Fprintf(w, ", %d coarse", m.CoarseClasses)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "shards    %d, %s stored (%s of pixels, %s, ratio %.2f)\n", len(m.Shards), human(bytes), human(raw), m.Codec, float64(bytes)/float64(max(raw, 1)))
	p := m.Provenance
	order := "source order"
	if p.Shuffle {
		order = fmt.Sprintf("shuffled, seed %d", p.Seed)
	}
	if p.Take > 0 {
		order += fmt.Sprintf(", take %d of %d", p.Take, p.SourceRows)
	}
	fmt.Fprintf(w, "made by   %s from %s (%d rows), %s\n", p.Tool, p.Source, p.SourceRows, order)
	for _, in := range p.Inputs {
		fmt.Fprintf(w, "  input   %s  %s  xxh64:%s\n", in.Path, human(in.Bytes), in.XXH64)
	}
	fmt.Fprintln(w, "classes")
	var most int64
	for _, c := range m.ClassCounts {
		most = max(most, c)
	}
	for i, c := range m.ClassCounts {
		if len(m.ClassCounts) > 20 && i >= 10 && i < len(m.ClassCounts)-5 {
			if i == 10 {
				fmt.Fprintf(w, "  ...     (%d classes more)\n", len(m.ClassCounts)-15)
			}
			continue
		}
		bar := strings.Repeat("#", int(40*c/max(most, 1)))
		fmt.Fprintf(w, "  %4d  %9d  %s\n", i, c, bar)
	}
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
