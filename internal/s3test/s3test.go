// Package s3test runs S3 tests against a real S3 server, versitygw with its
// posix backend, so that they never skip and never test against a fake.
//
// With CERTMIX_S3_ENDPOINT set (CI starts one server for all packages and
// also sets CERTMIX_S3_ACCESS_KEY, CERTMIX_S3_SECRET_KEY and, optionally,
// CERTMIX_S3_ROOT and CERTMIX_S3_REGION), Start returns that server.
// Otherwise Start launches versitygw once per test binary, on 127.0.0.1 with
// a free port and a temporary root. The binary is $CERTMIX_VERSITYGW, or
// versitygw on PATH, or $(go env GOPATH)/bin/versitygw; install it with
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// A package whose tests call Start stops that server with a TestMain:
//
//	func TestMain(m *testing.M) { s3test.Main(m) }
//
// or, to check for leaked goroutines too:
//
//	func TestMain(m *testing.M) { os.Exit(s3test.Run(m, s3test.FindLeaks)) }
//
// Even without it, the server dies with the test binary (parent-death signal
// on Linux), but its temporary root is left behind.
//
// Fault tests that stop and restart a server use StartPrivate, whose server
// belongs to the calling test alone.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"go.uber.org/goleak"
)

// Credentials of the servers this package starts.
const (
	accessKey = "certmixtest"
	secretKey = "certmix-test-secret-9f3b"
	region    = "us-east-1"
)

// Server is a running S3 server and what a client needs to reach it.
type Server struct {
	// Endpoint is the server's URL, "http://127.0.0.1:PORT".
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Region is the signing region.
	Region string
	// Root is the posix backend's directory (one sub-directory per bucket),
	// or "" when an external server did not say.
	Root string

	proc *process // nil for an external server
}

// process is a versitygw process this package started.
type process struct {
	bin, addr string
	mu        sync.Mutex
	done      chan struct{} // closed when the process has exited
	cmd       *exec.Cmd
	ownsRoot  bool // remove Root when stopped for good
}

var (
	shared     *Server
	sharedErr  error
	sharedOnce sync.Once
)

// Start returns the server shared by the test binary, starting it on first
// use. It fails the test (never skips) when no server can be had.
func Start(t testing.TB) *Server {
	t.Helper()
	sharedOnce.Do(func() {
		if ep := os.Getenv("CERTMIX_S3_ENDPOINT"); ep != "" {
			shared = &Server{
				Endpoint:  ep,
				AccessKey: os.Getenv("CERTMIX_S3_ACCESS_KEY"),
				SecretKey: os.Getenv("CERTMIX_S3_SECRET_KEY"),
				Region:    cmp(os.Getenv("CERTMIX_S3_REGION"), region),
				Root:      os.Getenv("CERTMIX_S3_ROOT"),
			}
			return
		}
		s, err := launch("")
		if err != nil {
			sharedErr = err
			return
		}
		shared = s
	})
	if sharedErr != nil {
		t.Fatalf("s3test: %v", sharedErr)
	}
	return shared
}

// StartPrivate starts a versitygw server for the calling test alone, which
// may Stop and Restart it; it is stopped and its root removed when the test
// ends.
func StartPrivate(t testing.TB) *Server {
	t.Helper()
	s, err := launch(t.TempDir())
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Run runs the tests and then, if they passed, the checks (a check that
// returns an error fails the run); last it stops the shared server if this
// package started it. It returns the exit code for os.Exit. The checks run
// while the server is still up, so that FindLeaks sees connections that
// tests left open.
func Run(m *testing.M, checks ...func() error) int {
	code := m.Run()
	transport().CloseIdleConnections()
	for _, check := range checks {
		if code != 0 {
			break
		}
		if err := check(); err != nil {
			fmt.Fprintf(os.Stderr, "s3test: check after the tests: %v\n", err)
			code = 1
		}
	}
	if shared != nil && shared.proc != nil {
		shared.Stop()
		if shared.proc.ownsRoot {
			os.RemoveAll(shared.Root)
		}
	}
	return code
}

// FindLeaks returns an error listing the goroutines still running besides
// the test runner's and the one that holds a server started here. Close
// idle HTTP connections first: their goroutines would count as leaks.
func FindLeaks() error {
	return goleak.Find(goleak.IgnoreAnyFunction("certmix/internal/s3test.(*process).run"))
}

// Main is a TestMain that runs the tests and stops the shared server.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Binary returns the path of the versitygw binary, or an error that says how
// to install it.
func Binary() (string, error) {
	if p := os.Getenv("CERTMIX_VERSITYGW"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("versitygw not found on PATH nor in $(go env GOPATH)/bin: install it with " +
		"`go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`, " +
		"or set CERTMIX_S3_ENDPOINT, CERTMIX_S3_ACCESS_KEY and CERTMIX_S3_SECRET_KEY to use a running S3 server")
}

// launch starts versitygw with its posix root in root (a new temporary
// directory when empty) and waits until it answers.
func launch(root string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	owns := root == ""
	if owns {
		if root, err = os.MkdirTemp("", "certmix-s3test-"); err != nil {
			return nil, err
		}
	}
	s := &Server{AccessKey: accessKey, SecretKey: secretKey, Region: region, Root: root,
		proc: &process{bin: bin, ownsRoot: owns}}
	for try := 0; ; try++ { // a free port can be taken before versitygw binds it
		s.proc.addr, err = freeAddr()
		if err == nil {
			s.Endpoint = "http://" + s.proc.addr
			err = s.start()
		}
		if err == nil || try == 2 {
			break
		}
	}
	if err != nil && owns {
		os.RemoveAll(root)
	}
	return s, err
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start starts the process and waits up to 20 s for it to answer HTTP.
func (s *Server) start() error {
	p := s.proc
	p.mu.Lock()
	defer p.mu.Unlock()
	logf, err := os.CreateTemp("", "certmix-versitygw-*.log")
	if err != nil {
		return err
	}
	// A file, unlike a buffer, needs no copying goroutines; it is read only
	// to explain a failed start.
	defer os.Remove(logf.Name())
	defer logf.Close()
	p.cmd = exec.Command(p.bin, "--port", p.addr, "--quiet", "posix", s.Root)
	p.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	setParentDeathSignal(p.cmd)
	p.done = make(chan struct{})
	started := make(chan error, 1)
	go p.run(started)
	if err := <-started; err != nil {
		return fmt.Errorf("start %s: %w", p.bin, err)
	}
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		select {
		case <-p.done:
			out, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("versitygw on %s exited at start: %s", p.addr, out)
		default:
		}
		if resp, err := client.Get(s.Endpoint + "/"); err == nil {
			resp.Body.Close()
			client.CloseIdleConnections()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.cmd.Process.Kill()
	<-p.done
	out, _ := os.ReadFile(logf.Name())
	return fmt.Errorf("versitygw on %s did not answer within 20 s: %s", p.addr, out)
}

// run starts the process and waits for it to exit. The parent-death signal
// fires when the thread that started the child exits, so run keeps that
// thread locked until the child has exited.
func (p *process) run(started chan<- error) {
	runtime.LockOSThread()
	defer close(p.done)
	if err := p.cmd.Start(); err != nil {
		started <- err
		return
	}
	started <- nil
	p.cmd.Wait()
}

// Stop kills the server (as a crash would) and waits for it to exit. It is a
// no-op for an external server or one already stopped.
func (s *Server) Stop() {
	if s.proc == nil {
		return
	}
	s.proc.mu.Lock()
	defer s.proc.mu.Unlock()
	if s.proc.cmd != nil && s.proc.cmd.Process != nil {
		s.proc.cmd.Process.Kill()
		<-s.proc.done
	}
}

// Restart starts a stopped server again on the same address and root, and
// waits until it answers. It may run in a goroutine of the test (to bring a
// server back while a client is retrying), so it returns an error instead
// of failing the test.
func (s *Server) Restart() error {
	if s.proc == nil {
		return errors.New("s3test: cannot restart an external server; use StartPrivate")
	}
	s.Stop()
	if err := s.start(); err != nil {
		return fmt.Errorf("s3test: restart: %w", err)
	}
	return nil
}

// transport serves the clients of this package; Run closes its idle
// connections so that leak checks after the tests see none of them.
var transport = sync.OnceValue(func() *http.Transport {
	tr, err := minio.DefaultTransport(false)
	if err != nil {
		panic(err)
	}
	return tr
})

// newClient returns a minio-go client for the server.
func (s *Server) newClient(retries int) (*minio.Client, error) {
	host := strings.TrimPrefix(strings.TrimPrefix(s.Endpoint, "http://"), "https://")
	return minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure:       strings.HasPrefix(s.Endpoint, "https://"),
		Transport:    transport(),
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   retries,
	})
}

// Client returns a minio-go client for the server, for tests that look at
// the bucket behind a store's back.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := s.newClient(3)
	if err != nil {
		t.Fatalf("s3test: client for %s: %v", s.Endpoint, err)
	}
	return c
}

// Bucket creates an empty bucket with a unique name for the calling test and
// returns its name; the bucket and its objects are removed when the test
// ends (best effort).
func (s *Server) Bucket(t testing.TB) string {
	t.Helper()
	var rnd [4]byte
	rand.Read(rnd[:])
	base := strings.Trim(nonBucketChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	name := fmt.Sprintf("t-%.40s-%s", base, hex.EncodeToString(rnd[:]))
	name = strings.ReplaceAll(name, "--", "-")
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("s3test: make bucket %s at %s: %v", name, s.Endpoint, err)
	}
	t.Cleanup(func() { s.removeBucket(name) })
	return name
}

// nonBucketChars matches what may not appear in a bucket name.
var nonBucketChars = regexp.MustCompile(`[^a-z0-9-]+`)

// removeBucket empties and removes a bucket, ignoring errors (a fault test
// may have stopped the server).
func (s *Server) removeBucket(name string) {
	c, err := s.newClient(1)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	objs := c.ListObjects(ctx, name, minio.ListObjectsOptions{Recursive: true})
	for e := range c.RemoveObjects(ctx, name, objs, minio.RemoveObjectsOptions{}) {
		_ = e
	}
	c.RemoveBucket(ctx, name)
}

// cmp returns a unless it is empty, else b.
func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
