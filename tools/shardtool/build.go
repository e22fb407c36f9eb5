package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"certmix/pipeline"
	"certmix/shards"
)

const buildExamples = `  # Fashion-MNIST from Debian's dataset-fashion-mnist, train split, to a local directory
  shardtool build --in /usr/share/datasets/fashion-mnist --split train --out data/fmnist-train

  # CIFAR-10 binary test set
  shardtool build --in cifar-10-batches-bin --split test --out data/cifar10-test

  # 1M images drawn uniformly from the released 5M generated set, to S3
  AWS_ENDPOINT_URL=http://127.0.0.1:7070 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
  shardtool build --in 5m.npz --kind generated --take 1000000 --seed 13 --out s3://bucket/cifar10-gen-1m

  # the same set without the images shardtool audit flagged as near-copies of test images
  shardtool build --in 5m.npz --kind generated --take 1000000 --seed 13 --exclude-ids audit-out/exclude-0.txt --out data/gen-1m-clean
`

func runBuild(ctx context.Context, args []string) error {
	fs := newFlags("build", "build --in FILES|DIR --out URL [flags]", buildExamples)
	var (
		in, out, format string
		excludeFile     string
		opts            pipeline.Options
		classes         int
		shardMiB        int64
		seed            uint64
	)
	fs.StringVar(&in, "in", "", "input files, comma-separated, or one directory of an unpacked dataset (required)")
	fs.StringVar(&out, "out", "", "destination: a directory, file://DIR or s3://BUCKET/PREFIX (required)")
	fs.StringVar(&format, "format", "", "input format: "+strings.Join(pipeline.Formats, ", ")+" (default: from the file names)")
	fs.IntVar(&classes, "classes", 10, "number of classes of an npz source")
	fs.StringVar(&opts.Name, "name", "", "dataset name (default: the input format and split)")
	fs.StringVar(&opts.Kind, "kind", shards.KindReal, "dataset kind: real or generated")
	fs.StringVar(&opts.Split, "split", "train", "split: train or test; picks the files of a directory input")
	fs.StringVar(&opts.Codec, "codec", shards.CodecZstd, "body compression: zstd, lz4 or none")
	fs.Int64Var(&shardMiB, "shard-mib", 64, "target shard size in MiB (uncompressed)")
	fs.IntVar(&opts.BatchRows, "batch-rows", shards.DefaultBatchRows, "rows per Arrow record batch (the unit of a range read)")
	fs.Uint64Var(&seed, "seed", 0, "seed of the shuffle and of --take; the same seed gives the same bytes")
	fs.BoolVar(&opts.NoShuffle, "no-shuffle", false, "keep the source order (rows are shuffled by default)")
	fs.Int64Var(&opts.Take, "take", 0, "draw this many rows uniformly without replacement (0 = all); with one seed, smaller takes are nested in larger ones")
	fs.Int64Var(&opts.Skip, "skip", 0, "leave out the first rows of the permutation; with one seed, --skip N is the complement of --take N (a disjoint split)")
	fs.StringVar(&excludeFile, "exclude-ids", "", "file of source ids to leave out, one per line (as written by shardtool audit); recorded in the manifest's provenance")
	fs.BoolVar(&opts.BreakLock, "break-lock", false, "take the destination's build lock even if held (after a build that died without releasing it)")
	fs.BoolVar(&opts.Overwrite, "overwrite", false, "replace a dataset already at --out")
	fs.StringVar(&opts.TempDir, "tmp", os.TempDir(), "directory for the shuffle's spill files (as large as the output) when there is more than one shard")
	fs.IntVar(&opts.Workers, "workers", 0, "concurrent shard encoders (default: 2 per CPU, so one encodes while another waits on I/O)")
	s3cfg := s3Flags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if in == "" || out == "" {
		fs.Usage()
		return fmt.Errorf("--in and --out are required")
	}
	opts.Seed, opts.ShardBytes = seed, shardMiB<<20
	opts.Tool = "shardtool " + version
	if excludeFile != "" {
		ids, err := pipeline.ReadExcludeIDs(excludeFile)
		if err != nil {
			return err
		}
		opts.Exclude = ids
	}

	src, err := pipeline.OpenSource(format, strings.Split(in, ","), opts.Split, classes)
	if err != nil {
		return err
	}
	defer src.Close()
	if opts.Name == "" {
		opts.Name = src.Info().Format + "-" + opts.Split
	}
	store, err := shards.OpenStore(ctx, out, s3cfg())
	if err != nil {
		return err
	}
	p := newProgress()
	opts.Progress = p.update
	start := time.Now()
	m, err := pipeline.Build(ctx, src, store, opts)
	p.finish()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Printf("built %s in %s (%.0f images/s)\n", store, elapsed.Round(time.Millisecond), float64(m.Rows)/elapsed.Seconds())
	printSummary(os.Stdout, store.String(), m)
	return nil
}
