package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInvocations: every command refuses a misuse before it reads or
// writes anything, exits non-zero and says what was wrong; a stray word
// among the flags is named, with the flags after it that were not read.
func TestBadInvocations(t *testing.T) {
	bin := buildCertmix(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"certify stray word", []string{"certify", "--checkpoint", "c", "--test", "t", "--out", out, "x", "--eps", "0.1"}, []string{`unexpected argument "x"`, "flags after it were not read: --eps 0.1"}},
		{"certify missing flags", []string{"certify", "--test", "t"}, []string{"--checkpoint, --test and --out are required"}},
		{"import stray word", []string{"import", "--npz", "a.npz", "--out", out, "extra", "--prefix", "state/"}, []string{`unexpected argument "extra"`, "not read: --prefix state/"}},
		{"import missing flags", []string{"import", "--npz", "a.npz"}, []string{"--npz and --out are required"}},
		{"train stray word", []string{"train", "--real", "r", "--out", out, "gloro-s", "--epochs", "3"}, []string{`unexpected argument "gloro-s"`, "not read: --epochs 3"}},
		{"train fraction above 1", []string{"train", "--real", "r", "--generated", "g", "--fraction", "1.5", "--out", out}, []string{"--fraction 1.5 outside [0,1]"}},
		{"train negative fraction", []string{"train", "--real", "r", "--generated", "g", "--fraction", "-0.1", "--out", out}, []string{"--fraction -0.1 outside [0,1]"}},
		{"train fraction NaN", []string{"train", "--real", "r", "--fraction", "NaN", "--out", out}, []string{"--fraction NaN outside [0,1]"}},
		{"train unknown flag", []string{"train", "--real", "r", "--out", out, "--fractoin", "0.5"}, []string{"flag provided but not defined: -fractoin"}},
		{"table no run", []string{"table"}, []string{"NAME=DIR"}},
		{"table not NAME=DIR", []string{"table", dir}, []string{"want NAME=DIR"}},
		{"sweep two files", []string{"sweep", "a.yaml", "b.yaml"}, []string{"name one sweep file"}},
		{"sweep status no directory", []string{"sweep", "status"}, []string{"name one sweep directory"}},
		{"report two directories", []string{"report", dir, dir}, []string{"name one sweep directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := exec.Command(bin, tc.args...).CombinedOutput()
			if err == nil {
				t.Fatalf("certmix %s: exit 0\n%s", strings.Join(tc.args, " "), b)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("output lacks %q:\n%s", w, b)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s was created", out)
			}
		})
	}
}
