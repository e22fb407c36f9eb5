package main

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"certmix/internal/s3test"
	"certmix/internal/testsets"
	"certmix/shards"
)

func TestMain(m *testing.M) { s3test.Main(m) }

// TestSecretNeverWritten trains and certifies a tiny model from datasets in
// a real S3 bucket, then a run with a wrong secret, and searches every
// output for the secrets: standard output and error, the checkpoints,
// metrics, radii, reports and plots.
func TestSecretNeverWritten(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	cfg := shards.S3Config{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	shape := shards.Shape{Height: 28, Width: 28, Channels: 1, Classes: 10}
	for i, name := range []string{"real", "gen", "test"} {
		st, err := shards.NewS3(ctx, cfg, bucket, name)
		if err != nil {
			t.Fatal(err)
		}
		testsets.Write(t, st, 128, shape, 64, 32, int64(i)*1000)
	}
	bin := buildCertmix(t)
	env := append(os.Environ(), "AWS_ENDPOINT_URL="+srv.Endpoint, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_REGION="+srv.Region)
	out := t.TempDir()
	var outputs []string
	run := func(secret string, wantOK bool, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(env, "AWS_SECRET_ACCESS_KEY="+secret)
		b, err := cmd.CombinedOutput()
		outputs = append(outputs, string(b))
		if (err == nil) != wantOK {
			t.Fatalf("certmix %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	url := func(name string) string { return "s3://" + bucket + "/" + name }
	run(srv.SecretKey, true, "train", "--real", url("real"), "--generated", url("gen"), "--fraction", "0.5", "--depth", "1", "--width", "4",
		"--batch", "32", "--epochs", "2", "--eval", "32", "--test", url("test"), "--out", filepath.Join(out, "run"))
	run(srv.SecretKey, true, "certify", "--checkpoint", filepath.Join(out, "run", "last.safetensors"), "--test", url("test"),
		"--train", url("real"), "--out", filepath.Join(out, "certify"))
	const wrong = "not-the-secret-7321"
	run(wrong, false, "certify", "--checkpoint", filepath.Join(out, "run", "last.safetensors"), "--test", url("test"), "--out", filepath.Join(out, "denied"))
	if last := outputs[len(outputs)-1]; !strings.Contains(strings.ToLower(last), "access denied") {
		t.Errorf("a wrong secret did not give an access-denied error:\n%s", last)
	}
	files := 0
	err := filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files++
		outputs = append(outputs, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 6 {
		t.Fatalf("only %d output files: the run did not write its checkpoints, metrics and reports", files)
	}
	for _, o := range outputs {
		for _, s := range []string{srv.SecretKey, wrong} {
			if strings.Contains(o, s) {
				t.Fatalf("a secret appears in an output:\n%.2000s", o)
			}
		}
	}
}
