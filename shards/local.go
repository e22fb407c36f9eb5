package shards

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	"unicode/utf8"
)

// ErrName is returned (wrapped) when an object name is not a clean relative
// path: both stores refuse the same names, so a dataset written to a local
// directory can always be copied to S3 and back.
var ErrName = errors.New("invalid object name")

// localTempPrefix starts the names of the temporary files a local Put writes
// before renaming them into place. List never shows such files, and object
// names may not use the prefix.
const localTempPrefix = ".tmp-"

// checkObjectName returns an error wrapping ErrName unless name is a
// non-empty, relative, '/'-separated path without empty, "." or ".."
// components, backslashes, NUL bytes, invalid UTF-8 or components that start
// with the reserved temporary-file prefix.
func checkObjectName(name string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrName, name, why) }
	switch {
	case name == "":
		return bad("empty")
	case strings.HasPrefix(name, "/"):
		return bad("absolute path")
	case strings.Contains(name, `\`):
		return bad(`contains a backslash (use "/")`)
	case strings.ContainsRune(name, 0):
		return bad("contains a NUL byte")
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	}
	for c := range strings.SplitSeq(name, "/") {
		switch {
		case c == "":
			return bad("empty path component")
		case c == "." || c == "..":
			return bad(`contains a "." or ".." component`)
		case strings.HasPrefix(c, localTempPrefix):
			return bad("component starts with the reserved prefix " + localTempPrefix)
		}
	}
	return nil
}

// localStore is a Store in a directory of the local file system.
type localStore struct {
	dir string // absolute and clean

	mu      sync.Mutex
	pending map[string]bool // files and directories that PutDeferred left unsynced
}

// NewLocal returns a Store that keeps each object as a file under dir. A
// missing dir is created by the first Put, not before, so that reading a
// mistyped path leaves nothing behind. Puts are atomic (temporary file,
// fsync, rename, fsync of the directory), so a crash never leaves a partial
// object.
func NewLocal(dir string) (Store, error) {
	if dir == "" {
		return nil, errors.New("local store: empty directory name")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local store %s: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("local store %s: not a directory", abs)
	}
	return &localStore{dir: abs}, nil
}

// String returns the store's absolute directory, which OpenStore accepts.
func (s *localStore) String() string { return s.dir }

// path validates name and returns its file path.
func (s *localStore) path(name string) (string, error) {
	if err := checkObjectName(name); err != nil {
		return "", fmt.Errorf("local store %s: %w", s.dir, err)
	}
	return filepath.Join(s.dir, filepath.FromSlash(name)), nil
}

// errf wraps err with the store and the operation on name; errors for absent
// files also wrap ErrNotExist.
func (s *localStore) errf(op, name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local store %s: %s %q: %w: %w", s.dir, op, name, ErrNotExist, err)
	}
	return fmt.Errorf("local store %s: %s %q: %w", s.dir, op, name, err)
}

// Put writes r to a temporary file next to the object and renames it into
// place once complete and synced. A failed or cancelled Put removes the
// temporary file and leaves any existing object intact. With size >= 0,
// exactly size bytes are read; fewer is an error. Cancellation of ctx is
// noticed between reads of r.
func (s *localStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	return s.put(ctx, name, r, size, true)
}

// PutDeferred is Put without waiting for the disk: the file's write-back is
// started at once (sync_file_range), and Sync waits for it. Readers see the
// object complete either way; only its survival of a crash waits for Sync.
func (s *localStore) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	return s.put(ctx, name, r, size, false)
}

// Sync makes every PutDeferred so far durable: it fsyncs their files, then
// their directories. An entry leaves the list only once synced, so a failed
// Sync can be retried; objects deleted since are skipped.
func (s *localStore) Sync(ctx context.Context) error {
	s.mu.Lock()
	var files, dirs []string
	for p, isDir := range s.pending {
		if isDir {
			dirs = append(dirs, p)
		} else {
			files = append(files, p)
		}
	}
	s.mu.Unlock()
	slices.Sort(files)
	slices.Sort(dirs)
	for _, p := range append(files, dirs...) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := localFsync(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("local store %s: sync: %w", s.dir, err)
		}
		s.mu.Lock()
		delete(s.pending, p)
		s.mu.Unlock()
	}
	return nil
}

// PutIfAbsent writes the object to a temporary file, then links it into
// place, which fails if the name exists: the check and the creation are one
// step.
func (s *localStore) PutIfAbsent(ctx context.Context, name string, r io.Reader, size int64) (err error) {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return s.errf("put", name, err)
	}
	f, err := os.CreateTemp(dir, localTempPrefix+"*")
	if err != nil {
		return s.errf("put", name, err)
	}
	defer os.Remove(f.Name())
	src := io.Reader(storeCtxReader{ctx, r})
	if size >= 0 {
		src = io.LimitReader(src, size)
	}
	_, err = io.Copy(f, src)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return s.errf("put", name, err)
	}
	if err := os.Link(f.Name(), p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("local store %s: %q: %w", s.dir, name, ErrTaken)
		}
		return s.errf("put", name, err)
	}
	return localSyncDir(dir)
}

func (s *localStore) put(ctx context.Context, name string, r io.Reader, size int64, durable bool) (err error) {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return s.errf("put", name, err)
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return s.errf("put", name, err)
	}
	f, err := os.CreateTemp(dir, localTempPrefix+"*")
	if err != nil {
		return s.errf("put", name, err)
	}
	tmp, closed := f.Name(), false
	defer func() {
		if err != nil {
			if !closed {
				f.Close()
			}
			os.Remove(tmp)
			// Every error, "no space left on device" included, names the object.
			err = s.errf("put", name, err)
		}
	}()
	src := io.Reader(storeCtxReader{ctx, r})
	if size >= 0 {
		src = io.LimitReader(src, size)
	}
	n, err := io.Copy(f, src)
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("reader gave %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if durable {
		if err := f.Sync(); err != nil {
			return err
		}
	} else {
		_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE) // a hint; Sync checks
	}
	closed = true
	if err := f.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	if !durable {
		s.mu.Lock()
		if s.pending == nil {
			s.pending = map[string]bool{}
		}
		s.pending[p], s.pending[dir] = false, true
		s.mu.Unlock()
		return nil
	}
	return localSyncDir(dir)
}

// localFsync fsyncs a file or directory by path; directories on file
// systems that cannot sync them are tolerated.
func localFsync(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("fsync %s: %w", p, err)
	}
	return nil
}

// localSyncDir fsyncs a directory so that a rename in it survives a crash.
// File systems that cannot sync directories are tolerated.
func localSyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

// Open opens the object's file.
func (s *localStore) Open(ctx context.Context, name string) (Object, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, s.errf("open", name, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, s.errf("open", name, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", p)
	}
	if err != nil {
		f.Close()
		return nil, s.errf("open", name, err)
	}
	return localObject{File: f, size: fi.Size()}, nil
}

// localObject is an open object of a local store. *os.File's ReadAt already
// returns a nil error for a read that fills p at the end of the file.
type localObject struct {
	*os.File
	size int64
}

// Size returns the object's length in bytes, as it was when opened.
func (o localObject) Size() int64 { return o.size }

// Stat returns the size of the object's file.
func (s *localStore) Stat(ctx context.Context, name string) (int64, error) {
	p, err := s.path(name)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, s.errf("stat", name, err)
	}
	fi, err := os.Stat(p)
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", p)
	}
	if err != nil {
		return 0, s.errf("stat", name, err)
	}
	return fi.Size(), nil
}

// List walks the directory and returns the relative names of all regular
// files, sorted, skipping the temporary files of Puts in progress.
func (s *localStore) List(ctx context.Context) ([]string, error) {
	var names []string
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == s.dir && errors.Is(err, fs.ErrNotExist) {
				return nil // no directory yet: no objects
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), localTempPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.dir, p)
		if err != nil {
			return err
		}
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("local store %s: list: %w", s.dir, err)
	}
	sort.Strings(names)
	return names, nil
}

// Delete removes the object's file; an absent file is not an error. Emptied
// sub-directories are left in place.
func (s *localStore) Delete(ctx context.Context, name string) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return s.errf("delete", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.errf("delete", name, err)
	}
	s.mu.Lock()
	delete(s.pending, p)
	s.mu.Unlock()
	return nil
}

// storeCtxReader makes a Put's copy loop stop at the first Read after ctx is done.
type storeCtxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c storeCtxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
