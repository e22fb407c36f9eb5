package s3test

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func TestMain(m *testing.M) { os.Exit(Run(m, FindLeaks)) }

// TestSharedServer puts and gets an object in a fresh bucket of the shared
// server.
func TestSharedServer(t *testing.T) {
	s := Start(t)
	if s2 := Start(t); s2 != s {
		t.Fatal("Start returned a second server")
	}
	roundTrip(t, s, s.Bucket(t))
}

// TestBucketsAreUnique creates two buckets for one test.
func TestBucketsAreUnique(t *testing.T) {
	s := Start(t)
	if a, b := s.Bucket(t), s.Bucket(t); a == b {
		t.Fatalf("two buckets named %s", a)
	}
}

// TestPrivateStopRestart stops a private server, sees requests fail, and
// restarts it with its data intact.
func TestPrivateStopRestart(t *testing.T) {
	s := StartPrivate(t)
	bucket := s.Bucket(t)
	roundTrip(t, s, bucket)
	s.Stop()
	c, err := s.newClient(1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.StatObject(ctx, bucket, "k", minio.StatObjectOptions{}); err == nil {
		t.Fatal("stat on a stopped server succeeded")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StatObject(ctx, bucket, "k", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("stat after restart: %v", err)
	}
}

// roundTrip puts and gets back one object.
func roundTrip(t *testing.T, s *Server, bucket string) {
	t.Helper()
	c := s.Client(t)
	ctx := context.Background()
	data := []byte("hello, versitygw")
	if _, err := c.PutObject(ctx, bucket, "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put: %v", err)
	}
	obj, err := c.GetObject(ctx, bucket, "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer obj.Close()
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get = %q, %v; want %q", got, err, data)
	}
}

// TestBinaryMissing: without versitygw the error says how to install it.
func TestBinaryMissing(t *testing.T) {
	t.Setenv("CERTMIX_VERSITYGW", "")
	t.Setenv("PATH", t.TempDir())
	t.Setenv("GOPATH", t.TempDir())
	_, err := Binary()
	if err == nil || !strings.Contains(err.Error(), "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0") {
		t.Fatalf("Binary() = %v", err)
	}
}
