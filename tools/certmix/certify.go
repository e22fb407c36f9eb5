package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

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
	eps := fs.Float64("eps", 0, "radius (pixel units, in the model's norm) at which certified accuracy is reported (default: the model's, e.g. 36/255 for l2 models)")
	trainURL := fs.String("train", "", "the real training set: its clean accuracy gives the generalization gap (and SortNet recalibrates its running means on it)")
	recal := fs.Int("recalibrate", 10000, "training images for SortNet's running-mean pass before certifying")
	compare := fs.Bool("compare-estimate", false, "also compute the authors' estimate-based certificate (power-iteration K, rounding ignored; not a proof) and print its certified accuracy and time next to the proven one's")
	if err := fs.Parse(args); err != nil {
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
	if *eps <= 0 {
		*eps = tr.Cfg.Eps
	}
	x, labels, err := load(ctx, test, *n, tr.Cfg.Channels)
	if err != nil {
		return err
	}
	var train *shards.Dataset
	if *trainURL != "" {
		if train, err = shards.Open(ctx, *trainURL, shards.S3ConfigFromEnv()); err != nil {
			return fmt.Errorf("--train: %w", err)
		}
	}
	if err := recalibrate(ctx, tr, train, *recal); err != nil {
		return err
	}
	start, cpu0 := time.Now(), cpuTime()
	cert, err := certifyAll(tr.Model, x, labels, *eps)
	if err != nil {
		return err
	}
	took, cpu := time.Since(start), cpuTime()-cpu0
	res, k := cert.Results, cert.K
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
	radii := reportRadii(cert.Norm, *eps)
	sum := Summary{Arch: tr.Cfg.Arch, Norm: cert.Norm, Proof: cert.Proof, Images: len(res), K: k, Clean: certifier.CleanAccuracy(res), Eps: radii, Certified: make([]float64, len(radii))}
	for i, r := range radii {
		sum.Certified[i] = certifier.CertifiedAccuracy(res, r)
	}
	if train != nil {
		tx, tl, err := load(ctx, train, *n, tr.Cfg.Channels)
		if err != nil {
			return err
		}
		tcert, err := tr.Model.Certify(tx, tl, *eps)
		if err != nil {
			return err
		}
		sum.TrainClean = certifier.CleanAccuracy(tcert.Results)
		sum.GeneralizationGap = sum.TrainClean - sum.Clean
	}
	report, err := certifier.Summarize(res, certifier.ReportOptions{Eps: *eps, Radii: radii})
	if err != nil {
		return err
	}
	errs := []error{
		write("radii.csv", func(f *os.File) error { return certifier.WriteCSV(f, res, *eps) }),
		write("report.json", func(f *os.File) error { return report.WriteJSON(f) }),
		write("summary.json", func(f *os.File) error { return json.NewEncoder(f).Encode(sum) }),
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
	fmt.Printf("certified %d images of %s (%s radii) with K = %.6f in %.2fs (%.2fs CPU)\n", len(res), test, cert.Norm, k, took.Seconds(), cpu.Seconds())
	fmt.Printf("proof: %s\n", cert.Proof)
	fmt.Printf("clean accuracy      %.4f\n", certifier.CleanAccuracy(res))
	for _, r := range radii {
		fmt.Printf("certified at %.4f  %.4f\n", r, certifier.CertifiedAccuracy(res, r))
	}
	if *trainURL != "" {
		fmt.Printf("train clean         %.4f (generalization gap %.4f)\n", sum.TrainClean, sum.GeneralizationGap)
	}
	if *compare {
		if err := compareEstimate(tr.Model, x, labels, *eps, radii, sum.Certified, cpu); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %s/{radii.csv,report.json,summary.json,radius_cdf.png,confusion.png}\n", *out)
	return nil
}

// Summary is the one-line result of a certification, which certmix table
// reads.
type Summary struct {
	Arch              string    `json:"arch"`
	Norm              string    `json:"norm"`  // of the radii: l2 or linf
	Proof             string    `json:"proof"` // what stands behind the radii
	Images            int       `json:"images"`
	K                 float64   `json:"k"`
	Clean             float64   `json:"clean"`
	Eps               []float64 `json:"eps"`
	Certified         []float64 `json:"certified"`
	TrainClean        float64   `json:"train_clean"`
	GeneralizationGap float64   `json:"generalization_gap"`
}

// compareEstimate prints the estimate-based certificate's certified
// accuracies and time next to the proven ones, for models that have one.
func compareEstimate(m trainer.Model, x []float32, labels []int, eps float64, radii, proven []float64, cpu time.Duration) error {
	est, ok := m.(trainer.Estimator)
	if !ok {
		fmt.Println("compare-estimate: this architecture has no estimate-based certificate")
		return nil
	}
	start, cpu0 := time.Now(), cpuTime()
	c, err := est.CertifyEstimate(x, labels, eps)
	if err != nil {
		return fmt.Errorf("estimate-based certificate: %w", err)
	}
	t, ecpu := time.Since(start), cpuTime()-cpu0
	fmt.Printf("estimate (%s): K = %.6f in %.2fs (%.2fs CPU); proven/estimate CPU time %.2fx\n", c.Proof, c.K, t.Seconds(), ecpu.Seconds(), cpu.Seconds()/ecpu.Seconds())
	for i, r := range radii {
		e := certifier.CertifiedAccuracy(c.Results, r)
		fmt.Printf("certified at %.4f  estimate %.4f  proven %.4f  drop %.2f points\n", r, e, proven[i], 100*(e-proven[i]))
	}
	return nil
}

// cpuTime is the CPU time (user and system, all threads) the process has
// used: certification times compared on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
