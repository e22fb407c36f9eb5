package shards

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// localTempFiles returns the temporary files left under dir.
func localTempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var temps []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), localTempPrefix) {
			temps = append(temps, p)
		}
		return nil
	})
	return temps
}

// TestLocalTempFilesNotListed: files of Puts in progress never show in List.
func TestLocalTempFilesNotListed(t *testing.T) {
	dir := t.TempDir()
	st, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	storeMustPut(t, st, "sub/a", []byte("a"))
	for _, p := range []string{".tmp-123", "sub/.tmp-456"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	storeMustList(t, st, "sub/a")
}

// TestLocalFailedPutLeavesNoTemp: a reader that fails, a short reader and a
// cancelled context all leave no temporary file behind.
func TestLocalFailedPutLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	st, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := st.Put(t.Context(), "d/x", storeFailingReader(storeTestBytes(1, 3<<20), boom), -1); !errors.Is(err, boom) {
		t.Fatalf("put: %v", err)
	}
	if err := st.Put(t.Context(), "d/y", bytes.NewReader([]byte("short")), 10); err == nil {
		t.Fatal("short put succeeded")
	}
	if temps := localTempFiles(t, dir); len(temps) != 0 {
		t.Fatalf("temporary files left: %q", temps)
	}
	storeMustList(t, st)
}

// TestLocalNewLocal creates a missing directory at the first Put, not
// before, and refuses a file.
func TestLocalNewLocal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	st, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.String() != dir {
		t.Errorf("String = %q, want %q", st.String(), dir)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("NewLocal created the directory: %v", err)
	}
	if names, err := st.List(context.Background()); err != nil || len(names) != 0 {
		t.Fatalf("List of a missing directory: %v, %v", names, err)
	}
	if err := st.Put(context.Background(), "x", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("directory not created by Put: %v", err)
	}
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	if _, err := NewLocal(file); err == nil {
		t.Error("NewLocal on a file succeeded")
	}
	if _, err := NewLocal(""); err == nil {
		t.Error(`NewLocal("") succeeded`)
	}
}

// TestLocalLayout: objects are plain files at their names, readable by
// others, and absent-object errors also match fs.ErrNotExist.
func TestLocalLayout(t *testing.T) {
	dir := t.TempDir()
	st, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	storeMustPut(t, st, "x/y.bin", []byte("xy"))
	fi, err := os.Stat(filepath.Join(dir, "x", "y.bin"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("object file: %v, %v", fi, err)
	}
	if _, err := st.Stat(t.Context(), "x"); err == nil {
		t.Error("stat of a directory succeeded")
	}
	_, err = st.Open(t.Context(), "nope")
	if !errors.Is(err, ErrNotExist) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open of an absent object: %v", err)
	}
}

func TestPutDeferredIsVisibleAtOnceAndSyncs(t *testing.T) {
	ctx := context.Background()
	st, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ds := st.(DeferredStore)
	if err := ds.PutDeferred(ctx, "a/b.arrow", strings.NewReader("hello"), -1); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Stat(ctx, "a/b.arrow"); err != nil || n != 5 {
		t.Fatalf("Stat after PutDeferred: %d, %v", n, err)
	}
	if err := ds.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if len(st.(*localStore).pending) != 0 {
		t.Error("Sync left pending files")
	}
}
