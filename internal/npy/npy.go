// Package npy reads numpy .npy headers: the magic, the version, and the dict
// of dtype, order and shape, refusing what would make a reader over-allocate.
package npy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Magic starts every .npy file.
const Magic = "\x93NUMPY"

// maxHeader bounds the header length read from a .npy preamble, so a
// corrupt length never makes us allocate more than this before parsing.
const maxHeader = 1 << 20

// DType is a parsed numpy dtype string such as '<i8' or '|u1'.
type DType struct {
	Kind byte // 'i' signed integer, 'u' unsigned integer, 'f' float, 'b' bool...
	Size int  // bytes per element
	Big  bool // big-endian; false for little-endian and single-byte types
	Str  string
}

// Header is the decoded header of a .npy array.
type Header struct {
	DType   DType
	Fortran bool
	Shape   []int64
	Len     int64 // bytes before the array data: magic, version, length and dict
}

// Count returns the number of elements of shape, or false when the
// product overflows limit.
func Count(shape []int64, limit int64) (int64, bool) {
	n := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(n, uint64(d))
		if d < 0 || hi != 0 || lo > uint64(limit) {
			return 0, false
		}
		n = lo
	}
	return int64(n), true
}

// ReadHeader reads and parses a .npy header from r. size is the number of
// bytes available in r; the header must fit in it, and it is never trusted to
// allocate more than maxHeader bytes. Errors say what is wrong without a
// file name; callers add it.
func ReadHeader(r io.Reader, size int64) (Header, error) {
	var pre [10]byte
	if size < int64(len(pre)) {
		return Header{}, fmt.Errorf("%d bytes is too short for a .npy header", size)
	}
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return Header{}, fmt.Errorf("reading .npy preamble: %w", err)
	}
	if string(pre[:6]) != Magic {
		return Header{}, fmt.Errorf("bad .npy magic %q at byte offset 0, want %q", pre[:6], Magic)
	}
	var hlen, start int64
	switch pre[6] {
	case 1:
		hlen, start = int64(binary.LittleEndian.Uint16(pre[8:10])), 10
	case 2, 3:
		var more [2]byte
		if size < 12 {
			return Header{}, fmt.Errorf("%d bytes is too short for a version %d.%d .npy header", size, pre[6], pre[7])
		}
		if _, err := io.ReadFull(r, more[:]); err != nil {
			return Header{}, fmt.Errorf("reading .npy preamble: %w", err)
		}
		hlen = int64(binary.LittleEndian.Uint32([]byte{pre[8], pre[9], more[0], more[1]}))
		start = 12
	default:
		return Header{}, fmt.Errorf("unsupported .npy version %d.%d at byte offset 6", pre[6], pre[7])
	}
	if hlen > maxHeader || hlen > size-start {
		return Header{}, fmt.Errorf("header length %d at byte offset 8 exceeds the %d bytes available", hlen, min(size-start, maxHeader))
	}
	dict := make([]byte, hlen)
	if _, err := io.ReadFull(r, dict); err != nil {
		return Header{}, fmt.Errorf("reading %d-byte .npy header: %w", hlen, err)
	}
	h, err := parseDict(string(dict), pre[6] < 3)
	if err != nil {
		return Header{}, fmt.Errorf("header at byte offset %d: %w", start, err)
	}
	h.Len = start + hlen
	return h, nil
}

// parseDict parses the Python dict literal of a .npy header, e.g.
// "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 4), }". Python 2's
// long suffix (3L) is accepted in versions 1 and 2 only, as numpy does.
func parseDict(s string, long bool) (Header, error) {
	p := lexer{s: s, long: long}
	var h Header
	seen := map[string]bool{}
	if !p.eat('{') {
		return h, errors.New("header is not a dict literal")
	}
	for !p.eat('}') {
		key, err := p.str()
		if err != nil {
			return h, fmt.Errorf("dict key: %w", err)
		}
		if seen[key] {
			return h, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		if !p.eat(':') {
			return h, fmt.Errorf("missing ':' after key %q", key)
		}
		switch key {
		case "descr":
			d, err := p.str()
			if err != nil {
				return h, fmt.Errorf("'descr' (only simple dtypes are supported): %w", err)
			}
			if h.DType, err = parseDType(d); err != nil {
				return h, err
			}
		case "fortran_order":
			if h.Fortran, err = p.boolean(); err != nil {
				return h, fmt.Errorf("'fortran_order': %w", err)
			}
		case "shape":
			if h.Shape, err = p.tuple(); err != nil {
				return h, fmt.Errorf("'shape': %w", err)
			}
		default:
			return h, fmt.Errorf("unexpected key %q", key)
		}
		if !p.eat(',') && !p.peek('}') {
			return h, fmt.Errorf("missing ',' or '}' after %q at %d", key, p.i)
		}
	}
	if rest := strings.TrimSpace(s[p.i:]); rest != "" {
		return h, fmt.Errorf("trailing text %q after the dict", rest)
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return h, fmt.Errorf("missing key %q", k)
		}
	}
	return h, nil
}

// parseDType parses a simple numpy type string: a byte-order character
// ('<', '>' or '|'), a kind letter and a size in bytes. Only the numeric
// kinds (bool, integers, floats, complex) are taken: for others, such as
// unicode strings, numpy's number is not a size in bytes.
func parseDType(d string) (DType, error) {
	if len(d) < 3 {
		return DType{}, fmt.Errorf("unsupported dtype %q", d)
	}
	size, err := strconv.Atoi(d[2:])
	if err != nil || size <= 0 || size > 64 {
		return DType{}, fmt.Errorf("unsupported dtype %q", d)
	}
	if strings.IndexByte("biufc", d[1]) < 0 {
		return DType{}, fmt.Errorf("unsupported dtype %q: not a number type", d)
	}
	t := DType{Kind: d[1], Size: size, Big: d[0] == '>', Str: d}
	switch {
	case d[0] == '|' && size == 1, d[0] == '<', d[0] == '>':
	default:
		return DType{}, fmt.Errorf("unsupported byte order in dtype %q", d)
	}
	if size == 1 {
		t.Big = false
	}
	return t, nil
}

// lexer scans the restricted Python literal syntax of .npy headers.
type lexer struct {
	s    string
	i    int
	long bool // accept the long suffix 3L
}

func (p *lexer) skip() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *lexer) peek(c byte) bool {
	p.skip()
	return p.i < len(p.s) && p.s[p.i] == c
}

func (p *lexer) eat(c byte) bool {
	if p.peek(c) {
		p.i++
		return true
	}
	return false
}

// str scans a quoted string without escapes.
func (p *lexer) str() (string, error) {
	p.skip()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", fmt.Errorf("expected a string at %d", p.i)
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", fmt.Errorf("unterminated string at %d", p.i)
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.IndexByte(v, '\\') >= 0 {
		return "", fmt.Errorf("escaped string at %d", p.i)
	}
	p.i += end + 2
	return v, nil
}

func (p *lexer) boolean() (bool, error) {
	p.skip()
	switch {
	case strings.HasPrefix(p.s[p.i:], "True"):
		p.i += len("True")
		return true, nil
	case strings.HasPrefix(p.s[p.i:], "False"):
		p.i += len("False")
		return false, nil
	}
	return false, fmt.Errorf("expected True or False at %d", p.i)
}

// tuple scans a tuple of non-negative integers such as (), (5,) or (2, 3L).
func (p *lexer) tuple() ([]int64, error) {
	if !p.eat('(') {
		return nil, fmt.Errorf("expected a tuple at %d", p.i)
	}
	var dims []int64
	comma := false
	for !p.eat(')') {
		p.skip()
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		v, err := strconv.ParseInt(p.s[p.i:j], 10, 64)
		if err != nil || v > math.MaxInt64/2 {
			return nil, fmt.Errorf("bad dimension %q at %d", p.s[p.i:j], p.i)
		}
		if p.long && j < len(p.s) && p.s[j] == 'L' { // Python 2 long suffix
			j++
		}
		p.i = j
		if len(dims) == 32 {
			return nil, errors.New("more than 32 dimensions")
		}
		dims = append(dims, v)
		if comma = p.eat(','); !comma && !p.peek(')') {
			return nil, fmt.Errorf("expected ',' or ')' at %d", p.i)
		}
	}
	if len(dims) == 1 && !comma {
		return nil, fmt.Errorf("(%d) is a number, not a tuple: a one-dimensional shape is written (%d,)", dims[0], dims[0])
	}
	return dims, nil
}
