package cli

import (
	"io"
	"strings"
	"testing"
)

// TestParseFlags: a command that takes only flags reads them all, and a
// stray word is refused by name, saying that the flags after it were not
// read, instead of being silently ignored with them.
func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of the error; none: no error
	}{
		{"flags only", []string{"--out", "o", "--eps", "0.1"}, nil},
		{"nothing", nil, nil},
		{"stray word before a flag", []string{"--out", "o", "x", "--eps", "0.1"}, []string{`unexpected argument "x"`, "takes only flags", "flags after it were not read: --eps 0.1"}},
		{"stray word at the end", []string{"--out", "o", "x"}, []string{`unexpected argument "x"`, "takes only flags"}},
		{"after --", []string{"--", "--eps", "0.1"}, []string{`unexpected argument "--eps"`, "not read: 0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := Flags("prog", "cmd [flags]", "")
			fs.SetOutput(io.Discard)
			out := fs.String("out", "", "")
			eps := fs.Float64("eps", 0, "")
			err := ParseFlags(fs, tc.args)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("ParseFlags(%q): %v", tc.args, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseFlags(%q) accepted it (--out %q --eps %v)", tc.args, *out, *eps)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	fs := Flags("prog", "cmd [flags]", "")
	fs.SetOutput(io.Discard)
	if err := ParseFlags(fs, []string{"--nope"}); err == nil || strings.Contains(err.Error(), "unexpected argument") {
		t.Errorf("an unknown flag: %v", err)
	}
}
