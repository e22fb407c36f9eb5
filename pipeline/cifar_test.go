package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// srcTestRows is everything a source produced, concatenated.
type srcTestRows struct {
	labels, coarse []int16
	images         []byte
}

// srcReadAll reads src to the end in chunks of n rows and checks the
// Source contract on the way: consecutive ids, chunk shapes, reuse of the
// chunk's memory, io.EOF with an empty chunk after the last row, and io.EOF
// again after that.
func srcReadAll(t testing.TB, src Source, n int) srcTestRows {
	t.Helper()
	info := src.Info()
	row := info.Height * info.Width * info.Channels
	var c Chunk
	var out srcTestRows
	var prev *byte // first image byte of the previous chunk
	for next := int64(0); ; {
		err := src.Read(&c, n)
		if err == io.EOF {
			if c.Len() != 0 || len(c.Images) != 0 || len(c.Coarse) != 0 || c.First != next {
				t.Fatalf("at EOF got chunk First %d, %d labels, %d image bytes; want empty at %d", c.First, c.Len(), len(c.Images), next)
			}
			if next != info.Rows {
				t.Fatalf("read %d rows, Info says %d", next, info.Rows)
			}
			break
		}
		if err != nil {
			t.Fatalf("Read at row %d: %v", next, err)
		}
		if c.First != next || c.Len() < 1 || c.Len() > n || len(c.Images) != c.Len()*row {
			t.Fatalf("chunk First %d, %d rows, %d image bytes; want First %d, 1..%d rows of %d bytes",
				c.First, c.Len(), len(c.Images), next, n, row)
		}
		if (info.CoarseClasses > 0) != (c.Coarse != nil) || (c.Coarse != nil && len(c.Coarse) != c.Len()) {
			t.Fatalf("chunk has %d coarse labels (nil %v) for CoarseClasses %d", len(c.Coarse), c.Coarse == nil, info.CoarseClasses)
		}
		if prev != nil && &c.Images[0] != prev {
			t.Fatalf("chunk at row %d reallocated its %d image bytes instead of reusing its capacity", next, len(c.Images))
		}
		prev = &c.Images[0]
		out.labels = append(out.labels, c.Labels...)
		out.coarse = append(out.coarse, c.Coarse...)
		out.images = append(out.images, c.Images...)
		next += int64(c.Len())
	}
	if err := src.Read(&c, n); err != io.EOF || c.Len() != 0 {
		t.Fatalf("Read after EOF: %v with %d rows, want io.EOF", err, c.Len())
	}
	return out
}

// srcCheckRows compares what a source produced with what was written.
func srcCheckRows(t testing.TB, got, want srcTestRows) {
	t.Helper()
	if !slicesEqual16(got.labels, want.labels) {
		t.Fatalf("labels differ: got %d labels %v..., want %d %v...", len(got.labels), head16(got.labels), len(want.labels), head16(want.labels))
	}
	if !slicesEqual16(got.coarse, want.coarse) {
		t.Fatalf("coarse labels differ: got %v..., want %v...", head16(got.coarse), head16(want.coarse))
	}
	if !bytes.Equal(got.images, want.images) {
		i := 0
		for i < min(len(got.images), len(want.images)) && got.images[i] == want.images[i] {
			i++
		}
		t.Fatalf("images differ: %d bytes vs %d written, first difference at byte %d", len(got.images), len(want.images), i)
	}
}

func slicesEqual16(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func head16(s []int16) []int16 { return s[:min(len(s), 8)] }

// srcCheckErr asserts that err is a format error (or wraps target) whose
// message starts with path and contains every fragment.
func srcCheckErr(t testing.TB, err, target error, path string, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one wrapping %v", target)
	}
	t.Log(err)
	if !errors.Is(err, target) {
		t.Fatalf("error %q does not wrap %v", err, target)
	}
	if !strings.HasPrefix(err.Error(), path) {
		t.Fatalf("error %q does not start with the path %s", err, path)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Fatalf("error %q does not mention %q", err, f)
		}
	}
}

// srcTestBoundedMemory opens a source, reads it all in chunks of n rows
// into one reused Chunk and fails if more than limit bytes were allocated
// besides the chunk itself: the input is much larger than limit, so a
// source that loaded it would fail.
func srcTestBoundedMemory(t *testing.T, open func() (Source, error), n int, limit uint64) {
	t.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	src, err := open()
	if err != nil {
		t.Fatal(err)
	}
	var c Chunk
	for err == nil {
		err = src.Read(&c, n)
	}
	if err != io.EOF {
		t.Fatal(err)
	}
	src.Close()
	runtime.ReadMemStats(&after)
	chunk := uint64(cap(c.Images) + 2*cap(c.Labels) + 2*cap(c.Coarse))
	input := src.Info().Rows * int64(src.Info().Height*src.Info().Width*src.Info().Channels)
	alloc := after.TotalAlloc - before.TotalAlloc - chunk
	t.Logf("read %d image bytes allocating %d bytes besides the %d-byte chunk", input, alloc, chunk)
	if alloc > limit || uint64(input) < 2*limit {
		t.Fatalf("allocated %d bytes besides the chunk reading %d image bytes; want at most %d (and input above %d)",
			alloc, input, limit, 2*limit)
	}
}

// cifarTestWrite writes files CIFAR files of recs records each (CIFAR-100
// layout when hundred) with random labels in range, and returns their
// paths and the rows a source must produce, images converted to HWC.
func cifarTestWrite(t testing.TB, dir string, hundred bool, files, recs int, seed uint64) ([]string, srcTestRows) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var paths []string
	var want srcTestRows
	for f := range files {
		var data []byte
		for range recs {
			img := make([]byte, cifarImage)
			for i := range img {
				img[i] = byte(rng.IntN(256))
			}
			if hundred {
				coarse, fine := rng.IntN(20), rng.IntN(100)
				data = append(data, byte(coarse), byte(fine))
				want.coarse = append(want.coarse, int16(coarse))
				want.labels = append(want.labels, int16(fine))
			} else {
				label := rng.IntN(10)
				data = append(data, byte(label))
				want.labels = append(want.labels, int16(label))
			}
			data = append(data, img...)
			want.images = append(want.images, cifarNaiveHWC(img)...)
		}
		p := filepath.Join(dir, fmt.Sprintf("data_batch_%d.bin", f+1))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths, want
}

// cifarNaiveHWC is the obvious CHW to HWC conversion that cifarToHWC must
// match.
func cifarNaiveHWC(chw []byte) []byte {
	out := make([]byte, cifarImage)
	for y := range cifarSide {
		for x := range cifarSide {
			for ch := range 3 {
				out[(y*cifarSide+x)*3+ch] = chw[ch*cifarPlane+y*cifarSide+x]
			}
		}
	}
	return out
}

func TestCIFARToHWC(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	src := make([]byte, cifarImage)
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	dst := make([]byte, cifarImage)
	cifarToHWC(dst, src)
	if !bytes.Equal(dst, cifarNaiveHWC(src)) {
		t.Fatal("cifarToHWC differs from the naive conversion")
	}
}

func TestCIFARRoundTrip(t *testing.T) {
	for _, hundred := range []bool{false, true} {
		dir := t.TempDir()
		paths, want := cifarTestWrite(t, dir, hundred, 3, 7, 42)
		for _, batch := range []int{cifarBatch, 3, 7, 1} {
			for _, n := range []int{1, 2, 5, 7, 8, 21, 100} {
				t.Run(fmt.Sprintf("cifar100=%v/batch=%d/n=%d", hundred, batch, n), func(t *testing.T) {
					open := OpenCIFAR10
					if hundred {
						open = OpenCIFAR100
					}
					src, err := open(paths...)
					if err != nil {
						t.Fatal(err)
					}
					defer src.Close()
					src.(*cifarSource).batch = batch
					info := src.Info()
					wantInfo := Info{Format: "cifar10", Height: 32, Width: 32, Channels: 3, Classes: 10, Rows: 21}
					if hundred {
						wantInfo.Format, wantInfo.Classes, wantInfo.CoarseClasses = "cifar100", 100, 20
					}
					wantInfo.Files = info.Files
					if fmt.Sprint(info) != fmt.Sprint(wantInfo) || strings.Join(info.Files, ",") != strings.Join(paths, ",") {
						t.Fatalf("Info %+v, want %+v with files %v", info, wantInfo, paths)
					}
					srcCheckRows(t, srcReadAll(t, src, n), want)
				})
			}
		}
	}
}

func TestCIFARChunkReuse(t *testing.T) {
	paths, _ := cifarTestWrite(t, t.TempDir(), true, 1, 9, 1)
	src, err := OpenCIFAR100(paths...)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var c Chunk
	if err := src.Read(&c, 4); err != nil {
		t.Fatal(err)
	}
	img, lab, coarse := &c.Images[0], &c.Labels[0], &c.Coarse[0]
	if err := src.Read(&c, 4); err != nil {
		t.Fatal(err)
	}
	if &c.Images[0] != img || &c.Labels[0] != lab || &c.Coarse[0] != coarse {
		t.Fatal("second Read of the same size reallocated the chunk's slices")
	}
	if err := src.Read(&c, 4); err != nil || c.Len() != 1 || &c.Images[0] != img {
		t.Fatalf("last Read: %v, %d rows, reused %v", err, c.Len(), c.Len() > 0 && &c.Images[0] == img)
	}
	if err := src.Read(&c, 0); err == nil {
		t.Fatal("Read with n = 0 succeeded")
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.Read(&c, 4); err == nil || err == io.EOF || c.Len() != 0 {
		t.Fatalf("Read after Close: %v with %d rows, want an error", err, c.Len())
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCIFARBoundedMemory(t *testing.T) {
	paths, _ := cifarTestWrite(t, t.TempDir(), false, 2, 1500, 3)
	srcTestBoundedMemory(t, func() (Source, error) { return OpenCIFAR10(paths...) }, 64, 3<<20)
}

func TestCIFAROpenErrors(t *testing.T) {
	dir := t.TempDir()
	good, _ := cifarTestWrite(t, dir, false, 1, 2, 5)
	odd := filepath.Join(dir, "odd.bin")
	os.WriteFile(odd, make([]byte, 2*cifar10Rec+100), 0o644)
	empty := filepath.Join(dir, "empty.bin")
	os.WriteFile(empty, nil, 0o644)
	missing := filepath.Join(dir, "missing.bin")
	for _, tc := range []struct {
		name      string
		hundred   bool
		paths     []string
		target    error
		bad       string
		fragments []string
	}{
		{"missing", false, []string{good[0], missing}, fs.ErrNotExist, missing, nil},
		{"partial record", false, []string{good[0], odd}, ErrFormat, odd,
			[]string{"6246 bytes", "3073-byte", "100 bytes", "byte offset 6146"}},
		{"cifar10 file as cifar100", true, good, ErrFormat, good[0],
			[]string{"6146 bytes", "3074-byte", "byte offset 3074"}},
		{"empty", false, []string{empty}, ErrFormat, empty, []string{"file is empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := OpenCIFAR10
			if tc.hundred {
				open = OpenCIFAR100
			}
			src, err := open(tc.paths...)
			if err == nil {
				src.Close()
			}
			srcCheckErr(t, err, tc.target, tc.bad, tc.fragments...)
		})
	}
	if _, err := OpenCIFAR10(); err == nil {
		t.Fatal("OpenCIFAR10 with no files succeeded")
	}
}

func TestCIFARLabelErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		hundred   bool
		at        int // byte within the record
		value     byte
		fragments []string
	}{
		{"cifar10 label", false, 0, 10, []string{"record 3 (id 10)", "label 10", "byte offset 9219", "[0, 10)"}},
		{"cifar100 coarse", true, 0, 20, []string{"record 3 (id 10)", "coarse label 20", "byte offset 9222", "[0, 20)"}},
		{"cifar100 fine", true, 1, 255, []string{"record 3 (id 10)", "label 255", "byte offset 9223", "[0, 100)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			paths, _ := cifarTestWrite(t, t.TempDir(), tc.hundred, 3, 7, 9)
			data, _ := os.ReadFile(paths[1])
			rec := cifar10Rec
			if tc.hundred {
				rec = cifar100Rec
			}
			data[3*rec+tc.at] = tc.value
			os.WriteFile(paths[1], data, 0o644)
			open := OpenCIFAR10
			if tc.hundred {
				open = OpenCIFAR100
			}
			src, err := open(paths...)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			var c Chunk
			if err := src.Read(&c, 9); err != nil || c.Len() != 9 {
				t.Fatalf("first chunk: %v, %d rows", err, c.Len())
			}
			err = src.Read(&c, 9)
			srcCheckErr(t, err, ErrFormat, paths[1], tc.fragments...)
			if c.Len() != 0 {
				t.Fatalf("failed Read left %d rows in the chunk", c.Len())
			}
			if err2 := src.Read(&c, 9); err2 != err {
				t.Fatalf("Read after an error returned %v, want the same error", err2)
			}
		})
	}
}

func TestCIFARShrunkAfterOpen(t *testing.T) {
	paths, _ := cifarTestWrite(t, t.TempDir(), false, 2, 7, 11)
	src, err := OpenCIFAR10(paths...)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := os.Truncate(paths[1], 4*cifar10Rec+10); err != nil {
		t.Fatal(err)
	}
	var c Chunk
	for err == nil {
		err = src.Read(&c, 5)
	}
	srcCheckErr(t, err, ErrFormat, paths[1], "within record 4 (id 11)", "byte offset 12302")
}

func FuzzCIFARRecords(f *testing.F) {
	rec := make([]byte, cifar100Rec)
	for i := range rec {
		rec[i] = byte(i * 7)
	}
	rec[0], rec[1] = 3, 4
	f.Add(bytes.Repeat(rec[:cifar10Rec], 2), false)
	f.Add(bytes.Repeat(rec, 3), true)
	f.Add(rec, false)
	f.Add([]byte{10}, false)
	// The input is read from memory, not a file: thousands of files a
	// second make the disk, not the code, the bottleneck.
	const p = "batch.bin"
	f.Fuzz(func(t *testing.T, data []byte, hundred bool) {
		src, size := cifarNew("cifar10", cifar10Rec, 10, 0), cifar10Rec
		if hundred {
			src, size = cifarNew("cifar100", cifar100Rec, 100, cifar100Coarse), cifar100Rec
		}
		defer src.Close()
		if err := src.add(p, bytes.NewReader(data), io.NopCloser(nil), int64(len(data))); err != nil {
			srcCheckErr(t, err, ErrFormat, p)
			return
		}
		if src.Info().Rows*int64(size) != int64(len(data)) {
			t.Fatalf("%d rows from %d bytes", src.Info().Rows, len(data))
		}
		var c Chunk
		for i := 0; ; i += c.Len() {
			err := src.Read(&c, 2)
			if err == io.EOF {
				return
			}
			if err != nil {
				srcCheckErr(t, err, ErrFormat, p, "outside")
				return
			}
			for j := range c.Len() {
				r := data[(i+j)*size:][:size]
				if want := cifarNaiveHWC(r[size-cifarImage:]); !bytes.Equal(want, c.Images[j*cifarImage:][:cifarImage]) {
					t.Fatalf("row %d image differs", i+j)
				}
				if int(c.Labels[j]) != int(r[size-cifarImage-1]) {
					t.Fatalf("row %d label %d, want %d", i+j, c.Labels[j], r[size-cifarImage-1])
				}
			}
		}
	})
}

func BenchmarkCIFARRead(b *testing.B) {
	paths, want := cifarTestWrite(b, b.TempDir(), false, 2, 4000, 1)
	b.SetBytes(int64(len(want.images)))
	var c Chunk
	for b.Loop() {
		src, err := OpenCIFAR10(paths...)
		if err != nil {
			b.Fatal(err)
		}
		for err == nil {
			err = src.Read(&c, 1024)
		}
		if err != io.EOF {
			b.Fatal(err)
		}
		src.Close()
	}
}

func BenchmarkCIFARToHWC(b *testing.B) {
	src, dst := make([]byte, cifarImage), make([]byte, cifarImage)
	b.SetBytes(cifarImage)
	for b.Loop() {
		cifarToHWC(dst, src)
	}
}
