package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"certmix/audit"
	"certmix/shards"
)

const auditExamples = `  # Fashion-MNIST's test images against its training images
  shardtool audit --against data/fmnist-test --out audit-fmnist data/fmnist-train

  # a generated set on S3, with per-image mean removed and one-pixel shifts
  shardtool audit --against data/cifar10-test --normalize mean --shifts 1 --out audit-gen s3://bucket/cifar10-gen-1m

  # the same on four machines, then merged (any machine, the part files copied over)
  shardtool audit --against data/cifar10-test --part 2/4 --out parts s3://bucket/cifar10-gen-1m
  shardtool audit merge --out audit-gen parts/part-*-of-4.json

  # rebuild the generated set without the flagged rows
  shardtool build --in 5m.npz --kind generated --take 1000000 --seed 13 --exclude-ids audit-gen/exclude-ids-1.txt --out data/gen-1m-clean
`

// resultFile is the search result an unsplit audit leaves in its output
// directory (merge can judge it again with other thresholds); partFile is a
// part's.
const (
	resultFile = "result.json"
	partFile   = "part-%d-of-%d.json"
)

func runAudit(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "merge" {
		return runAuditMerge(args[1:])
	}
	fs := newFlags("audit", "audit --against TEST --out DIR [flags] DATASET...\n       shardtool audit merge --out DIR RESULT.json...", auditExamples)
	var opts audit.Options
	th := audit.DefaultThresholds
	test := fs.String("against", "", "the test set: its images are searched for in each DATASET (required)")
	out := fs.String("out", "", "output directory (required): report, table, pair grid, histogram, ids to exclude; with --part, the part's result file")
	part := fs.String("part", "", "search only part i of n of every dataset's rows (i/n, e.g. 2/4); merge the parts with 'shardtool audit merge'")
	fs.StringVar(&opts.Normalize, "normalize", audit.NormNone, "per-image normalisation before comparing: none, mean (subtract the mean) or unit (subtract the mean, divide by the norm)")
	fs.IntVar(&opts.Shifts, "shifts", 0, "also compare the test images moved by 1 pixel (1) or not (0)")
	fs.IntVar(&opts.Cells, "cells", 8, "the filter's grid: about CELLS x CELLS cells per image")
	fs.IntVar(&opts.Candidates, "candidates", 32, "filter candidates per test image and record batch that are compared exactly")
	fs.IntVar(&opts.Neighbours, "neighbours", 3, "nearest rows kept per test image and dataset")
	fs.IntVar(&opts.Pairs, "pairs", 64, "closest pairs drawn in the grid, per dataset")
	fs.IntVar(&opts.Workers, "workers", 0, "goroutines (default: one per CPU)")
	thresholdFlags(fs, &th)
	show := fs.Int("show", 20, "flagged pairs printed per dataset (all are in flagged.txt)")
	s3cfg := s3Flags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *test == "" || *out == "" || len(pos) == 0 {
		fs.Usage()
		return fmt.Errorf("want --against TEST, --out DIR and at least one DATASET, got --against %q, --out %q and %d datasets", *test, *out, len(pos))
	}
	if *part != "" {
		if opts.Part, err = audit.ParsePart(*part); err != nil {
			return err
		}
	}
	if err := opts.Check(); err != nil {
		return err
	}
	testSet, datasets, err := openAuditSets(ctx, *test, pos, s3cfg())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	// The search's live memory is mostly the test set in float32 (twice:
	// the images and their mirror images) and one record batch; garbage is
	// whole fetched batches. Collecting at half the live heap rather than
	// all of it keeps the peak near 1.5× live, well under 1 GiB for 10,000
	// CIFAR test images, at little cost: the buffers hold no pointers.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	p := newProgress()
	opts.Progress = func(done, total int64) { p.update("audit", done, total) }
	start := time.Now()
	res, err := audit.Search(ctx, testSet, datasets, opts)
	p.finish()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	var rows int64
	for _, d := range res.Datasets {
		rows += d.Scanned
	}
	fmt.Printf("searched %d rows for %d test images in %s (%.0f rows/s, %s)\n", rows, len(res.Test.IDs), elapsed.Round(time.Millisecond), float64(rows)/elapsed.Seconds(), audit.Backend)
	if opts.Part.Count > 1 {
		path := filepath.Join(*out, fmt.Sprintf(partFile, opts.Part.Index+1, opts.Part.Count))
		if err := res.WriteFile(path); err != nil {
			return err
		}
		fmt.Printf("part %s written to %s; merge all parts with: shardtool audit merge --out DIR %s\n", opts.Part, path,
			filepath.Join(*out, fmt.Sprintf("part-*-of-%d.json", opts.Part.Count)))
		return nil
	}
	if err := res.WriteFile(filepath.Join(*out, resultFile)); err != nil {
		return err
	}
	return judge(res, th, *out, *show)
}

func runAuditMerge(args []string) error {
	fs := newFlags("audit merge", "audit merge --out DIR [flags] RESULT.json...", auditExamples)
	th := audit.DefaultThresholds
	out := fs.String("out", "", "output directory (required)")
	thresholdFlags(fs, &th)
	show := fs.Int("show", 20, "flagged pairs printed per dataset (all are in flagged.txt)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *out == "" || len(pos) == 0 {
		fs.Usage()
		return errors.New("want --out DIR and at least one result file (part-I-of-N.json or result.json)")
	}
	var parts []*audit.Result
	for _, path := range pos {
		r, err := audit.ReadResult(path)
		if err != nil {
			return err
		}
		parts = append(parts, r)
	}
	res, err := audit.Merge(parts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := res.WriteFile(filepath.Join(*out, resultFile)); err != nil {
		return err
	}
	return judge(res, th, *out, *show)
}

func thresholdFlags(fs *flag.FlagSet, th *audit.Thresholds) {
	fs.Float64Var(&th.MaxDist, "max-dist", th.MaxDist, "flag pairs whose root mean square pixel difference (pixels in [0,1]) is at most this (0 = off)")
	fs.Float64Var(&th.MaxRatio, "max-ratio", th.MaxRatio, "flag pairs at most this fraction of the median nearest distance apart (0 = off)")
}

// judge flags the pairs of a complete result, prints the table and writes
// the output files.
func judge(res *audit.Result, th audit.Thresholds, out string, show int) error {
	rep, err := audit.Judge(res, th)
	if err != nil {
		return err
	}
	if err := rep.WriteTable(os.Stdout, show); err != nil {
		return err
	}
	paths, err := rep.WriteFiles(out)
	if err != nil {
		return err
	}
	fmt.Println("wrote", filepath.Join(out, resultFile))
	for _, p := range paths {
		fmt.Println("wrote", p)
	}
	return nil
}

// openAuditSets opens the test set (--against) and the datasets searched.
func openAuditSets(ctx context.Context, test string, urls []string, cfg shards.S3Config) (*shards.Dataset, []*shards.Dataset, error) {
	testSet, err := shards.Open(ctx, test, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("--against: %w", err)
	}
	var datasets []*shards.Dataset
	for _, u := range urls {
		d, err := shards.Open(ctx, u, cfg)
		if err != nil {
			return nil, nil, err
		}
		datasets = append(datasets, d)
	}
	return testSet, datasets, nil
}
