// Package python holds the Go tests of the Python clients in this
// directory, so that go test (and CI) runs them: certmix_client.py is
// tested from sampler/serve, train_gloro.py here.
package python

import (
	"encoding/json"
	"os/exec"
	"testing"

	"certmix/trainer"
)

// pyInterpreter is Debian's python3, where python3-numpy and python3-torch
// are installed.
const pyInterpreter = "/usr/bin/python3"

func needTorch(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(pyInterpreter, "-c", "import numpy, torch").CombinedOutput(); err != nil {
		t.Fatalf("%s with numpy and torch is needed (apt-get install python3-numpy python3-torch): %v\n%s", pyInterpreter, err, out)
	}
}

// TestTrainGloroAgainstTheAuthors runs tests/test_train_gloro.py: the
// PyTorch GloroNet's state-dict names, K, logits, certificates, EMMA loss
// and gradients against testdata/liresnet_ref_L2W16.npz in float64 on the
// CPU, and its schedule.
func TestTrainGloroAgainstTheAuthors(t *testing.T) {
	needTorch(t)
	cmd := exec.Command(pyInterpreter, "-m", "unittest", "-v", "test_train_gloro")
	cmd.Dir = "tests"
	cmd.Env = append(cmd.Environ(), "OMP_NUM_THREADS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python unittest: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestTrainGloroPresets: train_gloro.py's hyperparameters are certmix's
// GloroNet presets.
func TestTrainGloroPresets(t *testing.T) {
	needTorch(t)
	for _, name := range []string{"gloro-xs", "gloro-s", "gloro-m", "gloro-l"} {
		out, err := exec.Command(pyInterpreter, "train_gloro.py", "--preset", name, "--print-config").Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var py struct {
			Depth, Width, Batch, Epochs, WarmupEpochs, PowerIters, CropPad int
			LR, WeightDecay, Clip, Eps, Beta1, Beta2, AdamEps              float64
		}
		if err := json.Unmarshal(out, &py); err != nil {
			t.Fatalf("%s: %v: %s", name, err, out)
		}
		// The snake_case keys.
		var raw map[string]float64
		json.Unmarshal(out, &raw)
		py.WarmupEpochs, py.PowerIters, py.CropPad = int(raw["warmup_epochs"]), int(raw["power_iters"]), int(raw["crop_pad"])
		py.WeightDecay, py.AdamEps = raw["weight_decay"], raw["adam_eps"]
		c, err := trainer.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		// train_gloro.py shortens the warm-up as certmix train does: 20 of 800 epochs.
		warm := min(c.WarmupEpochs, max(c.Epochs/40, 1))
		if py.Depth != c.Depth || py.Width != c.Width || py.Batch != c.Batch || int64(py.Epochs) != c.Epochs ||
			int64(py.WarmupEpochs) != warm || py.PowerIters != c.PowerIters || py.CropPad != c.Augment.Pad ||
			py.LR != c.LR || py.WeightDecay != c.WeightDecay || py.Clip != c.Clip || py.Eps != c.Eps ||
			py.Beta1 != c.Optimizer.Beta1 || py.Beta2 != c.Optimizer.Beta2 || py.AdamEps != c.Optimizer.Eps ||
			c.Optimizer.Name != "adamw" || c.Schedule != "warmup-cosine" {
			t.Errorf("%s: train_gloro.py %+v, certmix %+v", name, py, c)
		}
	}
}
