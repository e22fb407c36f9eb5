package doctest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"certmix/internal/s3test"

	"github.com/minio/minio-go/v7"
)

func TestMain(m *testing.M) { os.Exit(s3test.Run(m)) }

// repoRoot is the repository's root, seen from this package's directory.
const repoRoot = "../.."

// docBucket is the bucket the docs' S3 examples name (s3://bucket/...).
const docBucket = "bucket"

// blockTimeout bounds one block: the docs' blocks take seconds.
const blockTimeout = 5 * time.Minute

// copied are the repository's folders a scratch directory gets a copy of,
// because the docs' commands name files in them (sweep files, the Python
// client, the reference weights).
var copied = []string{"sweeps", "clients", "testdata"}

// TestDocCommands runs every shell block of README.md and docs/*.md, as
// shown, in order, one scratch directory per file, with the commands of
// tools/ built once and first on PATH. A block that fails fails the test
// (with its output) and stops its file; blocks marked skip, and s3 or
// slurm blocks without their server, are skipped with the reason.
func TestDocCommands(t *testing.T) {
	top := t
	if testing.Short() {
		t.Skip("-short: the docs' commands train and certify small models (about a minute)")
	}
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join(repoRoot, "README.md")}, files...)

	bin := buildCommands(t)
	env := append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"PYTHONDONTWRITEBYTECODE=1", // no __pycache__ in the copied client
		"OUT=out",                   // the sweep files' ${OUT:-out}, whatever the caller's OUT
	)
	var (
		s3mu  sync.Mutex
		s3env []string // set by the first s3 block
	)
	for _, file := range files {
		rel, _ := filepath.Rel(repoRoot, file)
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := Blocks(rel, string(data))
		if err != nil {
			t.Error(err)
			continue
		}
		t.Run(rel, func(t *testing.T) {
			// Files run at once: their commands wait on disk and process
			// start-up as much as they compute.
			t.Parallel()
			dir := scratch(t)
			for _, b := range blocks {
				name := fmt.Sprintf("line%d", b.Line)
				ok := t.Run(name, func(t *testing.T) {
					switch {
					case b.Skip != "":
						t.Skipf("%s:%d: %s", rel, b.Line, b.Skip)
					case b.Slurm && os.Getenv("SLURM_CONF") == "":
						t.Fatalf("%s:%d: needs a Slurm cluster: SLURM_CONF is not set (task test and .ci/run start one with .ci/slurm)", rel, b.Line)
					}
					blockEnv := env
					if b.S3 {
						s3mu.Lock()
						if s3env == nil {
							s3env = s3Env(t, top)
						}
						blockEnv = append(append([]string(nil), env...), s3env...)
						s3mu.Unlock()
					}
					runBlock(t, dir, blockEnv, rel, b)
				})
				if !ok {
					t.Logf("%s: the blocks after line %d not run: they may need what it made", rel, b.Line)
					return
				}
			}
		})
	}
}

// buildCommands builds ./tools/... into a temporary directory and returns it.
func buildCommands(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	// go test puts the go command that runs it first on PATH.
	cmd := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./tools/...")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./tools/...: %v\n%s", err, out)
	}
	return bin
}

// scratch returns a new directory holding copies of the folders the docs'
// commands read.
func scratch(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range copied {
		if err := os.CopyFS(filepath.Join(dir, d), os.DirFS(filepath.Join(repoRoot, d))); err != nil {
			t.Fatalf("copy %s: %v", d, err)
		}
	}
	return dir
}

// s3Env starts (or finds) the test S3 server, makes the docs' bucket and
// returns the variables the commands read. The bucket is removed when top
// ends, so that every file's s3 blocks share it.
func s3Env(t, top *testing.T) []string {
	t.Helper()
	s := s3test.Start(t)
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exists, err := c.BucketExists(ctx, docBucket)
	if err != nil {
		t.Fatalf("bucket %s at %s: %v", docBucket, s.Endpoint, err)
	}
	if !exists {
		if err := c.MakeBucket(ctx, docBucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
			t.Fatalf("make bucket %s at %s: %v", docBucket, s.Endpoint, err)
		}
	}
	top.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		objs := c.ListObjects(ctx, docBucket, minio.ListObjectsOptions{Recursive: true})
		for e := range c.RemoveObjects(ctx, docBucket, objs, minio.RemoveObjectsOptions{}) {
			top.Logf("remove %s/%s: %v", docBucket, e.ObjectName, e.Err)
		}
		if err := c.RemoveBucket(ctx, docBucket); err != nil {
			top.Logf("remove bucket %s: %v", docBucket, err)
		}
	})
	return []string{
		"AWS_ENDPOINT_URL=" + s.Endpoint,
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
	}
}

// runBlock runs one block with bash (errexit, pipefail) in dir and fails
// the test, with the block's output, when it exits non-zero. Whatever the
// block left running in the background is killed afterwards.
func runBlock(t *testing.T, dir string, env []string, file string, b Block) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), blockTimeout)
	defer cancel()
	out, err := os.CreateTemp(t.TempDir(), "output")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -eo pipefail\n"+b.Script)
	cmd.Dir, cmd.Env = dir, env
	// A file, not a pipe: a server the block started in the background
	// would hold a pipe open after bash exits.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	err = cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // background servers left behind
	}
	if err == nil {
		t.Logf("%s:%d: ok in %v", file, b.Line, time.Since(start).Round(time.Millisecond))
		return
	}
	output, _ := os.ReadFile(out.Name())
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("still running after %v: %w", blockTimeout, err)
	}
	t.Fatalf("%s:%d: %v\n--- block:\n%s--- output (last 4 KiB):\n%s", file, b.Line, err, b.Script, tail(output, 4096))
}

// tail returns the last n bytes of b.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// TestBlocks checks what Blocks finds and refuses.
func TestBlocks(t *testing.T) {
	tests := []struct {
		name, md string
		want     []Block
		err      string
	}{
		{
			name: "shell blocks only, in order, with their lines",
			md:   "# t\n```sh\necho a\n```\n```go\nx := 1\n```\n```bash\necho b\necho c\n```\n",
			want: []Block{{Line: 2, Script: "echo a\n"}, {Line: 8, Script: "echo b\necho c\n"}},
		},
		{
			name: "attributes",
			md:   "```sh {skip=\"needs CIFAR-10\"}\nx\n```\n```sh {s3}\ny\n```\n```sh {slurm}\nz\n```\n",
			want: []Block{{Line: 1, Script: "x\n", Skip: "needs CIFAR-10"}, {Line: 4, Script: "y\n", S3: true}, {Line: 7, Script: "z\n", Slurm: true}},
		},
		{
			name: "a shell fence inside another block is text",
			md:   "````markdown\n```sh\nnot run\n```\n````\n",
			want: nil,
		},
		{name: "unknown attribute", md: "```sh {skp=\"x\"}\nx\n```\n", err: `doc.md:1: unknown attribute "skp=\"x\""`},
		{name: "skip without a reason", md: "```sh {skip}\nx\n```\n", err: "doc.md:1: attribute skip needs a reason"},
		{name: "attributes without braces", md: "```sh skip\nx\n```\n", err: "want them in braces"},
		{name: "never closed", md: "text\n```sh\nx\n", err: "doc.md:2: shell block is never closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Blocks("doc.md", tt.md)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
