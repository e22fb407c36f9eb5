package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInvocations: every command refuses a misuse before it reads or
// writes anything, exits non-zero and says what was wrong; a stray word
// among the flags is named, with the flags after it that were not read.
func TestBadInvocations(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"build stray word", []string{"build", "--in", fmnist, "--out", out, "train", "--split", "test"}, []string{`unexpected argument "train"`, "flags after it were not read: --split test"}},
		{"build missing --out", []string{"build", "--in", fmnist}, []string{"--in and --out are required"}},
		{"sample stray word", []string{"sample", "--real", out, "x", "--fraction", "0"}, []string{`unexpected argument "x"`, "not read: --fraction 0"}},
		{"sample fraction above 1", []string{"sample", "--real", out, "--generated", out, "--fraction", "2"}, []string{"--fraction 2 outside [0,1]"}},
		{"serve stray word", []string{"serve", "--real", out, "x", "--listen", "127.0.0.1:0"}, []string{`unexpected argument "x"`, "not read: --listen 127.0.0.1:0"}},
		{"serve missing --real", []string{"serve"}, []string{"--real is required"}},
		{"inspect two URLs", []string{"inspect", out, out}, []string{"want one dataset URL, got 2"}},
		{"verify no URL", []string{"verify"}, []string{"want one dataset URL, got 0"}},
		{"peek without --out", []string{"peek", out}, []string{"want --out and one dataset URL"}},
		{"unknown flag", []string{"build", "--in", fmnist, "--out", out, "--shuffle"}, []string{"flag provided but not defined: -shuffle"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, nil, tc.args...)
			if r.code == 0 {
				t.Fatalf("shardtool %s: exit 0\n%s", strings.Join(tc.args, " "), r.stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("error lacks %q:\n%s", w, r.stderr)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s was created", out)
			}
		})
	}
}
