package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"certmix/certifier"
	"certmix/shards"
	"certmix/trainer"
)

const certifyExamples = `  certmix certify --checkpoint runs/fm/last.safetensors --test out/fashion-mnist-test --out runs/fm/certify
`

func runCertify(ctx context.Context, args []string) error {
	fs := newFlags("certify", "certify --checkpoint FILE --test URL --out DIR [flags]", certifyExamples)
	ckpt := fs.String("checkpoint", "", "checkpoint written by certmix train (required)")
	testURL := fs.String("test", "", "test dataset (required)")
	out := fs.String("out", "", "directory for radii.csv, report.json and the plots (required)")
	n := fs.Int("n", 0, "images to certify (default: all)")
	eps := fs.Float64("eps", 36.0/255, "radius at which certified accuracy is reported")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ckpt == "" || *testURL == "" || *out == "" {
		fs.Usage()
		return errors.New("--checkpoint, --test and --out are required")
	}
	dir, name := filepath.Split(*ckpt)
	store, err := shards.NewLocal(dir)
	if err != nil {
		return err
	}
	ck, err := trainer.ReadCheckpoint(ctx, store, name)
	if err != nil {
		return err
	}
	tr, _, err := trainer.Load(ck)
	if err != nil {
		return err
	}
	test, err := shards.Open(ctx, *testURL, shards.S3ConfigFromEnv())
	if err != nil {
		return fmt.Errorf("--test: %w", err)
	}
	x, labels, err := load(ctx, test, *n, tr.Cfg.Channels)
	if err != nil {
		return err
	}
	res, k, err := trainer.Certify(tr.Model, x, labels, 500)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	write := func(name string, f func(*os.File) error) error {
		file, err := os.Create(filepath.Join(*out, name))
		if err != nil {
			return err
		}
		if err := f(file); err != nil {
			file.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		return file.Close()
	}
	radii := []float64{*eps / 2, *eps, 2 * *eps, 3 * *eps}
	report, err := certifier.Summarize(res, certifier.ReportOptions{Eps: *eps, Radii: radii})
	if err != nil {
		return err
	}
	errs := []error{
		write("radii.csv", func(f *os.File) error { return certifier.WriteCSV(f, res, *eps) }),
		write("report.json", func(f *os.File) error { return report.WriteJSON(f) }),
		write("radius_cdf.png", func(f *os.File) error {
			return certifier.PlotRadiusCurve(f, []certifier.Run{{Name: "certmix", Results: res}}, *eps, certifier.PlotOptions{})
		}),
		write("confusion.png", func(f *os.File) error {
			return certifier.PlotConfusion(f, certifier.NewConfusion(res, *eps), certifier.PlotOptions{})
		}),
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf("certified %d images of %s with K = %.4f\n", len(res), test, k)
	fmt.Printf("clean accuracy      %.4f\n", certifier.CleanAccuracy(res))
	for _, r := range radii {
		fmt.Printf("certified at %.4f  %.4f\n", r, certifier.CertifiedAccuracy(res, r))
	}
	fmt.Printf("wrote %s/{radii.csv,report.json,radius_cdf.png,confusion.png}\n", *out)
	return nil
}
