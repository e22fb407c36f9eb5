package shards

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"certmix/internal/s3test"
)

// TestMain checks, once the tests have passed and while the S3 server is
// still up, that no goroutine leaked (a response body left open keeps one
// alive), then stops the server the tests started.
func TestMain(m *testing.M) {
	os.Exit(s3test.Run(m, func() error {
		CloseIdleS3Connections()
		return s3test.FindLeaks()
	}))
}

// testS3Prefix is the prefix of the S3 stores of the tests: not the bucket
// root, so that prefix handling is always exercised.
const testS3Prefix = "data/set1"

// testS3Config returns a client configuration for srv.
func testS3Config(srv *s3test.Server) S3Config {
	return S3Config{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey, Retries: 3}
}

// newTestLocal returns a local store in a fresh directory.
func newTestLocal(t *testing.T) Store {
	t.Helper()
	st, err := NewLocal(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// newTestS3 returns an S3 store under testS3Prefix of a fresh bucket.
func newTestS3(t *testing.T) Store {
	t.Helper()
	srv := s3test.Start(t)
	st, err := NewS3(t.Context(), testS3Config(srv), srv.Bucket(t), testS3Prefix)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// testStores are the stores that must behave alike.
var testStores = []struct {
	name string
	new  func(t *testing.T) Store
}{
	{"local", newTestLocal},
	{"s3", newTestS3},
}

// storeTestBytes returns n deterministic pseudo-random bytes.
func storeTestBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	storeTestRand(seed).Read(b)
	return b
}

// storeTestRand returns a deterministic stream of bytes.
func storeTestRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	return rand.NewChaCha8(s)
}

// storeMustPut puts data under name.
func storeMustPut(t *testing.T, st Store, name string, data []byte) {
	t.Helper()
	if err := st.Put(t.Context(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

// storeReadAllSum reads a whole object through ReadAt in chunks of 4 MiB
// and returns its length and SHA-256.
func storeReadAllSum(t *testing.T, st Store, name string) (int64, [32]byte) {
	t.Helper()
	obj, err := st.Open(t.Context(), name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer obj.Close()
	h, buf := sha256.New(), make([]byte, 4<<20)
	var off int64
	for off < obj.Size() {
		n, err := obj.ReadAt(buf[:min(int64(len(buf)), obj.Size()-off)], off)
		if err != nil {
			t.Fatalf("read %s at %d: %v", name, off, err)
		}
		h.Write(buf[:n])
		off += int64(n)
	}
	return off, [32]byte(h.Sum(nil))
}

// storeMustContent checks that the object holds exactly want.
func storeMustContent(t *testing.T, st Store, name string, want []byte) {
	t.Helper()
	if size, err := st.Stat(t.Context(), name); err != nil || size != int64(len(want)) {
		t.Fatalf("stat %s = %d, %v; want %d", name, size, err, len(want))
	}
	n, sum := storeReadAllSum(t, st, name)
	if n != int64(len(want)) || sum != sha256.Sum256(want) {
		t.Fatalf("%s: read %d bytes with another content than the %d put", name, n, len(want))
	}
}

// storeMustList checks the store's listing.
func storeMustList(t *testing.T, st Store, want ...string) {
	t.Helper()
	got, err := st.List(t.Context())
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(got) != 0 || len(want) != 0 {
		if !slices.Equal(got, want) {
			t.Fatalf("list = %q, want %q", got, want)
		}
	}
}

// storeOpaque hides every method of a reader but Read, as a pipe or network
// stream would.
type storeOpaque struct{ io.Reader }

// storeFailingReader returns its data, then err.
func storeFailingReader(data []byte, err error) io.Reader {
	return io.MultiReader(bytes.NewReader(data), storeOpaque{storeErrReader{err}})
}

// storeErrReader fails every Read with err.
type storeErrReader struct{ err error }

func (r storeErrReader) Read([]byte) (int, error) { return 0, r.err }

// storeStreamPipe writes n bytes from seed into a pipe in 1 MiB writes and
// returns its reader; onChunk runs before chunk i is written. The writer
// stops when the reader is closed.
func storeStreamPipe(seed uint64, n int, onChunk func(i int)) (*io.PipeReader, *sync.WaitGroup) {
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		src, buf := storeTestRand(seed), make([]byte, 1<<20)
		for i := 0; n > 0; i++ {
			if onChunk != nil {
				onChunk(i)
			}
			k := min(n, len(buf))
			src.Read(buf[:k])
			if _, err := pw.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
		pw.Close()
	})
	return pr, &wg
}

// TestStoreConformance runs the same behaviour table against every store.
func TestStoreConformance(t *testing.T) {
	for _, ts := range testStores {
		t.Run(ts.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range conformanceCases {
				t.Run(c.name, func(t *testing.T) { c.run(t, ts.new(t)) })
			}
		})
	}
}

// conformanceCases are run on a fresh, empty store each.
var conformanceCases = []struct {
	name string
	run  func(t *testing.T, st Store)
}{
	{"PutKnownSize", func(t *testing.T, st Store) {
		data := storeTestBytes(1, 100_000)
		if err := st.Put(t.Context(), "a.bin", storeOpaque{bytes.NewReader(data)}, int64(len(data))); err != nil {
			t.Fatal(err)
		}
		storeMustContent(t, st, "a.bin", data)
	}},
	{"PutSeekableMultipart", func(t *testing.T, st Store) {
		data := storeTestBytes(2, 20<<20+3)
		f, err := os.CreateTemp(t.TempDir(), "src")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if err := st.Put(t.Context(), "file.bin", f, int64(len(data))); err != nil {
			t.Fatal(err)
		}
		storeMustContent(t, st, "file.bin", data)
	}},
	{"PutFromOSPipe", func(t *testing.T, st Store) {
		data := storeTestBytes(12, 1<<20)
		for _, size := range []int64{int64(len(data)), -1} {
			pr, pw, err := os.Pipe() // an *os.File that cannot seek
			if err != nil {
				t.Fatal(err)
			}
			go func() { pw.Write(data); pw.Close() }()
			err = st.Put(t.Context(), "pipe", pr, size)
			pr.Close()
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			storeMustContent(t, st, "pipe", data)
		}
	}},
	{"PutUnknownSizeMultipart", func(t *testing.T, st Store) {
		const n = 40<<20 + 12345
		pr, wg := storeStreamPipe(3, n, nil)
		err := st.Put(t.Context(), "big/stream.bin", pr, -1)
		pr.Close()
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		size, sum := storeReadAllSum(t, st, "big/stream.bin")
		want := sha256.New()
		io.Copy(want, io.LimitReader(storeTestRand(3), n))
		if size != n || sum != [32]byte(want.Sum(nil)) {
			t.Fatalf("read back %d bytes with another content than the %d streamed", size, n)
		}
	}},
	{"PutUnknownSizeSmall", func(t *testing.T, st Store) {
		data := storeTestBytes(4, 1000)
		if err := st.Put(t.Context(), "small", storeOpaque{bytes.NewReader(data)}, -1); err != nil {
			t.Fatal(err)
		}
		storeMustContent(t, st, "small", data)
	}},
	{"PutEmpty", func(t *testing.T, st Store) {
		if err := st.Put(t.Context(), "empty", storeOpaque{bytes.NewReader(nil)}, 0); err != nil {
			t.Fatal(err)
		}
		if err := st.Put(t.Context(), "empty-stream", storeOpaque{bytes.NewReader(nil)}, -1); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"empty", "empty-stream"} {
			storeMustContent(t, st, name, nil)
			obj, err := st.Open(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := obj.ReadAt(make([]byte, 1), 0); n != 0 || err != io.EOF {
				t.Errorf("%s: ReadAt = %d, %v; want 0, EOF", name, n, err)
			}
			obj.Close()
		}
	}},
	{"Overwrite", func(t *testing.T, st Store) {
		storeMustPut(t, st, "x", storeTestBytes(5, 5000))
		second := storeTestBytes(6, 300)
		storeMustPut(t, st, "x", second)
		storeMustContent(t, st, "x", second)
		storeMustList(t, st, "x")
	}},
	{"ReadAt", func(t *testing.T, st Store) {
		data := storeTestBytes(7, 1000)
		storeMustPut(t, st, "r", data)
		obj, err := st.Open(t.Context(), "r")
		if err != nil {
			t.Fatal(err)
		}
		defer obj.Close()
		if obj.Size() != 1000 {
			t.Fatalf("Size = %d", obj.Size())
		}
		for _, c := range []struct {
			off, len int64
			n        int
			err      error
		}{
			{0, 10, 10, nil},
			{500, 123, 123, nil},
			{999, 1, 1, nil},     // the last byte
			{990, 10, 10, nil},   // ends exactly at the end: nil error
			{0, 1000, 1000, nil}, // the whole object
			{995, 10, 5, io.EOF}, // passes the end
			{0, 1001, 1000, io.EOF},
			{1000, 1, 0, io.EOF}, // starts at the end
			{5000, 8, 0, io.EOF}, // starts past the end
			{10, 0, 0, nil},      // empty read
		} {
			p := make([]byte, c.len)
			n, err := obj.ReadAt(p, c.off)
			if n != c.n || err != c.err {
				t.Errorf("ReadAt(len %d, off %d) = %d, %v; want %d, %v", c.len, c.off, n, err, c.n, c.err)
				continue
			}
			if n > 0 && !bytes.Equal(p[:n], data[c.off:c.off+int64(n)]) {
				t.Errorf("ReadAt(len %d, off %d): wrong bytes", c.len, c.off)
			}
		}
		if _, err := obj.ReadAt(make([]byte, 1), -1); err == nil {
			t.Error("ReadAt at -1: no error")
		}
	}},
	{"ConcurrentReadAt", func(t *testing.T, st Store) {
		data := storeTestBytes(8, 1<<20)
		storeMustPut(t, st, "c", data)
		obj, err := st.Open(t.Context(), "c")
		if err != nil {
			t.Fatal(err)
		}
		defer obj.Close()
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 1))
				for range 10 {
					off, n := r.IntN(len(data)), r.IntN(100_000)+1
					p := make([]byte, n)
					k, err := obj.ReadAt(p, int64(off))
					if (err != nil && err != io.EOF) || !bytes.Equal(p[:k], data[off:off+k]) {
						t.Errorf("ReadAt(len %d, off %d) = %d, %v or wrong bytes", n, off, k, err)
					}
				}
			})
		}
		wg.Wait()
	}},
	{"ReadAtAfterClose", func(t *testing.T, st Store) {
		storeMustPut(t, st, "c", []byte("abc"))
		obj, err := st.Open(t.Context(), "c")
		if err != nil {
			t.Fatal(err)
		}
		obj.Close()
		if _, err := obj.ReadAt(make([]byte, 1), 0); err == nil {
			t.Error("ReadAt after Close: no error")
		}
	}},
	{"ListSortedNested", func(t *testing.T, st Store) {
		storeMustList(t, st)
		for _, name := range []string{"b", "a/y/z", "a.txt", "a/x", "c/d/e", "a-b"} {
			storeMustPut(t, st, name, []byte(name))
		}
		storeMustList(t, st, "a-b", "a.txt", "a/x", "a/y/z", "b", "c/d/e")
		storeMustContent(t, st, "a/y/z", []byte("a/y/z"))
	}},
	{"Delete", func(t *testing.T, st Store) {
		storeMustPut(t, st, "keep", []byte("k"))
		storeMustPut(t, st, "d/gone", []byte("g"))
		if err := st.Delete(t.Context(), "d/gone"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Stat(t.Context(), "d/gone"); !errors.Is(err, ErrNotExist) {
			t.Fatalf("stat after delete: %v, want ErrNotExist", err)
		}
		if err := st.Delete(t.Context(), "d/gone"); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		storeMustList(t, st, "keep")
	}},
	{"Absent", func(t *testing.T, st Store) {
		if _, err := st.Stat(t.Context(), "nope"); !errors.Is(err, ErrNotExist) || !strings.Contains(err.Error(), "nope") {
			t.Errorf("stat: %v, want ErrNotExist naming the object", err)
		}
		if _, err := st.Open(t.Context(), "no/such"); !errors.Is(err, ErrNotExist) {
			t.Errorf("open: %v, want ErrNotExist", err)
		}
		if err := st.Delete(t.Context(), "nope"); err != nil {
			t.Errorf("delete: %v", err)
		}
	}},
	{"CancelMidStream", func(t *testing.T, st Store) {
		for _, c := range []struct {
			size     int64
			n, after int // bytes streamed; MiB written before the cancel
		}{{-1, 40 << 20, 20}, {40 << 20, 40 << 20, 20}, {4 << 20, 4 << 20, 2}} {
			size := c.size
			old := storeTestBytes(9, 777)
			storeMustPut(t, st, "obj", old)
			ctx, cancel := context.WithCancel(t.Context())
			pr, wg := storeStreamPipe(10, c.n, func(i int) {
				if i == c.after {
					cancel()
				}
			})
			err := st.Put(ctx, "obj", pr, size)
			pr.Close()
			wg.Wait()
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("size %d: cancelled put: %v, want context.Canceled", size, err)
			}
			storeMustContent(t, st, "obj", old)
			storeMustList(t, st, "obj")
		}
	}},
	{"ReaderFails", func(t *testing.T, st Store) {
		boom := errors.New("boom")
		old := []byte("old")
		storeMustPut(t, st, "f", old)
		for _, size := range []int64{-1, 2 << 20, 30 << 20} {
			err := st.Put(t.Context(), "f", storeFailingReader(storeTestBytes(11, 1<<20), boom), size)
			if !errors.Is(err, boom) || !strings.Contains(err.Error(), `"f"`) {
				t.Errorf("size %d: put = %v, want boom naming the object", size, err)
			}
			err = st.Put(t.Context(), "new", storeFailingReader(storeTestBytes(11, 1<<20), boom), size)
			if !errors.Is(err, boom) {
				t.Errorf("size %d: put = %v, want boom", size, err)
			}
		}
		storeMustContent(t, st, "f", old)
		storeMustList(t, st, "f")
	}},
	{"ShortReader", func(t *testing.T, st Store) {
		for _, c := range []struct {
			r    io.Reader
			size int64
		}{
			{storeOpaque{bytes.NewReader(make([]byte, 50))}, 100},
			{bytes.NewReader(make([]byte, 50)), 100},
			{storeOpaque{bytes.NewReader(make([]byte, 17<<20))}, 20 << 20},
		} {
			if err := st.Put(t.Context(), "s", c.r, c.size); err == nil {
				t.Errorf("put of %d bytes from a shorter reader succeeded", c.size)
			}
		}
		storeMustList(t, st)
	}},
	{"InvalidNames", func(t *testing.T, st Store) {
		ctx := t.Context()
		for _, name := range []string{"", "/abs", "../x", "a/../b", "..", ".", "a/./b", `a\b`, "a//b", "a/", ".tmp-x", "d/.tmp-1", "nul\x00", "\xff"} {
			errs := []error{st.Put(ctx, name, bytes.NewReader(nil), 0), st.Delete(ctx, name)}
			_, err := st.Open(ctx, name)
			errs = append(errs, err)
			_, err = st.Stat(ctx, name)
			errs = append(errs, err)
			for i, err := range errs {
				if !errors.Is(err, ErrName) {
					t.Errorf("op %d on %q: %v, want ErrName", i, name, err)
				}
			}
		}
		storeMustList(t, st)
	}},
	{"Cancelled", func(t *testing.T, st Store) {
		storeMustPut(t, st, "x", []byte("x"))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := st.Stat(ctx, "x"); !errors.Is(err, context.Canceled) {
			t.Errorf("stat: %v", err)
		}
		if _, err := st.List(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("list: %v", err)
		}
		if err := st.Put(ctx, "y", bytes.NewReader([]byte("y")), 1); !errors.Is(err, context.Canceled) {
			t.Errorf("put: %v", err)
		}
		storeMustList(t, st, "x")
	}},
}
