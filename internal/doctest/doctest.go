// Package doctest finds the shell commands of Markdown files, so that a test
// can run every command the README and docs/ show, as shown.
//
// A shell block is a fenced code block whose info string starts with sh,
// bash or shell. After the language the info string may hold attributes in
// braces, which say how the block may run:
//
//	```sh {skip="needs the CIFAR-10 binary files"}   never run; the reason is reported
//	```sh {s3}                                       needs an S3 server (AWS_* set, bucket "bucket")
//	```sh {slurm}                                    needs a Slurm cluster (SLURM_CONF set)
//
// Any other attribute is an error, so that a misspelt marker cannot make a
// block silently stop running. TestDocCommands in this package runs the
// blocks.
package doctest

import (
	"bufio"
	"fmt"
	"regexp"
	"strings"
)

// Block is one shell block of a Markdown file.
type Block struct {
	// Line is the 1-based line of the opening fence.
	Line int
	// Script is the block's text, the lines between the fences.
	Script string
	// Skip, when not empty, is why the block is never run.
	Skip string
	// S3 and Slurm say the block needs an S3 server or a Slurm cluster.
	S3, Slurm bool
}

// shellLangs are the info-string languages of shell blocks.
var shellLangs = map[string]bool{"sh": true, "bash": true, "shell": true}

// attrRE matches one attribute: a name, optionally ="value".
var attrRE = regexp.MustCompile(`^\s*([A-Za-z0-9_-]+)(?:="([^"]*)")?\s*`)

// Blocks returns the shell blocks of a Markdown document, in order; name
// is the document's name for errors. A shell block that is never closed, or
// whose attributes do not parse, is an error naming the line.
func Blocks(name, markdown string) ([]Block, error) {
	var (
		out    []Block
		cur    *Block
		body   strings.Builder
		fence  string // the opening fence of the block being read ("" outside)
		inside bool   // inside any fenced block
	)
	sc := bufio.NewScanner(strings.NewReader(markdown))
	sc.Buffer(nil, 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		trimmed := strings.TrimSpace(text)
		if inside {
			if strings.HasPrefix(trimmed, fence) && strings.TrimLeft(trimmed, "`~") == "" {
				inside = false
				if cur != nil {
					cur.Script = body.String()
					out = append(out, *cur)
					cur = nil
				}
				continue
			}
			if cur != nil {
				body.WriteString(text)
				body.WriteByte('\n')
			}
			continue
		}
		f := fenceOf(trimmed)
		if f == "" {
			continue
		}
		inside, fence = true, f
		info := strings.TrimSpace(trimmed[len(f):])
		lang, attrs, _ := strings.Cut(info, " ")
		if !shellLangs[lang] {
			continue
		}
		b := Block{Line: line}
		if err := parseAttrs(strings.TrimSpace(attrs), &b); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		cur = &b
		body.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if inside && cur != nil {
		return nil, fmt.Errorf("%s:%d: shell block is never closed", name, cur.Line)
	}
	return out, nil
}

// fenceOf returns the fence that opens a code block on this line (``` or
// ~~~, three or more), or "".
func fenceOf(trimmed string) string {
	for _, c := range []string{"`", "~"} {
		n := len(trimmed) - len(strings.TrimLeft(trimmed, c))
		if n >= 3 {
			return trimmed[:n]
		}
	}
	return ""
}

// parseAttrs reads "{name name="value" ...}" into b.
func parseAttrs(s string, b *Block) error {
	if s == "" {
		return nil
	}
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return fmt.Errorf("attributes %q: want them in braces, e.g. {skip=\"why\"}", s)
	}
	s = s[1 : len(s)-1]
	for strings.TrimSpace(s) != "" {
		m := attrRE.FindStringSubmatchIndex(s)
		if m == nil {
			return fmt.Errorf("attributes: cannot parse %q", s)
		}
		name := s[m[2]:m[3]]
		hasValue := m[4] >= 0
		value := ""
		if hasValue {
			value = s[m[4]:m[5]]
		}
		switch {
		case name == "skip" && hasValue && strings.TrimSpace(value) != "":
			b.Skip = value
		case name == "skip":
			return fmt.Errorf(`attribute skip needs a reason: skip="why"`)
		case name == "s3" && !hasValue:
			b.S3 = true
		case name == "slurm" && !hasValue:
			b.Slurm = true
		default:
			return fmt.Errorf("unknown attribute %q (want skip=\"why\", s3 or slurm)", s[m[0]:m[1]])
		}
		s = s[m[1]:]
	}
	return nil
}
