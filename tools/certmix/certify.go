package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"certmix/certifier"
	"certmix/rundir"
	"certmix/shards"
	"certmix/trainer"
	"certmix/trainer/checkpoint"
)

const certifyExamples = `  certmix certify --checkpoint runs/fm/last.safetensors --test out/fashion-mnist-test --out runs/fm/certify
`

func runCertify(ctx context.Context, args []string) error {
	fs := newFlags("certify", "certify --checkpoint FILE --test URL --out DIR [flags]", certifyExamples)
	ckpt := fs.String("checkpoint", "", "checkpoint written by certmix train or import (required)")
	testURL := fs.String("test", "", "test dataset (required)")
	out := fs.String("out", "", "directory for radii.csv, report.json, summary.json and the plots (required)")
	n := fs.Int("n", 0, "images to certify (default: all)")
	eps := fs.Float64("eps", 0, "radius (pixel units, in the model's norm) at which certified accuracy is reported (default: the model's, e.g. 36/255 for l2 models)")
	trainURL := fs.String("train", "", "the real training set: its clean accuracy gives the generalization gap (and SortNet recalibrates its running means on it)")
	recal := fs.Int("recalibrate", 10000, "training images for SortNet's running-mean pass before certifying")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *ckpt == "" || *testURL == "" || *out == "" {
		fs.Usage()
		return errors.New("--checkpoint, --test and --out are required")
	}
	dir, name := filepath.Split(*ckpt)
	store, err := shards.NewLocal(filepath.Clean(dir + "."))
	if err != nil {
		return err
	}
	ck, err := checkpoint.Read(ctx, store, name)
	if err != nil {
		return err
	}
	tr, _, err := trainer.Load(ck)
	if err != nil {
		return fmt.Errorf("%s: %w", *ckpt, err)
	}
	s3 := shards.S3ConfigFromEnv()
	test, err := shards.Open(ctx, *testURL, s3)
	if err != nil {
		return fmt.Errorf("--test: %w", err)
	}
	opts := trainer.CertifyOptions{Eps: *eps, N: *n, Recalibrate: *recal}
	if *trainURL != "" {
		if opts.Train, err = shards.Open(ctx, *trainURL, s3); err != nil {
			return fmt.Errorf("--train: %w", err)
		}
	}
	c, err := trainer.CertifyDataset(ctx, tr, test, opts)
	if err != nil {
		return err
	}
	if err := rundir.WriteCertification(*out, c.Summary, c.Results, c.Report, c.Eps); err != nil {
		return err
	}
	s := c.Summary
	fmt.Printf("certified %d images of %s (%s radii) with K = %.4f\n", s.Images, test, s.Norm, s.K)
	fmt.Printf("clean accuracy      %.4f\n", s.Clean)
	for i, r := range s.Radii {
		fmt.Printf("certified at %-7s %.4f\n", certifier.RadiusLabel(r), s.Certified[i])
	}
	if opts.Train != nil {
		fmt.Printf("train clean         %.4f (generalization gap %.4f)\n", s.TrainClean, s.GeneralizationGap)
	}
	fmt.Printf("wrote %s/{%s,%s,%s,%s,%s}\n", *out, rundir.RadiiFile, rundir.ReportFile, rundir.SummaryFile, rundir.RadiusCDFPlot, rundir.ConfusionPlot)
	return nil
}
