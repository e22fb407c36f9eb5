package main

import (
	"context"
	"fmt"
	"time"

	"certmix/shards"
)

const verifyExamples = `  shardtool verify data/fmnist-train
  # prove that the 1M take is nested in the 5M take (same inputs and seed)
  shardtool verify --nested-in s3://bucket/gen-5m s3://bucket/gen-1m
`

func runVerify(ctx context.Context, args []string) error {
	fs := newFlags("verify", "verify [--nested-in URL] URL", verifyExamples)
	nested := fs.String("nested-in", "", "also prove that the dataset is a take nested in this larger one")
	s3cfg := s3Flags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("want one dataset URL, got %d arguments", len(pos))
	}
	cfg := s3cfg()
	d, err := shards.Open(ctx, pos[0], cfg)
	if err != nil {
		return err
	}
	start := time.Now()
	p := newProgress()
	p.update("verify", 0, d.Manifest.Rows)
	err = shards.Verify(ctx, d, func(rows int64) { p.update("verify", rows, d.Manifest.Rows) })
	p.finish()
	if err != nil {
		return err
	}
	fmt.Printf("ok %s: %s, %d rows, checksums, ids, labels and counts verified in %s\n",
		d, plural(int64(len(d.Manifest.Shards)), "shard"), d.Manifest.Rows, time.Since(start).Round(time.Millisecond))
	if *nested != "" {
		large, err := shards.Open(ctx, *nested, cfg)
		if err != nil {
			return err
		}
		if err := shards.VerifyNested(ctx, d, large); err != nil {
			return err
		}
		fmt.Printf("ok %s is the first %d rows of %s\n", d, d.Manifest.Rows, large)
	}
	return nil
}
