package shards

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"certmix/internal/s3test"

	"github.com/minio/minio-go/v7"
)

// storeClosedEndpoint returns an http:// endpoint on a loopback port nobody
// listens on.
func storeClosedEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// TestS3WrongCredentials: a rejected key says "access denied" with the S3
// error code, at once, and never shows the secret.
func TestS3WrongCredentials(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	for _, c := range []struct{ name, access, secret string }{
		{"wrong secret", srv.AccessKey, "Wr0ngSecret-do-not-print"},
		{"unknown key", "nosuchkey", "An0therSecret-do-not-print"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testS3Config(srv)
			cfg.AccessKey, cfg.SecretKey = c.access, c.secret
			start := time.Now()
			_, err := NewS3(t.Context(), cfg, bucket, "p")
			if err == nil {
				t.Fatal("NewS3 with wrong credentials succeeded")
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			if !strings.Contains(msg, "access denied") || !strings.Contains(msg, "S3 error code ") {
				t.Errorf("error does not say access denied with a code: %s", msg)
			}
			if strings.Contains(msg, c.secret) || strings.Contains(fmt.Sprintf("%+v %#v", err, cfg), c.secret) {
				t.Errorf("error or config shows the secret: %s", msg)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v: a denied request is not worth retrying", d)
			}
		})
	}
}

// TestS3Unreachable: a closed port fails within a bounded time, with an
// error that names the endpoint and says it is unreachable.
func TestS3Unreachable(t *testing.T) {
	for _, c := range []struct {
		retries int
		limit   time.Duration
	}{{1, 2 * time.Second}, {2, 5 * time.Second}, {0, 30 * time.Second}} {
		t.Run(fmt.Sprintf("retries=%d", c.retries), func(t *testing.T) {
			t.Parallel()
			ep := storeClosedEndpoint(t)
			cfg := S3Config{Endpoint: ep, AccessKey: "a", SecretKey: "SecretNotShown", Retries: c.retries}
			start := time.Now()
			_, err := NewS3(t.Context(), cfg, "bucket", "")
			d := time.Since(start)
			if err == nil {
				t.Fatal("NewS3 on a closed port succeeded")
			}
			msg := err.Error()
			t.Logf("after %v: %s", d, msg)
			if !strings.Contains(msg, "unreachable") || !strings.Contains(msg, strings.TrimPrefix(ep, "http://")) {
				t.Errorf("error does not say the endpoint is unreachable: %s", msg)
			}
			if strings.Contains(msg, "SecretNotShown") {
				t.Errorf("error shows the secret: %s", msg)
			}
			if d > c.limit {
				t.Errorf("took %v, want at most %v", d, c.limit)
			}
		})
	}
}

// TestS3MissingBucket: NewS3 says that the bucket does not exist.
func TestS3MissingBucket(t *testing.T) {
	srv := s3test.Start(t)
	_, err := NewS3(t.Context(), testS3Config(srv), "no-such-bucket-certmix", "")
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("NewS3 on a missing bucket: %v", err)
	}
}

// TestS3PrefixIsolation: a store sees only its prefix, not a sibling prefix
// that shares its first characters nor directory markers.
func TestS3PrefixIsolation(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	c := srv.Client(t)
	for _, key := range []string{"data/set1x/y", "other/x", "data/set1/", "data/set1/sub/", "top"} {
		if _, err := c.PutObject(t.Context(), bucket, key, bytes.NewReader(nil), 0, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	st, err := NewS3(t.Context(), testS3Config(srv), bucket, "/"+testS3Prefix+"/")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.String(), "s3://"+bucket+"/"+testS3Prefix; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	storeMustPut(t, st, "mine", []byte("m"))
	storeMustList(t, st, "mine")
	if _, err := c.StatObject(t.Context(), bucket, testS3Prefix+"/mine", minio.StatObjectOptions{}); err != nil {
		t.Errorf("object not stored under the prefix: %v", err)
	}
	root, err := NewS3(t.Context(), testS3Config(srv), bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := root.String(); got != "s3://"+bucket {
		t.Errorf("String = %q", got)
	}
	storeMustList(t, root, "data/set1/mine", "data/set1x/y", "other/x", "top")
}

// TestS3NoIncompleteUploads: cancelled and failed multipart uploads are
// aborted, so they leave no parts behind on the server.
func TestS3NoIncompleteUploads(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	st, err := NewS3(t.Context(), testS3Config(srv), bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	for _, size := range []int64{-1, 40 << 20} {
		if err := st.Put(t.Context(), "big", storeFailingReader(storeTestBytes(1, 20<<20), boom), size); !errors.Is(err, boom) {
			t.Fatalf("put: %v", err)
		}
	}
	for u := range srv.Client(t).ListIncompleteUploads(t.Context(), bucket, "", true) {
		t.Errorf("incomplete upload left: %+v", u)
	}
}

// TestS3ObjectChangedAfterOpen: a read after the object was replaced fails
// instead of mixing the bytes of two versions.
func TestS3ObjectChangedAfterOpen(t *testing.T) {
	st := newTestS3(t)
	storeMustPut(t, st, "o", storeTestBytes(1, 1000))
	obj, err := st.Open(t.Context(), "o")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	storeMustPut(t, st, "o", storeTestBytes(2, 1000))
	if _, err := obj.ReadAt(make([]byte, 10), 0); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("read of a replaced object: %v", err)
	}
}

// TestS3ServerRestart: requests fail clearly while the server is down,
// succeed again after it is back, and retries bridge a short outage.
func TestS3ServerRestart(t *testing.T) {
	srv := s3test.StartPrivate(t)
	cfg := testS3Config(srv)
	cfg.Retries = 10
	st, err := NewS3(t.Context(), cfg, srv.Bucket(t), "p")
	if err != nil {
		t.Fatal(err)
	}
	data := storeTestBytes(1, 100_000)
	storeMustPut(t, st, "o", data)
	obj, err := st.Open(t.Context(), "o")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()

	// Down for good: a store with few retries says so.
	srv.Stop()
	cfg1 := cfg
	cfg1.Retries = 1
	if _, err := NewS3(t.Context(), cfg1, "bucket", ""); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("NewS3 while down: %v", err)
	}

	// Down for a moment: retries bridge the outage, for reads and writes.
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		restarted <- srv.Restart()
	}()
	p := make([]byte, 1000)
	if n, err := obj.ReadAt(p, 99_000); n != 1000 || err != nil || !bytes.Equal(p, data[99_000:]) {
		t.Fatalf("ReadAt across a restart = %d, %v", n, err)
	}
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	go func() {
		time.Sleep(300 * time.Millisecond)
		restarted <- srv.Restart()
	}()
	if err := st.Put(t.Context(), "o2", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("put across a restart: %v", err)
	}
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	storeMustContent(t, st, "o2", data)
	storeMustList(t, st, "o", "o2")
}

// TestS3ContextDeadline: a deadline cuts retries short and the error says
// so.
func TestS3ContextDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := NewS3(ctx, S3Config{Endpoint: storeClosedEndpoint(t), Retries: 100}, "bucket", "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("NewS3 past its deadline: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestS3ConfigFromEnv reads the AWS variables.
func TestS3ConfigFromEnv(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:7070")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "ak")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "sk-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	got := S3ConfigFromEnv()
	want := S3Config{Endpoint: "http://127.0.0.1:7070", Region: "us-east-1", AccessKey: "ak", SecretKey: "sk-secret"}
	if got != want {
		t.Errorf("S3ConfigFromEnv = %+v, want %+v", got, want)
	}
	t.Setenv("AWS_REGION", "eu-west-3")
	if got := S3ConfigFromEnv(); got.Region != "eu-west-3" {
		t.Errorf("Region = %q", got.Region)
	}
	for _, s := range []string{fmt.Sprint(got), fmt.Sprintf("%+v", got), fmt.Sprintf("%#v", got)} {
		if strings.Contains(s, "sk-secret") {
			t.Errorf("formatted config shows the secret: %s", s)
		}
	}
}

// TestS3ParseEndpoint: the scheme decides TLS, no scheme means https.
func TestS3ParseEndpoint(t *testing.T) {
	for _, c := range []struct {
		in, host string
		secure   bool
		bad      bool
	}{
		{"http://127.0.0.1:7070", "127.0.0.1:7070", false, false},
		{"http://127.0.0.1:7070/", "127.0.0.1:7070", false, false},
		{"https://s3.example.org", "s3.example.org", true, false},
		{"s3.example.org:9000", "s3.example.org:9000", true, false},
		{"", "s3.amazonaws.com", true, false},
		{"ftp://host", "", false, true},
		{"http://host/path", "", false, true},
		{"http://user:pw@host", "", false, true},
		{"http://", "", false, true},
	} {
		host, secure, err := s3ParseEndpoint(c.in)
		if (err != nil) != c.bad || host != c.host || secure != c.secure {
			t.Errorf("s3ParseEndpoint(%q) = %q, %v, %v", c.in, host, secure, err)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// TestOpenStore parses store URLs and opens real stores.
func TestOpenStore(t *testing.T) {
	for _, c := range []struct {
		in  string
		out storeURL
		bad string // part of the error; "" for none
	}{
		{"data/x", storeURL{dir: "data/x"}, ""},
		{"/abs/x", storeURL{dir: "/abs/x"}, ""},
		{"file:///abs/x", storeURL{dir: "/abs/x"}, ""},
		{"file://rel/x", storeURL{dir: "rel/x"}, ""},
		{"s3://bucket", storeURL{bucket: "bucket"}, ""},
		{"s3://bucket/", storeURL{bucket: "bucket"}, ""},
		{"s3://bucket/a/b/", storeURL{bucket: "bucket", prefix: "a/b"}, ""},
		{"s3://bucket//a/b", storeURL{bucket: "bucket", prefix: "a/b"}, ""},
		{"S3://bucket/p", storeURL{bucket: "bucket", prefix: "p"}, ""},
		{"s3://", storeURL{}, "missing bucket"},
		{"s3:///p", storeURL{}, "missing bucket"},
		{"s3:bucket/p", storeURL{}, "s3://bucket"},
		{"s3://key:secretpw@bucket/p", storeURL{}, "credentials"},
		{"http://host/p", storeURL{}, "s3://bucket"},
		{"gs://bucket/p", storeURL{}, "unsupported scheme"},
		{"file://", storeURL{}, "empty path"},
		{"", storeURL{}, "empty"},
	} {
		got, err := storeParseURL(c.in)
		switch {
		case c.bad == "" && (err != nil || got != c.out):
			t.Errorf("storeParseURL(%q) = %+v, %v; want %+v", c.in, got, err, c.out)
		case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("storeParseURL(%q): error %v, want one containing %q", c.in, err, c.bad)
		case err != nil && strings.Contains(err.Error(), "secretpw"):
			t.Errorf("error shows the secret: %v", err)
		}
	}

	dir := t.TempDir() + "/local"
	for _, u := range []string{dir, "file://" + dir} {
		st, err := OpenStore(t.Context(), u, S3Config{})
		if err != nil || st.String() != dir {
			t.Errorf("OpenStore(%q) = %v, %v", u, st, err)
		}
	}
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	st, err := OpenStore(t.Context(), "s3://"+bucket+"/a/b/", testS3Config(srv))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.String(); got != "s3://"+bucket+"/a/b" {
		t.Errorf("String = %q", got)
	}
	storeMustPut(t, st, "x", []byte("x"))
	storeMustList(t, st, "x")
	if _, err := OpenStore(t.Context(), "gs://b/p", S3Config{}); err == nil || !strings.Contains(err.Error(), "s3://") {
		t.Errorf("OpenStore(gs://) = %v, want an error listing the schemes", err)
	}
}

// cutProxy forwards TCP connections to addr; while cuts > 0, it ends a
// response a few bytes into its body, as a dropped connection would.
type cutProxy struct {
	l    net.Listener
	addr string
	cuts atomic.Int32
	wg   sync.WaitGroup
}

// startCutProxy starts a proxy to the server behind endpoint; it is closed
// when the test ends.
func startCutProxy(t *testing.T, endpoint string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, addr: strings.TrimPrefix(endpoint, "http://")}
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.serve(c) })
		}
	})
	t.Cleanup(func() { l.Close(); p.wg.Wait() })
	return p
}

// serve forwards one connection.
func (p *cutProxy) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.addr)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { io.Copy(s, c); s.Close() }()
	var seen []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		chunk := buf[:n]
		if n > 0 && p.cuts.Load() > 0 {
			seen = append(seen, chunk...)
			if i := bytes.Index(seen, []byte("\r\n\r\n")); i >= 0 && bytes.HasPrefix(seen, []byte("HTTP/1.1 206")) &&
				len(seen) > i+4+10 && p.cuts.Add(-1) >= 0 {
				c.Write(seen[:i+4+10])
				return
			}
			if len(seen) < 64<<10 {
				continue // hold the response until the cut point is known
			}
			chunk, seen = seen, nil
		}
		if len(chunk) > 0 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestS3ReadAtRetriesCutBody: a body cut short is read again, up to the
// retry limit, after which the error says what happened.
func TestS3ReadAtRetriesCutBody(t *testing.T) {
	srv := s3test.Start(t)
	proxy := startCutProxy(t, srv.Endpoint)
	cfg := testS3Config(srv)
	cfg.Endpoint = "http://" + proxy.l.Addr().String()
	st, err := NewS3(t.Context(), cfg, srv.Bucket(t), "p")
	if err != nil {
		t.Fatal(err)
	}
	data := storeTestBytes(1, 200_000)
	storeMustPut(t, st, "o", data)
	obj, err := st.Open(t.Context(), "o")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	p := make([]byte, 100_000)
	proxy.cuts.Store(int32(cfg.Retries - 1))
	if n, err := obj.ReadAt(p, 50_000); n != len(p) || err != nil || !bytes.Equal(p, data[50_000:150_000]) {
		t.Fatalf("ReadAt with %d cut bodies = %d, %v", cfg.Retries-1, n, err)
	}
	proxy.cuts.Store(int32(cfg.Retries))
	if _, err := obj.ReadAt(p, 50_000); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadAt with %d cut bodies: %v, want unexpected EOF", cfg.Retries, err)
	}
	proxy.cuts.Store(0)
}
