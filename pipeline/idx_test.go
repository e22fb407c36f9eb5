package pipeline

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// idxTestBytes returns an IDX file: magic, big-endian dimensions, data.
func idxTestBytes(magic uint32, dims []uint32, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, magic)
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, data...)
}

// idxTestGzip compresses b with the standard library's gzip writer.
func idxTestGzip(b []byte) []byte {
	var buf bytes.Buffer
	w := stdgzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// idxTestPair writes an image and a label file of n random h x w images
// (gzipped as asked) and returns their paths and the expected rows.
func idxTestPair(t testing.TB, dir string, n, h, w int, gzImages, gzLabels bool, seed uint64) (string, string, srcTestRows) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 2))
	want := srcTestRows{images: make([]byte, n*h*w)}
	for i := range want.images {
		want.images[i] = byte(rng.Uint32())
	}
	labels := make([]byte, n)
	for i := range labels {
		labels[i] = byte(rng.IntN(10))
		want.labels = append(want.labels, int16(labels[i]))
	}
	img := idxTestBytes(idxImageMagic, []uint32{uint32(n), uint32(h), uint32(w)}, want.images)
	lab := idxTestBytes(idxLabelMagic, []uint32{uint32(n)}, labels)
	ip, lp := filepath.Join(dir, "images-idx3-ubyte"), filepath.Join(dir, "labels-idx1-ubyte")
	if gzImages {
		img, ip = idxTestGzip(img), ip+".gz"
	}
	if gzLabels {
		lab, lp = idxTestGzip(lab), lp+".gz"
	}
	if err := os.WriteFile(ip, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lp, lab, 0o644); err != nil {
		t.Fatal(err)
	}
	return ip, lp, want
}

func TestIDXRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		n, h, w            int
		gzImages, gzLabels bool
	}{
		{100, 28, 28, false, false},
		{100, 28, 28, true, true},
		{100, 28, 28, true, false},
		{33, 5, 7, false, true},
		{3000, 28, 28, true, true}, // crosses the 1 MiB read-ahead
	} {
		ip, lp, want := idxTestPair(t, t.TempDir(), tc.n, tc.h, tc.w, tc.gzImages, tc.gzLabels, uint64(tc.n))
		for _, n := range []int{1, 7, 100, 1 << 20} {
			t.Run(fmt.Sprintf("%dx%dx%d/gz=%v,%v/n=%d", tc.n, tc.h, tc.w, tc.gzImages, tc.gzLabels, n), func(t *testing.T) {
				src, err := OpenIDX(ip, lp)
				if err != nil {
					t.Fatal(err)
				}
				defer src.Close()
				info := src.Info()
				if info.Format != "idx" || info.Rows != int64(tc.n) || info.Height != tc.h || info.Width != tc.w ||
					info.Channels != 1 || info.Classes != 10 || info.CoarseClasses != 0 ||
					len(info.Files) != 2 || info.Files[0] != ip || info.Files[1] != lp {
					t.Fatalf("Info %+v", info)
				}
				srcCheckRows(t, srcReadAll(t, src, n), want)
			})
		}
	}
}

// TestIDXFashionMNIST reads the Fashion-MNIST files of the Debian package
// dataset-fashion-mnist and compares them with an independent decoding by
// the standard library. The files are a test dependency: no skipping.
func TestIDXFashionMNIST(t *testing.T) {
	const dir = "/usr/share/datasets/fashion-mnist"
	for _, tc := range []struct {
		prefix string
		rows   int64
	}{{"train", 60000}, {"t10k", 10000}} {
		t.Run(tc.prefix, func(t *testing.T) {
			ip := filepath.Join(dir, tc.prefix+"-images-idx3-ubyte.gz")
			lp := filepath.Join(dir, tc.prefix+"-labels-idx1-ubyte.gz")
			want := srcTestRows{images: idxTestGunzip(t, ip)[16:]}
			for _, l := range idxTestGunzip(t, lp)[8:] {
				want.labels = append(want.labels, int16(l))
			}
			src, err := OpenIDX(ip, lp)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			info := src.Info()
			if info.Rows != tc.rows || info.Height != 28 || info.Width != 28 || info.Channels != 1 || info.Classes != 10 {
				t.Fatalf("Info %+v, want %d rows of 28x28x1", info, tc.rows)
			}
			if int64(len(want.images)) != tc.rows*28*28 {
				t.Fatalf("independent decoding has %d pixel bytes", len(want.images))
			}
			srcCheckRows(t, srcReadAll(t, src, 4096), want)
		})
	}
	t.Run("bounded memory", func(t *testing.T) {
		srcTestBoundedMemory(t, func() (Source, error) {
			return OpenIDX(filepath.Join(dir, "train-images-idx3-ubyte.gz"), filepath.Join(dir, "train-labels-idx1-ubyte.gz"))
		}, 256, 4<<20)
	})
}

// idxTestGunzip decompresses a whole file with the standard library.
func idxTestGunzip(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := stdgzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIDXOpenErrors(t *testing.T) {
	dir := t.TempDir()
	pixels := make([]byte, 10*4*4)
	labels := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 0}
	files := map[string][]byte{
		"img":          idxTestBytes(idxImageMagic, []uint32{10, 4, 4}, pixels),
		"img.gz":       idxTestGzip(idxTestBytes(idxImageMagic, []uint32{10, 4, 4}, pixels)),
		"lab":          idxTestBytes(idxLabelMagic, []uint32{10}, labels),
		"lab9":         idxTestBytes(idxLabelMagic, []uint32{9}, labels[:9]),
		"img_2d":       idxTestBytes(0x00000802, []uint32{10, 16}, pixels),
		"img_float":    idxTestBytes(0x00000d03, []uint32{10, 4, 4}, pixels),
		"img_zero":     idxTestBytes(idxImageMagic, []uint32{10, 0, 4}, nil),
		"img_short":    idxTestBytes(idxImageMagic, []uint32{10, 4, 4}, pixels[:6*16+5]),
		"img_long":     idxTestBytes(idxImageMagic, []uint32{10, 4, 4}, append(pixels, 1, 2, 3)),
		"lab_short":    idxTestBytes(idxLabelMagic, []uint32{10}, labels[:4]),
		"img_huge.gz":  idxTestGzip(idxTestBytes(idxImageMagic, []uint32{1 << 31, 4096, 4096}, pixels)),
		"img_wide":     idxTestBytes(idxImageMagic, []uint32{10, 1 << 16, 1 << 16}, pixels),
		"img_cut_head": idxTestBytes(idxImageMagic, []uint32{10}, nil)[:6],
		"img_bad.gz":   []byte("\x1f\x8b\x08\x00garbage"),
		"img_cut.gz":   idxTestGzip(idxTestBytes(idxImageMagic, []uint32{10, 4, 4}, pixels))[:15],
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, images, labels string
		target               error
		bad                  string // the file the error must start with
		fragments            []string
	}{
		{"missing images", "nope", "lab", fs.ErrNotExist, "nope", nil},
		{"missing labels", "img", "nope", fs.ErrNotExist, "nope", nil},
		{"swapped", "lab", "img", ErrFormat, "lab", []string{"IDX magic 0x00000801 at byte offset 0 of the file, want 0x00000803", "swapped"}},
		{"2-D images", "img_2d", "lab", ErrFormat, "img_2d", []string{"magic 0x00000802"}},
		{"float images", "img_float", "lab", ErrFormat, "img_float", []string{"magic 0x00000d03"}},
		{"3-D labels", "img", "img.gz", ErrFormat, "img.gz", []string{"magic 0x00000803 at byte offset 0 of the decompressed gzip stream, want 0x00000801"}},
		{"zero height", "img_zero", "lab", ErrFormat, "img_zero", []string{"dimension 1 at byte offset 8 is 0"}},
		{"count mismatch", "img", "lab9", ErrFormat, "lab9", []string{"declares 9 labels at byte offset 4", "declares 10 images"}},
		{"short raw images", "img_short", "lab", ErrFormat, "img_short",
			[]string{"file has 117 bytes", "10 records of 16 bytes (176 bytes with the header)", "data ends within record 6 at byte offset 117"}},
		{"long raw images", "img_long", "lab", ErrFormat, "img_long", []string{"3 bytes of trailing data at byte offset 176 after the last of 10 records"}},
		{"short raw labels", "img", "lab_short", ErrFormat, "lab_short", []string{"file has 12 bytes", "data ends within record 4"}},
		{"absurd gzip", "img_huge.gz", "lab", ErrFormat, "img_huge.gz", []string{"more than a", "gzip file can hold"}},
		{"absurd image size", "img_wide", "lab", ErrFormat, "img_wide", []string{"65536x65536"}},
		{"cut header", "img_cut_head", "lab", ErrFormat, "img_cut_head", []string{"ends at byte offset 6, within the 16-byte IDX header"}},
		{"bad gzip", "img_bad.gz", "lab", ErrFormat, "img_bad.gz", []string{"gzip"}},
		{"cut gzip header", "img_cut.gz", "lab", ErrFormat, "img_cut.gz", []string{"within the 16-byte IDX header"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := OpenIDX(filepath.Join(dir, tc.images), filepath.Join(dir, tc.labels))
			if err == nil {
				src.Close()
			}
			srcCheckErr(t, err, tc.target, filepath.Join(dir, tc.bad), tc.fragments...)
		})
	}
}

func TestIDXReadErrors(t *testing.T) {
	dir := t.TempDir()
	pixels := make([]byte, 10*4*4)
	for i := range pixels {
		pixels[i] = byte(i * 31)
	}
	labels := []byte{1, 2, 3, 4, 5, 6, 7, 12, 9, 0}
	good := idxTestBytes(idxImageMagic, []uint32{10, 4, 4}, pixels)
	crc := idxTestGzip(good)
	crc[len(crc)-6] ^= 0xff // CRC-32 in the gzip trailer
	files := map[string][]byte{
		"img":        good,
		"img_cut.gz": idxTestGzip(good[:16+6*16+5]),
		"img_half.gz": func() []byte {
			noise := make([]byte, 1000*16) // incompressible, so the cut falls in the data
			rng := rand.New(rand.NewPCG(1, 1))
			for i := range noise {
				noise[i] = byte(rng.Uint32())
			}
			gz := idxTestGzip(idxTestBytes(idxImageMagic, []uint32{1000, 4, 4}, noise))
			return gz[:len(gz)/2]
		}(),
		"img_long.gz": idxTestGzip(append(good, 0)),
		"img_crc.gz":  crc,
		"lab_bad":     idxTestBytes(idxLabelMagic, []uint32{10}, labels),
		"lab_bad.gz":  idxTestGzip(idxTestBytes(idxLabelMagic, []uint32{10}, labels)),
		"lab":         idxTestBytes(idxLabelMagic, []uint32{10}, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 0}),
		"lab1000":     idxTestBytes(idxLabelMagic, []uint32{1000}, make([]byte, 1000)),
		"lab_cut.gz":  idxTestGzip(idxTestBytes(idxLabelMagic, []uint32{10}, []byte{1, 2, 3})),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, images, labels string
		bad                  string
		fragments            []string
	}{
		{"raw label", "img", "lab_bad", "lab_bad", []string{"record 7 (id 7): label 12 at byte offset 15 of the file is outside [0, 10)"}},
		{"gz label", "img", "lab_bad.gz", "lab_bad.gz", []string{"record 7 (id 7): label 12 at byte offset 15 of the decompressed gzip stream"}},
		{"cut gz images", "img_cut.gz", "lab", "img_cut.gz",
			[]string{"data ends within record 6 (id 6) at byte offset 117 of the decompressed gzip stream; the header declares 10 records", "unexpected EOF"}},
		{"truncated gz file", "img_half.gz", "lab1000", "img_half.gz", []string{"data ends within record", "unexpected EOF"}},
		{"cut gz labels", "img", "lab_cut.gz", "lab_cut.gz", []string{"data ends within record 3 (id 3) at byte offset 11"}},
		{"trailing gz data", "img_long.gz", "lab", "img_long.gz", []string{"trailing data in the decompressed gzip stream after the last of 10 records"}},
		{"gz checksum", "img_crc.gz", "lab", "img_crc.gz", []string{"after the last of 10 records", "checksum"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := OpenIDX(filepath.Join(dir, tc.images), filepath.Join(dir, tc.labels))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			var c Chunk
			for err == nil {
				err = src.Read(&c, 4)
			}
			srcCheckErr(t, err, ErrFormat, filepath.Join(dir, tc.bad), tc.fragments...)
			if c.Len() != 0 {
				t.Fatalf("failed Read left %d rows", c.Len())
			}
		})
	}
}

func FuzzIDXHeader(f *testing.F) {
	img := idxTestBytes(idxImageMagic, []uint32{2, 2, 3}, []byte("abcdefghijkl"))
	lab := idxTestBytes(idxLabelMagic, []uint32{2}, []byte{4, 9})
	f.Add(img, lab)
	f.Add(idxTestGzip(img), idxTestGzip(lab))
	f.Add(img[:10], lab)
	f.Add(lab, img)
	const ip, lp = "img", "lab" // read from memory, see FuzzCIFARRecords
	f.Fuzz(func(t *testing.T, img, lab []byte) {
		var src Source
		x, err := idxRead(ip, bytes.NewReader(img), io.NopCloser(nil), int64(len(img)), idxImageMagic, 3)
		if err == nil {
			var y *idxFile
			if y, err = idxRead(lp, bytes.NewReader(lab), io.NopCloser(nil), int64(len(lab)), idxLabelMagic, 1); err == nil {
				src, err = idxNew(x, y)
			}
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), ip) && !strings.HasPrefix(err.Error(), lp) {
				t.Fatalf("error %q names neither file", err)
			}
			srcCheckErr(t, err, ErrFormat, "")
			return
		}
		defer src.Close()
		var c Chunk
		for err == nil {
			err = src.Read(&c, 3)
		}
		if err != io.EOF {
			srcCheckErr(t, err, ErrFormat, "")
		}
	})
}

func BenchmarkIDXReadGzip(b *testing.B) {
	const dir = "/usr/share/datasets/fashion-mnist"
	b.SetBytes(60000 * 28 * 28)
	var c Chunk
	for b.Loop() {
		src, err := OpenIDX(filepath.Join(dir, "train-images-idx3-ubyte.gz"), filepath.Join(dir, "train-labels-idx1-ubyte.gz"))
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
