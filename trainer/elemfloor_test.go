package trainer

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"certmix/internal/npy"
)

// floorLadder is the floors elemFloor chooses from (torch_deviation.py
// prints the worst element at each).
var floorLadder = []float64{1e-2, 1e-1, 3e-1, 1}

// TestElemFloorsAgainstPyTorch holds every exception of elemFloor to what
// float32 PyTorch does on the same reference file
// (testdata/tools/torch_deviation.py recomputes each array from the same
// weights and inputs, and reproduces the file in float64): certmix's
// deviation is no more than twice PyTorch's, the floor admits PyTorch's
// deviation with a factor 2 to spare,
// and the next smaller floor of floorLadder would not, so that no floor is
// looser than float32 needs. The LiResNet gradients are compared with
// PyTorch's gradient of K as computed ("exact"), which certmix
// backpropagates, not with the shipped one the file holds (see elemFloor);
// and certmix's are checked against that gradient in float64 without any
// exception.
func TestElemFloorsAgainstPyTorch(t *testing.T) {
	const python = "/usr/bin/python3" // Debian's, with python3-numpy and python3-torch
	exactPath := filepath.Join(t.TempDir(), "exact.npz")
	cmd := exec.Command(python, "../testdata/tools/torch_deviation.py", "--json", "--exact-npz", exactPath)
	cmd.Env = append(cmd.Environ(), "OMP_NUM_THREADS=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s testdata/tools/torch_deviation.py (needs python3-numpy and python3-torch): %v\n%s", python, err, stderrOf(err))
	}
	var torch struct{ Shipped, Exact, Float64 map[string]map[string]float64 }
	if err := json.Unmarshal(out, &torch); err != nil {
		t.Fatalf("torch_deviation.py output: %v\n%s", err, out)
	}
	// The script's yardstick is only as good as its computation: in
	// float64 it must reproduce every array it measures.
	if len(torch.Float64) != len(torch.Shipped) {
		t.Errorf("torch_deviation.py measured %d arrays in float64, %d in float32", len(torch.Float64), len(torch.Shipped))
	}
	for name, m := range torch.Float64 {
		if m["rel"] > 1e-9 || math.IsNaN(m["rel"]) {
			t.Errorf("%s: torch_deviation.py in float64 is %.2g from the reference: it does not compute what the reference holds", name, m["rel"])
		}
	}

	recorded = map[string][]recording{}
	defer func() { recorded = nil }()
	t.Run("liresnet", TestLiResNetReproducesTheAuthors)
	t.Run("linfdist", TestLinfDistReproducesTheAuthors)
	got := recorded
	recorded = nil // what follows checks against other arrays

	// With the gradient defined as certmix defines it, the LiResNet
	// gradients need no exception: certmix's are within float32 rounding
	// of float64 PyTorch's gradient of K as computed, at the tolerance of
	// the reference test's gradients and the default floor (the worst is
	// the neck's 4x4 conv at 0.6 x tol, as against the file).
	exact, err := npy.LoadNPZ(exactPath)
	if err != nil {
		t.Fatal(err)
	}
	var checked int
	for _, name := range slices.Sorted(maps.Keys(got)) {
		if !strings.HasPrefix(name, "grad/") {
			continue
		}
		recs := got[name]
		want, ok := exact[name]
		if !ok {
			t.Errorf("%s: torch_deviation.py --exact-npz wrote no such gradient", name)
			continue
		}
		for _, r := range recs {
			relClose(t, name+", the gradient of K as computed", r.got, want.Data, 2e-3)
			checked++
		}
	}
	if checked != len(exact) || checked == 0 {
		t.Errorf("%d LiResNet gradients compared with the gradient of K as computed, torch_deviation.py wrote %d", checked, len(exact))
	}

	names := make([]string, 0, len(elemFloor))
	for name := range elemFloor {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		floor := elemFloor[name]
		py, ok := torch.Shipped[name]
		if strings.HasPrefix(name, "grad/") {
			py, ok = torch.Exact[name]
		}
		if !ok {
			t.Errorf("%s: torch_deviation.py does not compute it", name)
			continue
		}
		recs := got[name]
		if len(recs) == 0 {
			t.Errorf("%s: no reference test checks it", name)
			continue
		}
		at := slices.Index(floorLadder, floor)
		if at < 0 {
			t.Errorf("%s: floor %g is not one of %v", name, floor, floorLadder)
			continue
		}
		pyAt := func(f float64) float64 { return py[fmt.Sprintf("elem@%g", f)] }
		for _, r := range recs {
			goAt := func(f float64) float64 { w, _, _ := elemDeviation(r.got, r.want, f); return w }
			t.Logf("%s (tol %g, floor %g): PyTorch float32 %.2g x tol, certmix %.2g x tol; at floor 1e-2 %.2g and %.2g",
				name, r.tol, floor, pyAt(floor)/r.tol, goAt(floor)/r.tol, pyAt(1e-2)/r.tol, goAt(1e-2)/r.tol)
			if g, p := goAt(1e-2), pyAt(1e-2); g > 2*p || math.IsNaN(g) {
				t.Errorf("%s: certmix's worst element is %.2g x tol at floor 1e-2, more than twice float32 PyTorch's %.2g", name, g/r.tol, p/r.tol)
			}
			if p := pyAt(floor); p > r.tol/2 || math.IsNaN(p) {
				t.Errorf("%s: float32 PyTorch's worst element is %.2g x tol at floor %g, over the half the test allows itself", name, p/r.tol, floor)
			}
			if at > 0 {
				smaller := floorLadder[at-1]
				if worst := max(pyAt(smaller), goAt(smaller)); worst <= r.tol/2 {
					t.Errorf("%s: floor %g is looser than needed: at %g the worst element is %.2g x tol", name, floor, smaller, worst/r.tol)
				}
			}
		}
	}
}

func stderrOf(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}
