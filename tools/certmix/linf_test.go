package main

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"certmix/internal/testsets"
	"certmix/rundir"
	"certmix/shards"
)

// TestLinfEndToEnd trains tiny l_inf-dist Nets and SortNets with `certmix
// train` from their presets and certifies them with `certmix certify`: the
// summary is in l_inf radii (2/255, 8/255, 16/255, 0.1), certified
// accuracies fall with the radius, and radii.csv, report.json and the plots
// are written.
func TestLinfEndToEnd(t *testing.T) {
	bin := buildCertmix(t)
	shape := shards.Shape{Height: 28, Width: 28, Channels: 1, Classes: 10}
	dir := t.TempDir()
	for i, n := range []string{"real", "gen", "test"} {
		st, _ := shards.NewLocal(filepath.Join(dir, n))
		testsets.Write(t, st, 256, shape, 128, 64, int64(i)*1000)
	}
	for _, preset := range []string{"linfdist", "sortnet"} {
		t.Run(preset, func(t *testing.T) {
			out := filepath.Join(dir, preset)
			train := []string{"train", "--real", filepath.Join(dir, "real"), "--generated", filepath.Join(dir, "gen"), "--fraction", "0.5",
				"--preset", preset, "--depth", "3", "--width", "16", "--batch", "32", "--epochs", "2", "--eval", "64",
				"--test", filepath.Join(dir, "test"), "--out", out}
			if b, err := exec.Command(bin, train...).CombinedOutput(); err != nil {
				t.Fatalf("train: %v\n%s", err, b)
			}
			cert := filepath.Join(out, "certify")
			b, err := exec.Command(bin, "certify", "--checkpoint", filepath.Join(out, "last.safetensors"), "--test", filepath.Join(dir, "test"),
				"--train", filepath.Join(dir, "real"), "--out", cert).CombinedOutput()
			if err != nil {
				t.Fatalf("certify: %v\n%s", err, b)
			}
			s, err := rundir.ReadSummary(cert)
			if err != nil {
				t.Fatal(err)
			}
			if s.Norm != "linf" || s.Arch != preset || s.Images != 256 {
				t.Fatalf("summary %+v", s)
			}
			want := []float64{2.0 / 255, 8.0 / 255, 16.0 / 255, 0.1}
			if !slices.EqualFunc(s.Radii, want, func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }) {
				t.Errorf("radii %v, want %v", s.Radii, want)
			}
			for i := 1; i < len(s.Certified); i++ {
				if s.Certified[i] > s.Certified[i-1] || s.Certified[0] > s.Clean {
					t.Errorf("certified accuracies %v (clean %v) do not fall with the radius", s.Certified, s.Clean)
				}
			}
			for _, f := range []string{"radii.csv", "report.json", "radius_cdf.png", "confusion.png"} {
				if st, err := os.Stat(filepath.Join(cert, f)); err != nil || st.Size() == 0 {
					t.Errorf("%s: %v", f, err)
				}
			}
			csv, _ := os.ReadFile(filepath.Join(cert, "radii.csv"))
			if !strings.HasPrefix(string(csv), "index,label,prediction,radius,correct,certified,ibp\n") {
				t.Errorf("radii.csv header: %q", strings.SplitN(string(csv), "\n", 2)[0])
			}
		})
	}
}
