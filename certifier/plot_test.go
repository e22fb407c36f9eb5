package certifier

import (
	"bytes"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// syntheticRun imitates a CIFAR-10 ℓ2 model on the test labels: the given
// clean accuracy, radii of correct images spread well beyond ε
// (over-robustness), small radii for misclassified ones.
func syntheticRun(seed uint64, labels []int, clean float64, scale float64) []Result {
	rng := rand.New(rand.NewPCG(seed, 10))
	res := make([]Result, len(labels))
	for i, label := range labels {
		pred := label
		r := scale * rng.ExpFloat64()
		if rng.Float64() >= clean {
			pred = (label + 1 + rng.IntN(9)) % 10
			r = 0.3 * scale * rng.ExpFloat64()
		}
		res[i] = Result{Label: label, Prediction: pred, Radius: r}
	}
	return res
}

// plotDir is where the test PNGs go: $CERTIFIER_PLOT_DIR to keep them for a
// look, a temporary directory otherwise.
func plotDir(t *testing.T) string {
	if d := os.Getenv("CERTIFIER_PLOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// checkPNG decodes a PNG, checks its size and that it is not blank.
func checkPNG(t *testing.T, b []byte, w, h int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if got := img.Bounds(); got != image.Rect(0, 0, w, h) {
		t.Fatalf("size %v, want %dx%d", got, w, h)
	}
	colours := map[[3]uint32]bool{}
	ink := 0
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r, g, b}] = true
			if r != 0xffff || g != 0xffff || b != 0xffff {
				ink++
			}
		}
	}
	if len(colours) < 4 || ink < w*h/100 {
		t.Errorf("%d colours, %d of %d pixels not white: looks blank", len(colours), ink, w*h)
	}
}

// TestPlots renders the radius curve, the confusion heat map and a transition
// table at several sizes.
func TestPlots(t *testing.T) {
	const eps = 36.0 / 255
	labels := make([]int, 10000)
	rng := rand.New(rand.NewPCG(0, 10))
	for i := range labels {
		labels[i] = rng.IntN(10)
	}
	base, aux := syntheticRun(1, labels, 0.765, 0.35), syntheticRun(2, labels, 0.80, 0.4)
	dir := plotDir(t)
	tr, err := Transition(base, aux, eps)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		w, h int
		draw func(*bytes.Buffer, PlotOptions) error
	}{
		{"radius_cdf", 900, 600, func(b *bytes.Buffer, o PlotOptions) error {
			return PlotRadiusCurve(b, []Run{{Name: "w/o aux", Results: base}, {Name: "5M", Results: aux}}, eps, o)
		}},
		{"radius_cdf_single", 640, 480, func(b *bytes.Buffer, o PlotOptions) error {
			return PlotRadiusCurve(b, []Run{{Results: handmade}}, 0.5, o)
		}},
		{"confusion", 600, 500, func(b *bytes.Buffer, o PlotOptions) error {
			return PlotConfusion(b, NewConfusion(aux, eps), o)
		}},
		{"confusion_small", 320, 240, func(b *bytes.Buffer, o PlotOptions) error {
			return PlotConfusion(b, NewConfusion(handmade, 0.5), o)
		}},
		{"transition", 900, 700, func(b *bytes.Buffer, o PlotOptions) error {
			return PlotTransition(b, tr, "w/o aux", "5M", o)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tc.draw(&buf, PlotOptions{Width: tc.w, Height: tc.h}); err != nil {
				t.Fatal(err)
			}
			checkPNG(t, buf.Bytes(), tc.w, tc.h)
			if err := os.WriteFile(filepath.Join(dir, tc.name+".png"), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		})
	}

	var buf bytes.Buffer
	if err := PlotRadiusCurve(&buf, nil, eps, PlotOptions{}); err == nil {
		t.Error("no runs: no error")
	}
	if err := PlotRadiusCurve(&buf, []Run{{Name: "empty"}}, eps, PlotOptions{}); err == nil {
		t.Error("empty run: no error")
	}
	if err := PlotRadiusCurve(&buf, []Run{{Results: handmade}}, -1, PlotOptions{}); err == nil {
		t.Error("negative ε: no error")
	}
	if err := PlotConfusion(&buf, Confusion{}, PlotOptions{}); err != nil {
		t.Errorf("empty confusion: %v", err)
	}
}

// TestSurvivalSteps checks the step curve of Fig. 5 on a small set: the
// count drops right after each radius and ties drop together.
func TestSurvivalSteps(t *testing.T) {
	got := survivalSteps([]float64{0, 0.5, 0.5, 1}, 8, 2)
	want := []struct{ x, y float64 }{
		{0, 4.0 / 8}, {0, 4.0 / 8}, {0, 3.0 / 8}, {0.5, 3.0 / 8}, {0.5, 1.0 / 8}, {1, 1.0 / 8}, {1, 0}, {2, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("%d points %v, want %d", len(got), got, len(want))
	}
	for i, p := range want {
		if got[i].X != p.x || got[i].Y != p.y {
			t.Errorf("point %d: (%v, %v), want (%v, %v)", i, got[i].X, got[i].Y, p.x, p.y)
		}
	}
}
