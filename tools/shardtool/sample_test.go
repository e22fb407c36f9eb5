package main

import (
	"encoding/json"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"certmix/sampler"
)

// TestSample mixes the Fashion-MNIST test split, as the real set, with
// 20,000 training images, as the generated set, and checks what sample
// prints, the grid and state it writes, a resume from that state, and its
// refusals.
func TestSample(t *testing.T) {
	dir := t.TempDir()
	real, gen := filepath.Join(dir, "real"), filepath.Join(dir, "gen")
	ok(t, nil, "build", "--in", fmnist, "--split", "test", "--out", real)
	ok(t, nil, "build", "--in", fmnist, "--split", "train", "--take", "20000", "--kind", "generated", "--out", gen)
	mix := []string{"sample", "--real", real, "--generated", gen, "--batch", "512", "--fraction", "0.7"}
	mix = mix[:len(mix):len(mix)] // every append copies
	grid, state := filepath.Join(dir, "batch.png"), filepath.Join(dir, "state.json")

	// 25 steps: epoch 0 (ceil(10000/512) = 20 steps) and 5 steps of epoch 1.
	out := ok(t, nil, append(mix, "--steps", "25", "--png", grid, "--save-state", state)...)
	for _, want := range []string{
		"154 real + 358 generated per batch (f=0.70 of 512), rank 0 of 1",
		"20 steps per epoch",
		"25 steps from step 0 (epoch 0)",
		"epoch 0    20 steps: real 3080 drawn, 3080 unique of 10000; generated 7160 drawn, ",
		"generated fraction 0.6992", // 358/512
		"epoch 1    5 of 20 steps so far: real 770 drawn, 770 unique of 10000; generated 1790 drawn, ",
		"done       25 steps, 12800 images in ",
		"state      step 25, epoch 1",
		"wrote      " + grid + ": first 64 of the 512 images of step 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("sample output lacks %q:\n%s", want, out)
		}
	}
	if m := regexp.MustCompile(` (\d+) images/s`).FindStringSubmatch(out); m == nil {
		t.Errorf("no throughput in:\n%s", out)
	} else if rate, _ := strconv.Atoi(m[1]); rate <= 0 {
		t.Errorf("throughput %d images/s", rate)
	}
	checkGrid(t, grid)

	var st sampler.State
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("--save-state wrote %q: %v", data, err)
	}
	if st.Step != 25 || st.Epoch != 1 || st.Batch != 512 || len(st.Sources) != 2 || st.Sources[1].Fraction != 0.7 ||
		st.Sources[0].Replacement || !st.Sources[1].Replacement {
		t.Errorf("saved state %+v", st)
	}

	t.Run("resume", func(t *testing.T) {
		// 15 more steps end epoch 1, whose accounting must read as that of
		// an uninterrupted run of 40 steps.
		resumed := ok(t, nil, append(mix, "--steps", "15", "--resume", state)...)
		for _, want := range []string{"15 steps from step 25 (epoch 1), resumed from " + state, "state      step 40, epoch 2"} {
			if !strings.Contains(resumed, want) {
				t.Errorf("resumed output lacks %q:\n%s", want, resumed)
			}
		}
		whole := ok(t, nil, append(mix, "--steps", "40")...)
		a, b := line(resumed, "epoch 1 "), line(whole, "epoch 1 ")
		if a == "" || a != b {
			t.Errorf("epoch 1 after a resume:\n%s\nuninterrupted:\n%s", a, b)
		}
	})

	t.Run("real only", func(t *testing.T) {
		out := ok(t, nil, "sample", "--real", real, "--fraction", "0", "--steps", "2", "--batch", "100", "--crop-pad", "0", "--no-flip")
		for _, want := range []string{"100 real per batch (f=0.00 of 100)", "100 steps per epoch", "augment    none",
			"epoch 0    2 of 100 steps so far: real 200 drawn, 200 unique of 10000\n", "done       2 steps, 200 images"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		cifar := filepath.Join(dir, "test_batch.bin")
		if err := os.WriteFile(cifar, append([]byte{3}, make([]byte, 3072)...), 0o644); err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(dir, "cifar")
		ok(t, nil, "build", "--in", cifar, "--out", other)
		damaged := damagedDataset(t, dir)
		for _, tc := range []struct {
			name string
			args []string
			want []string
		}{
			{"fraction above 1", append(mix, "--fraction", "1.5"), []string{"--fraction 1.5 outside [0,1]"}},
			{"negative fraction", append(mix, "--fraction", "-0.1"), []string{"--fraction -0.1 outside [0,1]"}},
			{"no generated set", []string{"sample", "--real", real}, []string{"--fraction 0.7 needs --generated"}},
			{"no real set", []string{"sample", "--generated", gen}, []string{"--real is required"}},
			{"steps and epochs", append(mix, "--steps", "3", "--epochs", "1"), []string{"--steps and --epochs"}},
			{"batch too small for the mix", append(mix, "--batch", "1"), []string{"batch of 1", "no image of source 1"}},
			{"rank outside the world", append(mix, "--rank", "2", "--world-size", "2"), []string{"--rank 2 outside 0..1"}},
			{"other image shape", []string{"sample", "--real", real, "--generated", other}, []string{other, "32x32x3", "28x28x1", "must agree"}},
			{"missing dataset", []string{"sample", "--real", real, "--generated", filepath.Join(dir, "absent")}, []string{"generated dataset", "absent", "not a dataset"}},
			{"resume with another seed", append(mix, "--resume", state, "--seed", "3"), []string{"resume from " + state, "does not match", "seed 3"}},
			{"resume from a manifest", append(mix, "--resume", filepath.Join(real, "manifest.json")), []string{"manifest.json is not a sampler state"}},
			{"damaged batch", []string{"sample", "--real", damaged, "--fraction", "0", "--batch", "4", "--steps", "1"}, []string{"step 0: checksum failed twice", "xxh64", "checksum mismatch"}},
			{"grid in a missing directory", append(mix, "--png", filepath.Join(dir, "nodir", "g.png")), []string{"--png", "nodir"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := run(t, nil, tc.args...)
				if r.code == 0 {
					t.Fatalf("exit 0:\n%s", r.stdout)
				}
				for _, w := range tc.want {
					if !strings.Contains(r.stderr, w) {
						t.Errorf("error lacks %q: %s", w, r.stderr)
					}
				}
				if strings.Count(r.stderr, "step 0:") > 1 {
					t.Errorf("the step is named twice: %s", r.stderr)
				}
				if strings.Contains(r.stdout, "done ") {
					t.Errorf("sampled despite the error:\n%s", r.stdout)
				}
			})
		}
	})
}

// checkGrid decodes the --png grid and checks that it frames tiles in the
// colours of both sources.
func checkGrid(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("--png wrote no PNG: %v", err)
	}
	// 8 columns of 28x28 tiles at scale 4, and 8 rows.
	if b := img.Bounds(); b.Dx() < 8*28*4 || b.Dy() < 8*28*4 {
		t.Errorf("grid of %v, too small for 64 tiles", b)
	}
	count := map[color.RGBA]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			count[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	for i, c := range sourceBorders {
		// A ring is at least 4*(28*4) pixels of the border's colour.
		if count[c] < 4*28*4 {
			t.Errorf("%d pixels of the %s border colour %v", count[c], sourceNames[i], c)
		}
	}
}

// line returns the first line of out that starts with prefix, or "".
func line(out, prefix string) string {
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// damagedDataset builds a dataset of 8 uncompressed CIFAR-10 records in dir
// and flips a byte in the middle of its shard, inside a record batch.
func damagedDataset(t *testing.T, dir string) string {
	t.Helper()
	in := filepath.Join(dir, "damaged-src", "test_batch.bin")
	if err := os.MkdirAll(filepath.Dir(in), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, make([]byte, 8*3073), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "damaged")
	ok(t, nil, "build", "--in", in, "--codec", "none", "--out", out)
	shards, _ := filepath.Glob(filepath.Join(out, "*.arrow"))
	if len(shards) != 1 {
		t.Fatalf("want one shard in %s, got %v", out, shards)
	}
	data, err := os.ReadFile(shards[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(shards[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
