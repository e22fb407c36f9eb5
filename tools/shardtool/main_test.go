package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"certmix/internal/s3test"
	"certmix/shards"
)

// The tests run the real binary, as a user does: flags, output, exit codes.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shardtool-test")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "shardtool")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := s3test.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
	if err != nil && r.code <= 0 {
		t.Fatalf("shardtool %v: %v", args, err)
	}
	return r
}

func ok(t *testing.T, env []string, args ...string) string {
	t.Helper()
	r := run(t, env, args...)
	if r.code != 0 {
		t.Fatalf("shardtool %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

const fmnist = "/usr/share/datasets/fashion-mnist"

func TestFashionMNISTEndToEnd(t *testing.T) {
	out := t.TempDir()
	for split, rows := range map[string]int{"train": 60000, "test": 10000} {
		ds := filepath.Join(out, split)
		got := ok(t, nil, "build", "--in", fmnist, "--split", split, "--name", "fashion-mnist-"+split, "--out", ds)
		for _, want := range []string{fmt.Sprintf("images    %d of 28x28x1", rows), "10 classes", "fashion-mnist-" + split} {
			if !strings.Contains(got, want) {
				t.Errorf("build summary lacks %q:\n%s", want, got)
			}
		}
		if got := ok(t, nil, "verify", ds); !strings.Contains(got, fmt.Sprintf("%d rows", rows)) {
			t.Errorf("verify: %s", got)
		}
		if got := ok(t, nil, "inspect", ds); !strings.Contains(got, fmt.Sprintf("%6d", rows/10)) {
			t.Errorf("inspect lacks the per-class count %d:\n%s", rows/10, got)
		}
	}
	var m shards.Manifest
	if err := json.Unmarshal([]byte(ok(t, nil, "inspect", "--json", filepath.Join(out, "train"))), &m); err != nil {
		t.Fatal(err)
	}
	if m.Rows != 60000 || m.Provenance.Source != "idx" || len(m.Provenance.Inputs) != 2 {
		t.Errorf("manifest: %d rows, source %q, %d inputs", m.Rows, m.Provenance.Source, len(m.Provenance.Inputs))
	}
	grid := filepath.Join(out, "grid.png")
	ok(t, nil, "peek", filepath.Join(out, "train"), "--out", grid, "-n", "16")
	f, err := os.Open(grid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("peek wrote no PNG: %v", err)
	}
}

func TestHelpExplainsEveryCommand(t *testing.T) {
	for _, c := range commands {
		r := run(t, nil, c.Name, "--help")
		if r.code != 0 || !strings.Contains(r.stderr, "Usage: shardtool "+c.Name) || !strings.Contains(r.stderr, "Examples:") {
			t.Errorf("%s --help: exit %d\n%s", c.Name, r.code, r.stderr)
		}
	}
	if r := run(t, nil); r.code != 2 || !strings.Contains(r.stderr, "Commands:") {
		t.Errorf("no command: exit %d\n%s", r.code, r.stderr)
	}
}

// TestBadInputWritesNothing: each bad input exits non-zero with an error
// naming the file and what was wrong, and leaves no dataset behind.
func TestBadInputWritesNothing(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cifarShort := write("data_batch_1.bin", make([]byte, 3073*2+100))
	cifarGood := write("test_batch.bin", append([]byte{3}, make([]byte, 3072)...))
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	w, _ := zw.Create("image.npy")
	w.Write(npy("|u1", "(1, 2, 2, 3)", make([]byte, 12)))
	zw.Close()
	noLabel := write("nolabel.npz", zbuf.Bytes())
	zbuf.Reset()
	zw = zip.NewWriter(&zbuf)
	w, _ = zw.Create("image.npy")
	w.Write(npy("|u1", "(1, 3, 32, 32)", make([]byte, 3*32*32)))
	w, _ = zw.Create("label.npy")
	w.Write(npy("|u1", "(1,)", []byte{0}))
	zw.Close()
	nchw := write("nchw.npz", zbuf.Bytes())
	existing := filepath.Join(dir, "existing")
	ok(t, nil, "build", "--in", cifarGood, "--out", existing)

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"cifar size", []string{"--in", cifarShort}, []string{cifarShort, "3073"}},
		{"label range", []string{"--in", write("data_batch_2.bin", append(make([]byte, 3073), append([]byte{10}, make([]byte, 3072)...)...))}, []string{"data_batch_2.bin", "record 1", "10"}},
		{"npz without label", []string{"--in", noLabel}, []string{noLabel, "label"}},
		{"missing file", []string{"--in", filepath.Join(dir, "absent.npz")}, []string{"absent.npz does not exist"}},
		{"missing directory", []string{"--in", filepath.Join(dir, "nodir")}, []string{filepath.Join(dir, "nodir") + " does not exist"}},
		{"npz in NCHW", []string{"--in", nchw}, []string{nchw, "image.npy", "32 channels", "looks like NCHW", "np.transpose(image, (0, 2, 3, 1))"}},
		{"truncated gz", []string{"--in", write("train-images-idx3-ubyte.gz", truncatedGz(t)) + "," + filepath.Join(fmnist, "train-labels-idx1-ubyte.gz")}, []string{"train-images-idx3-ubyte.gz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(tc.name, " ", "-"))
			r := run(t, nil, append([]string{"build", "--out", out}, tc.args...)...)
			if r.code == 0 {
				t.Fatalf("exit 0 for %s", tc.name)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("error lacks %q: %s", w, r.stderr)
				}
			}
			if _, err := os.Stat(filepath.Join(out, shards.ManifestName)); err == nil {
				t.Error("a manifest was written")
			}
			if r := run(t, nil, "verify", out); r.code == 0 || !strings.Contains(r.stderr, "not a dataset") {
				t.Errorf("verify of the failed output: exit %d, %s", r.code, r.stderr)
			}
		})
	}
	r := run(t, nil, "build", "--in", cifarGood, "--out", existing)
	if r.code == 0 || !strings.Contains(r.stderr, "already holds a dataset") || !strings.Contains(r.stderr, "--overwrite") {
		t.Errorf("build over a dataset: exit %d, %s", r.code, r.stderr)
	}
}

// npy returns a .npy file: version 1.0 header, then data.
func npy(descr, shape string, data []byte) []byte {
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape)
	dict += strings.Repeat(" ", (64-(10+len(dict)+1)%64)%64) + "\n"
	h := append([]byte("\x93NUMPY\x01\x00"), byte(len(dict)), byte(len(dict)>>8))
	return append(append(h, dict...), data...)
}

// truncatedGz returns the first half of the real Fashion-MNIST training images.
func truncatedGz(t *testing.T) []byte {
	data, err := os.ReadFile(filepath.Join(fmnist, "train-images-idx3-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	return data[:len(data)/2]
}

func TestS3EndToEnd(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	env := []string{"AWS_ENDPOINT_URL=" + srv.Endpoint, "AWS_ACCESS_KEY_ID=" + srv.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_REGION=" + srv.Region}
	url := "s3://" + bucket + "/fmnist/test"
	// Every output of a run, the manifest included, is checked for the secret.
	var outputs []string
	keep := func(r result) result { outputs = append(outputs, r.stdout, r.stderr); return r }
	keep(run(t, env, "build", "--in", fmnist, "--split", "test", "--out", url, "--shard-mib", "2"))
	if got := keep(run(t, env, "verify", url)); !strings.Contains(got.stdout, "10000 rows") {
		t.Errorf("verify: %s%s", got.stdout, got.stderr)
	}
	keep(run(t, env, "inspect", "--json", url))
	keep(run(t, env, "sample", "--real", url, "--fraction", "0", "--batch", "64", "--steps", "3"))
	keep(run(t, env, "build", "--in", fmnist, "--split", "test", "--out", url)) // refused: a dataset is there
	for _, o := range outputs {
		if strings.Contains(o, srv.SecretKey) {
			t.Fatalf("the S3 secret appears in an output:\n%s", o)
		}
	}
	// The same build to local disk gives the same shards, byte for byte.
	local := t.TempDir()
	ok(t, nil, "build", "--in", fmnist, "--split", "test", "--out", local, "--shard-mib", "2")
	var a, b shards.Manifest
	json.Unmarshal([]byte(ok(t, env, "inspect", "--json", url)), &a)
	json.Unmarshal([]byte(ok(t, nil, "inspect", "--json", local)), &b)
	if len(a.Shards) < 2 || fmt.Sprint(a.Shards) != fmt.Sprint(b.Shards) {
		t.Errorf("S3 and local shards differ:\n%v\n%v", a.Shards, b.Shards)
	}

	wrong := append(env[:len(env):len(env)], "AWS_SECRET_ACCESS_KEY=not-the-secret-0451")
	r := run(t, wrong, "build", "--in", fmnist, "--split", "test", "--out", "s3://"+bucket+"/denied")
	if r.code == 0 || !strings.Contains(strings.ToLower(r.stderr), "access denied") || strings.Contains(r.stderr, "not-the-secret-0451") || strings.Contains(r.stderr, srv.SecretKey) {
		t.Errorf("wrong credentials: exit %d, %s", r.code, r.stderr)
	}
	start := time.Now()
	r = run(t, append(env, "AWS_ENDPOINT_URL=http://127.0.0.1:1"), "build", "--in", fmnist, "--split", "test", "--s3-retries", "2", "--out", "s3://"+bucket+"/unreachable")
	if r.code == 0 || !strings.Contains(r.stderr, "127.0.0.1:1") || time.Since(start) > 30*time.Second {
		t.Errorf("unreachable endpoint: exit %d after %s, %s", r.code, time.Since(start), r.stderr)
	}
}
