package npy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// numpyDigest has numpy read every array of an .npz and prints, per key,
// its shape and the SHA-256 of its values as little-endian float64 (the
// widening LoadNPZ does). numpy (python3-numpy) is a test dependency: its
// absence fails the test.
const numpyDigest = `
import hashlib, json, sys
import numpy as np
out = {}
with np.load(sys.argv[1]) as z:
    for k in z.files:
        a = z[k]
        out[k] = {"shape": list(a.shape), "sha256": hashlib.sha256(np.ascontiguousarray(a, dtype="<f8").tobytes()).hexdigest()}
json.dump(out, sys.stdout)
`

func digest(data []float64) string {
	h := sha256.New()
	var b [8]byte
	for _, v := range data {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestLoadNPZReadsTheReferenceFiles reads every .npz in testdata/ and checks
// each array, key by key, against what numpy reads from the same file:
// the same keys, shapes and values bit for bit.
func TestLoadNPZReadsTheReferenceFiles(t *testing.T) {
	files, err := filepath.Glob("../../testdata/*.npz")
	if err != nil || len(files) < 5 {
		t.Fatalf("testdata/*.npz: %v, %v: want the five reference files", files, err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			arrays, err := LoadNPZ(path)
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("/usr/bin/python3", "-c", numpyDigest, path).Output()
			if err != nil {
				t.Fatalf("python3 (numpy) failed: %v", err)
			}
			var want map[string]struct {
				Shape  []int
				SHA256 string
			}
			if err := json.Unmarshal(out, &want); err != nil {
				t.Fatalf("numpy's digest: %v", err)
			}
			var gotKeys, wantKeys []string
			for k := range arrays {
				gotKeys = append(gotKeys, k)
			}
			for k := range want {
				wantKeys = append(wantKeys, k)
			}
			slices.Sort(gotKeys)
			slices.Sort(wantKeys)
			if !slices.Equal(gotKeys, wantKeys) {
				t.Fatalf("keys %v, numpy reads %v", gotKeys, wantKeys)
			}
			for _, k := range wantKeys {
				a, w := arrays[k], want[k]
				if !slices.Equal(a.Shape, w.Shape) {
					t.Errorf("%s: shape %v, numpy %v", k, a.Shape, w.Shape)
				} else if d := digest(a.Data); d != w.SHA256 {
					t.Errorf("%s: values differ from numpy's (sha256 %s, numpy %s)", k, d[:12], w.SHA256[:12])
				}
			}
			t.Logf("%d arrays agree with numpy", len(wantKeys))
		})
	}
	// The layout the LiResNet conformance test relies on.
	arrays, err := LoadNPZ("../../testdata/liresnet_ref_L2W16.npz")
	if err != nil {
		t.Fatal(err)
	}
	in := arrays["input"]
	if in == nil || !slices.Equal(in.Shape, []int{8, 3, 32, 32}) {
		t.Fatalf("input: %+v", in)
	}
	for _, v := range in.Data {
		if v < 0 || v > 1 {
			t.Fatalf("input value %v outside [0,1]", v)
		}
	}
	if l := arrays["label"]; l == nil || len(l.Data) != 8 {
		t.Fatalf("label: %+v", l)
	}
}
