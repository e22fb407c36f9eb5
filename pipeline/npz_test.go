package pipeline

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"certmix/internal/npy"
	"certmix/shards"
)

// npzTestPython runs a numpy script with /usr/bin/python3; numpy
// (python3-numpy) is a test dependency, so its absence fails the test.
func npzTestPython(t testing.TB, script string, args ...string) {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", append([]string{"-c", script}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python3 (numpy) failed: %v\n%s", err, out)
	}
}

// npzTestGoodScript writes, for each variant, <name>.npz with a random
// uint8 image array and integer labels of the given dtype, plus the raw
// bytes a reader must return: <name>.image.raw and <name>.label.raw (int64).
const npzTestGoodScript = `
import io, json, sys, zipfile
import numpy as np
out = sys.argv[1]
for v in json.loads(sys.argv[2]):
    rng = np.random.default_rng(v['seed'])
    img = rng.integers(0, 256, size=tuple(v['shape']), dtype=np.uint8)
    lab = rng.integers(0, v['classes'], size=v['shape'][0]).astype(v['dtype'])
    p = out + '/' + v['name']
    img.tofile(p + '.image.raw')
    lab.astype('<i8').tofile(p + '.label.raw')
    w = v['writer']
    if w == 'savez':
        np.savez(p + '.npz', image=img, label=lab)
    elif w == 'savez_compressed':
        np.savez_compressed(p + '.npz', image=img, label=lab)
    else:  # .npy format version 2.0 or 3.0 headers
        ver = (2, 0) if w == 'v2' else (3, 0)
        with zipfile.ZipFile(p + '.npz', 'w', compression=zipfile.ZIP_DEFLATED) as z:
            for key, arr in (('image', img), ('label', lab)):
                b = io.BytesIO()
                np.lib.format.write_array(b, arr, version=ver)
                z.writestr(key + '.npy', b.getvalue())
`

type npzTestVariant struct {
	Name    string `json:"name"`
	Writer  string `json:"writer"`
	Shape   []int  `json:"shape"`
	DType   string `json:"dtype"`
	Classes int    `json:"classes"`
	Seed    int    `json:"seed"`
}

func TestNPZRoundTrip(t *testing.T) {
	variants := []npzTestVariant{
		{"stored_i8", "savez", []int{5000, 32, 32, 3}, "<i8", 10, 1},
		{"deflated_be_i4", "savez_compressed", []int{5000, 32, 32, 3}, ">i4", 10, 2},
		{"stored_u1", "savez", []int{300, 28, 28, 1}, "|u1", 10, 3},
		{"stored_be_i4", "savez", []int{300, 32, 32, 3}, ">i4", 100, 4},
		{"deflated_be_u2", "savez_compressed", []int{300, 5, 7, 2}, ">u2", 100, 5},
		{"stored_i1", "savez", []int{257, 4, 4, 3}, "|i1", 10, 6},
		{"stored_i2", "savez", []int{100, 3, 3, 3}, "<i2", 10, 7},
		{"deflated_u4", "savez_compressed", []int{100, 3, 3, 3}, "<u4", 10, 8},
		{"deflated_be_u8", "savez_compressed", []int{100, 3, 3, 3}, ">u8", 10, 9},
		{"stored_be_i8", "savez", []int{100, 3, 3, 3}, ">i8", 10, 10},
		{"npy_v2", "v2", []int{100, 6, 6, 3}, "<i4", 10, 11},
		{"npy_v3", "v3", []int{100, 6, 6, 3}, "<i8", 10, 12},
	}
	dir := t.TempDir()
	spec, _ := json.Marshal(variants)
	npzTestPython(t, npzTestGoodScript, dir, string(spec))
	for _, v := range variants {
		p := filepath.Join(dir, v.Name)
		want := npzTestExpected(t, p)
		for _, n := range []int{1, 64, 1000, 1 << 20} {
			if n == 1 && v.Shape[0] > 1000 {
				continue
			}
			t.Run(fmt.Sprintf("%s/n=%d", v.Name, n), func(t *testing.T) {
				src, err := OpenNPZ(p+".npz", v.Classes)
				if err != nil {
					t.Fatal(err)
				}
				defer src.Close()
				info := src.Info()
				if info.Format != "npz" || info.Rows != int64(v.Shape[0]) || info.Height != v.Shape[1] ||
					info.Width != v.Shape[2] || info.Channels != v.Shape[3] || info.Classes != v.Classes ||
					info.CoarseClasses != 0 || len(info.Files) != 1 || info.Files[0] != p+".npz" {
					t.Fatalf("Info %+v does not match variant %+v", info, v)
				}
				srcCheckRows(t, srcReadAll(t, src, n), want)
			})
		}
		if v.Shape[0] >= 5000 {
			t.Run(v.Name+"/bounded memory", func(t *testing.T) {
				srcTestBoundedMemory(t, func() (Source, error) { return OpenNPZ(p+".npz", v.Classes) }, 64, 3<<20)
			})
		}
	}
}

// npzTestExpected loads the raw dumps written next to an .npz.
func npzTestExpected(t testing.TB, p string) srcTestRows {
	img, err := os.ReadFile(p + ".image.raw")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p + ".label.raw")
	if err != nil {
		t.Fatal(err)
	}
	want := srcTestRows{images: img}
	for i := 0; i < len(raw); i += 8 {
		want.labels = append(want.labels, int16(binary.LittleEndian.Uint64(raw[i:])))
	}
	return want
}

// npzTestBadScript writes malformed archives with numpy, one per name.
const npzTestBadScript = `
import sys
import numpy as np
d = sys.argv[1]
img = np.random.default_rng(1).integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)
lab = (np.arange(40) % 10).astype(np.int64)
lab10 = lab.copy(); lab10[23] = 10
labneg = lab.astype('>i2'); labneg[17] = -1
np.savez(d + '/no_image.npz', img=img, label=lab)
np.savez(d + '/no_label.npz', image=img)
np.savez(d + '/float_image.npz', image=img.astype(np.float32), label=lab)
np.savez(d + '/int16_image.npz', image=img.astype(np.int16), label=lab)
np.savez(d + '/image_3d.npz', image=img[..., 0], label=lab)
np.savez(d + '/image_5d.npz', image=img[..., None], label=lab)
np.savez(d + '/nchw.npz', image=img.transpose(0, 3, 1, 2), label=lab)
np.savez(d + '/many_channels.npz', image=np.zeros((40, 8, 8, 5), np.uint8), label=lab)
np.savez(d + '/label_2d.npz', image=img, label=lab.reshape(-1, 1))
np.savez(d + '/count_mismatch.npz', image=img, label=lab[:-1])
np.savez(d + '/fortran.npz', image=np.asfortranarray(img), label=lab)
np.savez(d + '/float_label.npz', image=img, label=lab.astype(np.float64))
np.savez(d + '/bool_label.npz', image=img, label=lab > 4)
np.savez(d + '/empty.npz', image=img[:0], label=lab[:0])
np.savez(d + '/label_10.npz', image=img, label=lab10)
np.savez_compressed(d + '/label_neg.npz', image=img, label=labneg)
`

func TestNPZOpenErrors(t *testing.T) {
	dir := t.TempDir()
	npzTestPython(t, npzTestBadScript, dir)
	// Hand-made archives for what numpy never writes.
	npzTestWrite(t, filepath.Join(dir, "absurd_shape.npz"),
		npzTestMember{name: "image.npy", header: npyTestHeader("|u1", false, "(1000000000000, 32, 32, 3)")},
		npzTestMember{name: "label.npy", header: npyTestHeader("<i8", false, "(1000000000000,)")})
	npzTestWrite(t, filepath.Join(dir, "short_image.npz"),
		npzTestMember{name: "image.npy", header: npyTestHeader("|u1", false, "(5, 2, 2, 1)"), body: make([]byte, 18)},
		npzTestMember{name: "label.npy", header: npyTestHeader("|u1", false, "(5,)"), body: make([]byte, 5)})
	npzTestWrite(t, filepath.Join(dir, "trailing.npz"),
		npzTestMember{name: "image.npy", header: npyTestHeader("|u1", false, "(4, 2, 2, 1)"), body: make([]byte, 20)},
		npzTestMember{name: "label.npy", header: npyTestHeader("|u1", false, "(4,)"), body: make([]byte, 4)})
	npzTestWrite(t, filepath.Join(dir, "bad_magic.npz"),
		npzTestMember{name: "image.npy", header: []byte("NUMPY\x93\x01\x00\x00\x00"), body: make([]byte, 20)},
		npzTestMember{name: "label.npy", header: npyTestHeader("|u1", false, "(4,)"), body: make([]byte, 4)})
	os.WriteFile(filepath.Join(dir, "not_zip.npz"), []byte("this is not a zip archive"), 0o644)
	whole, _ := os.ReadFile(filepath.Join(dir, "label_10.npz"))
	os.WriteFile(filepath.Join(dir, "truncated.npz"), whole[:len(whole)/2], 0o644)

	for _, tc := range []struct {
		file      string
		fragments []string
	}{
		{"no_image", []string{"no image.npy member", "img.npy"}},
		{"no_label", []string{"no label.npy member"}},
		{"float_image", []string{`image.npy: dtype "<f4"`, "uint8"}},
		{"int16_image", []string{`dtype "<i2"`}},
		{"image_3d", []string{"shape [40 8 8]", "(N, H, W, C)"}},
		{"image_5d", []string{"shape [40 8 8 3 1]"}},
		{"nchw", []string{"image.npy: shape [40 3 8 8] has 8 channels on its last axis, want 1..4", "looks like NCHW", "np.transpose(image, (0, 2, 3, 1))"}},
		{"many_channels", []string{"image.npy: shape [40 8 8 5] has 5 channels on its last axis, want 1..4 in (N, H, W, C): "}},
		{"label_2d", []string{"label.npy: shape [40 1], want (N,)"}},
		{"count_mismatch", []string{"label.npy: 39 labels but image.npy has 40 images"}},
		{"fortran", []string{"image.npy: fortran_order is True"}},
		{"float_label", []string{`label.npy: dtype "<f8", want an integer type`}},
		{"bool_label", []string{`dtype "|b1"`}},
		{"empty", []string{"image.npy: no records"}},
		{"absurd_shape", []string{"needs more than the 0 data bytes", "data ends within record 0 at byte offset 128 of the member"}},
		{"short_image", []string{"needs more than the 18 data bytes after its 128-byte header", "data ends within record 4 at byte offset 146 of the member"}},
		{"trailing", []string{"4 bytes of trailing data at byte offset 144 of the member, after the last of 4 records"}},
		{"bad_magic", []string{"image.npy: bad .npy magic", "byte offset 0"}},
		{"not_zip", []string{"not a zip archive"}},
		{"truncated", []string{"not a zip archive"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			p := filepath.Join(dir, tc.file+".npz")
			src, err := OpenNPZ(p, 10)
			if err == nil {
				src.Close()
			}
			srcCheckErr(t, err, ErrFormat, p, tc.fragments...)
		})
	}
	t.Run("missing", func(t *testing.T) {
		p := filepath.Join(dir, "missing.npz")
		_, err := OpenNPZ(p, 10)
		srcCheckErr(t, err, os.ErrNotExist, p)
	})
	t.Run("classes", func(t *testing.T) {
		if _, err := OpenNPZ(filepath.Join(dir, "label_10.npz"), 0); err == nil {
			t.Fatal("OpenNPZ with 0 classes succeeded")
		}
	})
}

func TestNPZReadErrors(t *testing.T) {
	dir := t.TempDir()
	npzTestPython(t, npzTestBadScript, dir)
	// A deflated image member whose stream stops after 2.5 of its 5 records
	// while the directory promises all 5.
	hdr := npyTestHeader("|u1", false, "(5, 2, 2, 1)")
	full := append(append([]byte{}, hdr...), bytes.Repeat([]byte{7}, 20)...)
	npzTestWrite(t, filepath.Join(dir, "cut_stream.npz"),
		npzTestMember{name: "image.npy", header: hdr, body: make([]byte, 20), cut: len(hdr) + 10, raw: full},
		npzTestMember{name: "label.npy", header: npyTestHeader("|u1", false, "(5,)"), body: make([]byte, 5)})
	// A stored member with one corrupted data byte: only the CRC-32 says so.
	npzTestWrite(t, filepath.Join(dir, "bad_crc.npz"),
		npzTestMember{name: "image.npy", header: hdr, body: make([]byte, 20), store: true},
		npzTestMember{name: "label.npy", header: npyTestHeader("|u1", false, "(5,)"), body: make([]byte, 5), store: true})
	data, _ := os.ReadFile(filepath.Join(dir, "bad_crc.npz"))
	i := bytes.Index(data, hdr) + len(hdr) + 13
	data[i] ^= 1
	os.WriteFile(filepath.Join(dir, "bad_crc.npz"), data, 0o644)

	for _, tc := range []struct {
		file      string
		fragments []string
	}{
		{"label_10", []string{"label.npy: record 23 (id 23): label 10 at byte offset 312 of the member is outside [0, 10)"}},
		{"label_neg", []string{"label.npy: record 17 (id 17): label -1 at byte offset 162 of the member is outside [0, 10)"}},
		{"cut_stream", []string{"image.npy: data ends within record 2 (id 2) at byte offset 138 of the member", "5 records"}},
		{"bad_crc", []string{"image.npy: after the last of 5 records", "checksum"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			p := filepath.Join(dir, tc.file+".npz")
			src, err := OpenNPZ(p, 10)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			var c Chunk
			for err == nil {
				err = src.Read(&c, 4)
			}
			srcCheckErr(t, err, ErrFormat, p, tc.fragments...)
			if c.Len() != 0 {
				t.Fatalf("failed Read left %d rows", c.Len())
			}
		})
	}
}

// npyTestHeader builds a version 1.0 .npy header padded to 64 bytes, as
// numpy writes it.
func npyTestHeader(descr string, fortran bool, shape string) []byte {
	f := "False"
	if fortran {
		f = "True"
	}
	d := fmt.Sprintf("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, f, shape)
	pad := (64 - (10+len(d)+1)%64) % 64
	d += strings.Repeat(" ", pad) + "\n"
	return append(binary.LittleEndian.AppendUint16([]byte(npy.Magic+"\x01\x00"), uint16(len(d))), d...)
}

// npzTestMember is one member of an archive written by npzTestWrite.
type npzTestMember struct {
	name   string
	header []byte
	body   []byte
	store  bool // zip.Store instead of zip.Deflate
	// cut, when set, writes raw (header and body as the directory
	// describes them) deflated but with the stream ending after cut bytes.
	cut int
	raw []byte
}

// npzTestWrite writes a zip archive of members with Go's archive/zip.
func npzTestWrite(t testing.TB, path string, members ...npzTestMember) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	for _, m := range members {
		data := append(append([]byte{}, m.header...), m.body...)
		var w io.Writer
		switch {
		case m.cut > 0:
			var comp bytes.Buffer
			fw, _ := flate.NewWriter(&comp, flate.BestSpeed)
			fw.Write(m.raw[:m.cut])
			fw.Close()
			w, err = zw.CreateRaw(&zip.FileHeader{Name: m.name, Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(m.raw),
				CompressedSize64: uint64(comp.Len()), UncompressedSize64: uint64(len(m.raw))})
			data = comp.Bytes()
		case m.store:
			w, err = zw.CreateHeader(&zip.FileHeader{Name: m.name, Method: zip.Store})
		default:
			w, err = zw.Create(m.name)
		}
		if err == nil {
			_, err = w.Write(data)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNPYHeader(t *testing.T) {
	v2 := func(d string) []byte {
		return append(binary.LittleEndian.AppendUint32([]byte(npy.Magic+"\x02\x00"), uint32(len(d))), d...)
	}
	for _, tc := range []struct {
		name  string
		data  []byte
		shape string // fmt of the shape, or "" for an error
		descr string
		err   string
	}{
		{"numpy v1", npyTestHeader("<i8", false, "(3, 4)"), "[3 4]", "<i8", ""},
		{"v2", v2("{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }\n"), "[5]", "|u1", ""},
		{"v3 double quotes", append(v2(`{"shape": (), "fortran_order": True, "descr": ">f4"}`), 0), "[]", ">f4", ""},
		{"python 2 long", npyTestHeader("<u2", false, "(7L, 2L)"), "[7 2]", "<u2", ""},
		{"bad magic", []byte("\x93NUMPX\x01\x00\x00\x00"), "", "", "bad .npy magic"},
		{"version 4", []byte("\x93NUMPY\x04\x00\x00\x00"), "", "", "unsupported .npy version 4.0"},
		{"short", []byte("\x93NUMPY"), "", "", "too short"},
		{"header past end", []byte("\x93NUMPY\x01\x00\xff\x00{}"), "", "", "header length 255"},
		{"cut header", npyTestHeader("<i8", false, "(1,)")[:10], "", "", "exceeds the 0 bytes available"},
		{"no dict", v2("'descr'"), "", "", "not a dict"},
		{"missing key", v2("{'descr': '<i8', 'fortran_order': False}"), "", "", `missing key "shape"`},
		{"extra key", v2("{'descr': '<i8', 'fortran_order': False, 'shape': (), 'x': 1}"), "", "", `unexpected key "x"`},
		{"duplicate", v2("{'descr': '<i8', 'descr': '<i8'}"), "", "", "duplicate"},
		{"structured", v2("{'descr': [('a', '<i8')], 'fortran_order': False, 'shape': ()}"), "", "", "only simple dtypes"},
		{"negative dim", v2("{'descr': '<i8', 'fortran_order': False, 'shape': (-1,)}"), "", "", "bad dimension"},
		{"huge dim", v2("{'descr': '<i8', 'fortran_order': False, 'shape': (99999999999999999999,)}"), "", "", "bad dimension"},
		{"bad order", v2("{'descr': '|i8', 'fortran_order': False, 'shape': ()}"), "", "", "byte order"},
		{"bad bool", v2("{'descr': '<i8', 'fortran_order': 0, 'shape': ()}"), "", "", "True or False"},
		{"trailing", v2("{'descr': '<i8', 'fortran_order': False, 'shape': ()} x"), "", "", "trailing text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := npy.ReadHeader(bytes.NewReader(tc.data), int64(len(tc.data)))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(h.Shape) != tc.shape || h.DType.Str != tc.descr || h.Len > int64(len(tc.data)) {
				t.Fatalf("got %+v, want shape %s descr %s", h, tc.shape, tc.descr)
			}
		})
	}
}

func FuzzNPYHeader(f *testing.F) {
	f.Add(npyTestHeader("<i8", false, "(3, 4)"))
	f.Add(npyTestHeader("|u1", true, "(60000, 28, 28, 1)"))
	f.Add([]byte("\x93NUMPY\x02\x00\x10\x00\x00\x00{'shape': (1L,)}"))
	f.Add([]byte("\x93NUMPY\x03\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := npy.ReadHeader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if h.Len > int64(len(data)) || h.DType.Size <= 0 {
			t.Fatalf("header %+v from %d bytes", h, len(data))
		}
		for _, d := range h.Shape {
			if d < 0 {
				t.Fatalf("negative dimension in %v", h.Shape)
			}
		}
	})
}

// fuzzScratch returns a directory for the stores a fuzz target writes:
// under /dev/shm when there is one (fsync on a busy disk stalls fuzzing
// for seconds at a time), else a temporary directory. It is removed at the
// end.
func fuzzScratch(f *testing.F) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "certmix-fuzz-"); err == nil {
			f.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return f.TempDir()
}

// FuzzNPZFile opens arbitrary bytes as an archive: it must fail with a
// format error or stream rows, never panic or allocate without bound; and
// a build from an archive it accepted either succeeds with every row in a
// dataset that verifies, or fails leaving nothing in the store (refused
// input leaves nothing behind).
func FuzzNPZFile(f *testing.F) {
	dir := f.TempDir()
	for i, store := range []bool{false, true} {
		p := filepath.Join(dir, fmt.Sprint(i))
		npzTestWrite(f, p,
			npzTestMember{name: "image.npy", header: npyTestHeader("|u1", false, "(3, 2, 2, 1)"), body: []byte("abcdefghijkl"), store: store},
			npzTestMember{name: "label.npy", header: npyTestHeader(">i2", false, "(3,)"), body: []byte{0, 1, 0, 9, 0, 3}, store: store})
		data, _ := os.ReadFile(p)
		f.Add(data)
	}
	const p = "x.npz" // read from memory, see FuzzCIFARRecords
	scratch := fuzzScratch(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := npzNew(p, bytes.NewReader(data), io.NopCloser(nil), int64(len(data)), 10)
		if err != nil {
			srcCheckErr(t, err, ErrFormat, p)
			return
		}
		defer src.Close()
		var c Chunk
		for err == nil {
			err = src.Read(&c, 2)
		}
		if err != io.EOF {
			srcCheckErr(t, err, ErrFormat, p)
		}
		src2, err := npzNew(p, bytes.NewReader(data), io.NopCloser(nil), int64(len(data)), 10)
		if err != nil {
			t.Fatalf("the archive opened once, then not: %v", err)
		}
		defer src2.Close()
		ctx := context.Background()
		dir, err := os.MkdirTemp(scratch, "ds")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		store, err := shards.NewLocal(filepath.Join(dir, "ds"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := Build(ctx, src2, store, Options{Seed: 1, Workers: 1, ShardBytes: 64 << 10, TempDir: dir})
		names, lerr := store.List(ctx)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if err != nil {
			if len(names) != 0 {
				t.Fatalf("the failed build (%v) left %v", err, names)
			}
			return
		}
		d, err := shards.OpenDataset(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		if err := shards.Verify(ctx, d, nil); err != nil || m.Rows != src2.Info().Rows {
			t.Fatalf("built %d of %d rows: %v", m.Rows, src2.Info().Rows, err)
		}
	})
}

// BenchmarkNPZRead streams a stored (np.savez-layout) archive of 200,000
// CIFAR-shaped images written with archive/zip and a hand-made .npy header.
func BenchmarkNPZRead(b *testing.B) {
	npzBenchRead(b, 200_000, true)
}

// BenchmarkNPZReadDeflated does the same for a deflated archive
// (np.savez_compressed layout) of 20,000 images with random low bits, which
// deflate to about 60%, a little better than photos.
func BenchmarkNPZReadDeflated(b *testing.B) {
	npzBenchRead(b, 20_000, false)
}

func npzBenchRead(b *testing.B, rows int, store bool) {
	p := filepath.Join(b.TempDir(), "bench.npz")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	zw := zip.NewWriter(bw)
	method := zip.Deflate
	if store {
		method = zip.Store
	}
	img := make([]byte, cifarImage)
	for i := range img {
		img[i] = byte(i / 12)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, m := range []struct {
		name, descr, shape string
		row                []byte
	}{
		{"image.npy", "|u1", fmt.Sprintf("(%d, 32, 32, 3)", rows), img},
		{"label.npy", "<i8", fmt.Sprintf("(%d,)", rows), []byte{3, 0, 0, 0, 0, 0, 0, 0}},
	} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: m.name, Method: method})
		if err != nil {
			b.Fatal(err)
		}
		w.Write(npyTestHeader(m.descr, false, m.shape))
		for i := range rows {
			m.row[0] = byte(i)
			if m.name == "label.npy" {
				m.row[0] = byte(i % 10)
			} else if !store {
				for j := 0; j < len(m.row); j += 8 {
					binary.LittleEndian.PutUint64(m.row[j:], binary.LittleEndian.Uint64(m.row[j:])&^0x0707070707070707|rng.Uint64()&0x0707070707070707)
				}
			}
			w.Write(m.row)
		}
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.SetBytes(int64(rows) * cifarImage)
	b.ResetTimer()
	var c Chunk
	for b.Loop() {
		src, err := OpenNPZ(p, 10)
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
