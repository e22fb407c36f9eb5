package shards

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Defaults of S3Config.
const (
	// DefaultS3Retries is the number of attempts made for one request when
	// S3Config.Retries is 0.
	DefaultS3Retries = 5
	// DefaultS3DialTimeout bounds one TCP connect when S3Config.DialTimeout
	// is 0; with DefaultS3Retries an unreachable endpoint fails in about 25 s.
	DefaultS3DialTimeout = 4 * time.Second
	// DefaultS3Region is used when S3Config.Region is empty.
	DefaultS3Region = "us-east-1"
	// s3PartSize is the part size of multipart uploads of unknown size: one
	// such buffer is held per upload (minio-go's default would be far larger),
	// and it caps the object at 10,000 parts, 160 GiB.
	s3PartSize = 16 << 20
)

// S3Config says how to reach an S3-compatible service.
type S3Config struct {
	// Endpoint is "http://host:port" or "https://host[:port]"; a bare
	// "host[:port]" means https. Empty means AWS (s3.amazonaws.com).
	Endpoint string
	// Region is the signing region; empty means DefaultS3Region.
	Region string
	// AccessKey, SecretKey and SessionToken are the credentials; all empty
	// means anonymous requests.
	AccessKey, SecretKey, SessionToken string
	// Retries bounds the attempts made for one request, the first included
	// (1 disables retries; 0 means DefaultS3Retries). Transient failures
	// (refused or reset connections, timeouts, 5xx) are retried with
	// exponential backoff that honours the context.
	Retries int
	// DialTimeout bounds one TCP connect (0 means DefaultS3DialTimeout).
	DialTimeout time.Duration
}

// S3ConfigFromEnv reads the AWS variables: AWS_ENDPOINT_URL, AWS_REGION
// (default us-east-1), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN. Callers override fields set by flags afterwards.
func S3ConfigFromEnv() S3Config {
	c := S3Config{
		Endpoint:     os.Getenv("AWS_ENDPOINT_URL"),
		Region:       os.Getenv("AWS_REGION"),
		AccessKey:    os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey:    os.Getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken: os.Getenv("AWS_SESSION_TOKEN"),
	}
	if c.Region == "" {
		c.Region = DefaultS3Region
	}
	return c
}

// String describes the configuration with the secrets masked, so that
// printing a config with %v or %+v never leaks them.
func (c S3Config) String() string {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "***"
	}
	return fmt.Sprintf("S3Config{Endpoint:%q Region:%q AccessKey:%q SecretKey:%q SessionToken:%q Retries:%d DialTimeout:%v}",
		c.Endpoint, c.Region, c.AccessKey, mask(c.SecretKey), mask(c.SessionToken), c.Retries, c.DialTimeout)
}

// GoString masks the secrets for %#v as String does for %v.
func (c S3Config) GoString() string { return c.String() }

// s3ParseEndpoint splits an endpoint into minio-go's host[:port] and TLS flag.
func s3ParseEndpoint(ep string) (host string, secure bool, err error) {
	if ep == "" {
		return "s3.amazonaws.com", true, nil
	}
	if !strings.Contains(ep, "://") {
		ep = "https://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", false, fmt.Errorf("s3 endpoint %q: %w", ep, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", false, fmt.Errorf("s3 endpoint %q: scheme must be http or https", ep)
	case u.User != nil:
		return "", false, errors.New("s3 endpoint: credentials in the URL are not supported; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	case u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", false, fmt.Errorf("s3 endpoint %q: want scheme://host[:port] without a path", ep)
	}
	return u.Host, u.Scheme == "https", nil
}

// s3Transports holds one HTTP transport per TLS flag and dial timeout, shared
// by all S3 stores so that connections are reused across them.
var s3Transports struct {
	sync.Mutex
	m map[[2]int64]*http.Transport
}

// s3Transport returns the shared transport for secure and dialTimeout.
func s3Transport(secure bool, dialTimeout time.Duration) (*http.Transport, error) {
	key := [2]int64{0, int64(dialTimeout)}
	if secure {
		key[0] = 1
	}
	s3Transports.Lock()
	defer s3Transports.Unlock()
	if tr := s3Transports.m[key]; tr != nil {
		return tr, nil
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	if s3Transports.m == nil {
		s3Transports.m = make(map[[2]int64]*http.Transport)
	}
	s3Transports.m[key] = tr
	return tr, nil
}

// CloseIdleS3Connections closes the idle connections of all S3 stores: a
// long-lived program may call it after a burst of work, and tests call it
// before checking that no goroutine leaked.
func CloseIdleS3Connections() {
	s3Transports.Lock()
	defer s3Transports.Unlock()
	for _, tr := range s3Transports.m {
		tr.CloseIdleConnections()
	}
}

// s3Store is a Store under a prefix of an S3 bucket.
type s3Store struct {
	client   *minio.Client
	core     minio.Core // the same client, for ranged reads with headers
	bucket   string
	prefix   string // without leading or trailing '/'
	endpoint string // as configured, for error messages
	retries  int
}

// NewS3 returns a Store for the objects under prefix in bucket. It checks
// at once that the endpoint answers, that the credentials are accepted and
// that the bucket exists, and says which of these failed.
func NewS3(ctx context.Context, cfg S3Config, bucket, prefix string) (Store, error) {
	host, secure, err := s3ParseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = DefaultS3Region
	}
	if cfg.Retries <= 0 {
		cfg.Retries = DefaultS3Retries
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultS3DialTimeout
	}
	tr, err := s3Transport(secure, cfg.DialTimeout)
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %s: %w", cfg.Endpoint, err)
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure:       secure,
		Transport:    s3Counting{tr},
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   cfg.Retries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %s: %w", cfg.Endpoint, err)
	}
	s := &s3Store{
		client:   client,
		core:     minio.Core{Client: client},
		bucket:   bucket,
		prefix:   strings.Trim(prefix, "/"),
		endpoint: client.EndpointURL().String(),
		retries:  cfg.Retries,
	}
	if err := s.probe(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// probe lists at most one key of the store, so that a wrong endpoint,
// rejected credentials or a missing bucket fail at once and clearly. (A
// listing, unlike HEAD bucket, returns an error body with the S3 code.)
func (s *s3Store) probe(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.listPrefix(), MaxKeys: 1}) {
		if obj.Err != nil {
			return s.errf("check bucket", "", obj.Err)
		}
		break
	}
	if err := ctx.Err(); err != nil {
		return s.errf("check bucket", "", err)
	}
	return nil
}

// listPrefix is the key prefix of the store's objects: "" or "prefix/".
func (s *s3Store) listPrefix() string {
	if s.prefix == "" {
		return ""
	}
	return s.prefix + "/"
}

// String returns "s3://bucket/prefix", without endpoint or credentials.
func (s *s3Store) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

// key validates name and returns its object key.
func (s *s3Store) key(name string) (string, error) {
	if err := checkObjectName(name); err != nil {
		return "", fmt.Errorf("%s: %w", s, err)
	}
	if s.prefix == "" {
		return name, nil
	}
	return s.prefix + "/" + name, nil
}

// errf wraps err with the store and the operation on name, and says in
// words what the common failures mean: absent objects wrap ErrNotExist,
// rejected credentials say "access denied" with the S3 error code, network
// failures say that the endpoint is unreachable.
func (s *s3Store) errf(op, name string, err error) error {
	where := fmt.Sprintf("%s: %s", s, op)
	if name != "" {
		where += fmt.Sprintf(" %q", name)
	}
	var resp minio.ErrorResponse
	errors.As(err, &resp)
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", where, err)
	case resp.Code == minio.NoSuchKey:
		return fmt.Errorf("%s: %w: %w", where, ErrNotExist, err)
	case resp.Code == minio.NoSuchBucket:
		return fmt.Errorf("%s: bucket %q does not exist at %s: %w", where, s.bucket, s.endpoint, err)
	case resp.StatusCode == http.StatusForbidden || s3DeniedCodes[resp.Code]:
		return fmt.Errorf("%s: access denied by %s (S3 error code %s): check the access key and secret key: %w",
			where, s.endpoint, resp.Code, err)
	case resp.Code == "" && s3Unreachable(err):
		return fmt.Errorf("%s: s3 endpoint %s is unreachable (tried up to %d times): %w", where, s.endpoint, s.retries, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// s3Unreachable says whether err is a failure to connect: DNS, refused
// connection, connect timeout, TLS handshake.
func s3Unreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &dns) || (errors.As(err, &op) && op.Op == "dial") ||
		strings.Contains(err.Error(), "TLS handshake")
}

// s3DeniedCodes are the S3 error codes of rejected credentials. versitygw
// answers an unknown access key with XAdminUserNotFound and status 404.
var s3DeniedCodes = map[string]bool{
	"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
	"InvalidToken": true, "ExpiredToken": true, "AuthorizationHeaderMalformed": true,
	"XAdminUserNotFound": true,
}

// Put uploads r (see s3PutSource). Objects larger than one part go up as
// multipart uploads, in parts of s3PartSize when the size is unknown, each
// part retried on its own. S3 makes the object visible only when the upload
// completes, and minio-go aborts a failed multipart upload. With size >= 0,
// exactly size bytes are read; fewer is an error.
func (s *s3Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	src, err := s3PutSource(ctx, r, size)
	if err != nil {
		return s.errf("put", name, err)
	}
	// Streamed objects (shards) go up with UNSIGNED-PAYLOAD: SHA-256 over
	// every byte would cost a core for each 1.4 GB/s, and their xxhash64s
	// are in the manifest, which (like every object of known size) is
	// signed with its payload and checked on every read.
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableContentSha256: size < 0}
	if size < 0 {
		opts.PartSize = s3PartSize
	}
	counted := &s3CountingReader{r: src}
	if size < 0 { // a known size is checked by PutObject's answer; a seeker stays seekable for retries
		src = counted
	}
	info, err := s.client.PutObject(ctx, s.bucket, key, src, size, opts)
	if err == nil && size >= 0 && info.Size != size {
		err = fmt.Errorf("uploaded %d of %d bytes", info.Size, size)
	}
	if err == nil && size < 0 {
		// A streamed upload interrupted by a server crash and retried has
		// been seen to report success without the object being stored:
		// check that the store holds every byte before saying so.
		if got, serr := s.Stat(ctx, name); serr != nil || got != counted.n {
			err = fmt.Errorf("%w: the upload reported success, but the store holds %d of the %d bytes sent (%v)", ErrLost, got, counted.n, serr)
		}
	}
	if err != nil {
		return s.errf("put", name, err)
	}
	return nil
}

// PutIfAbsent uploads a small object with If-None-Match: *, which the
// server refuses when the key exists.
func (s *s3Store) PutIfAbsent(ctx context.Context, name string, r io.Reader, size int64) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if size < 0 || size > s3PartSize {
		return s.errf("put", name, fmt.Errorf("PutIfAbsent takes objects of a known size up to %d bytes", s3PartSize))
	}
	src, err := s3PutSource(ctx, r, size)
	if err != nil {
		return s.errf("put", name, err)
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	opts.SetMatchETagExcept("*")
	if _, err := s.client.PutObject(ctx, s.bucket, key, src, size, opts); err != nil {
		if minio.ToErrorResponse(err).Code == "PreconditionFailed" {
			return fmt.Errorf("%s: %q: %w", s, name, ErrTaken)
		}
		return s.errf("put", name, err)
	}
	return nil
}

// s3CountingReader counts the bytes a streamed upload read.
type s3CountingReader struct {
	r io.Reader
	n int64
}

func (c *s3CountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// s3PutSource returns what minio-go uploads for Put. A seekable r goes as it
// is, once checked to hold size bytes: minio-go can then retry (and read
// files in parallel), and it notices ctx in its requests. Other readers
// notice ctx between reads; known sizes up to one part are read into memory
// so that minio-go can retry them, and larger ones fail on an early EOF.
func s3PutSource(ctx context.Context, r io.Reader, size int64) (io.Reader, error) {
	if rs, ok := r.(io.ReadSeeker); ok {
		if left, err := s3SeekLeft(rs); err == nil { // pipes cannot seek
			if size >= 0 && left < size {
				return nil, fmt.Errorf("reader holds %d of %d bytes: %w", left, size, io.ErrUnexpectedEOF)
			}
			return r, nil
		}
	}
	src := io.Reader(storeCtxReader{ctx, r})
	switch {
	case size < 0:
		return src, nil
	case size <= s3PartSize:
		buf := make([]byte, size)
		if n, err := io.ReadFull(src, buf); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = fmt.Errorf("reader gave %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		return bytes.NewReader(buf), nil
	}
	return &s3ExactReader{r: src, size: size, left: size}, nil
}

// s3SeekLeft returns the bytes between r's offset and its end.
func s3SeekLeft(r io.Seeker) (int64, error) {
	cur, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	end, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	_, err = r.Seek(cur, io.SeekStart)
	return end - cur, err
}

// s3ExactReader turns an EOF before size bytes into an error, so that a
// short reader fails the upload instead of confusing minio-go.
type s3ExactReader struct {
	r          io.Reader
	size, left int64
}

func (e *s3ExactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = fmt.Errorf("reader gave %d of %d bytes: %w", e.size-e.left, e.size, io.ErrUnexpectedEOF)
	}
	return n, err
}

// Open stats the object and returns an Object whose reads are ranged GETs.
// ReadAt uses ctx: cancelling it aborts the object's reads.
func (s *s3Store) Open(ctx context.Context, name string) (Object, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return nil, s.errf("open", name, err)
	}
	return &s3Object{ctx: ctx, s: s, name: name, key: key, size: info.Size, etag: info.ETag}, nil
}

// Stat returns the object's size from a HEAD request.
func (s *s3Store) Stat(ctx context.Context, name string) (int64, error) {
	key, err := s.key(name)
	if err != nil {
		return 0, err
	}
	info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return 0, s.errf("stat", name, err)
	}
	return info.Size, nil
}

// List lists the prefix recursively and returns names relative to it,
// sorted; keys ending in '/' (directory markers) are skipped.
func (s *s3Store) List(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine on an early return
	p := s.listPrefix()
	var names []string
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: p, Recursive: true}) {
		if obj.Err != nil {
			return nil, s.errf("list", "", obj.Err)
		}
		if name := strings.TrimPrefix(obj.Key, p); name != "" && !strings.HasSuffix(name, "/") {
			names = append(names, name)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, s.errf("list", "", err)
	}
	sort.Strings(names)
	return names, nil
}

// Delete removes the object; S3 reports success for absent keys too.
func (s *s3Store) Delete(ctx context.Context, name string) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	err = s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		return s.errf("delete", name, err)
	}
	return nil
}

// s3Object is an open S3 object; each ReadAt is one ranged GET that must
// match the ETag seen by Open, so a replaced object fails loudly instead of
// mixing versions.
type s3Object struct {
	ctx    context.Context
	s      *s3Store
	name   string
	key    string
	size   int64
	etag   string
	closed atomic.Bool
}

// Size returns the object's length in bytes, as it was when opened.
func (o *s3Object) Size() int64 { return o.size }

// Close marks the object closed; it holds no connection between reads.
func (o *s3Object) Close() error {
	o.closed.Store(true)
	return nil
}

// ReadAt reads len(p) bytes at off with one ranged GET, retrying failures
// that happen while the body streams (minio-go retries the request itself).
// Unlike minio-go's own objects, a read that fills p returns a nil error even
// when it ends at the end of the object.
func (o *s3Object) ReadAt(p []byte, off int64) (int, error) {
	switch {
	case o.closed.Load():
		return 0, o.s.errf("read", o.name, os.ErrClosed)
	case off < 0:
		return 0, o.s.errf("read", o.name, fmt.Errorf("negative offset %d", off))
	case len(p) == 0:
		return 0, nil
	case off >= o.size:
		return 0, io.EOF
	}
	want := min(int64(len(p)), o.size-off)
	for attempt := 1; ; attempt++ {
		requestFailed, err := o.readRange(p[:want], off)
		if err == nil {
			break
		}
		if requestFailed || attempt >= o.s.retries || !s3Transient(err) || o.ctx.Err() != nil {
			return 0, o.s.errf("read", o.name, err)
		}
		if err := s3Sleep(o.ctx, attempt); err != nil {
			return 0, o.s.errf("read", o.name, err)
		}
	}
	if want < int64(len(p)) {
		return int(want), io.EOF
	}
	return int(want), nil
}

// readRange fills p from off with one GET; requestFailed says that the
// request itself failed (already retried by minio-go), not its body.
func (o *s3Object) readRange(p []byte, off int64) (requestFailed bool, err error) {
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+int64(len(p))-1); err != nil {
		return true, err
	}
	if o.etag != "" {
		if err := opts.SetMatchETag(o.etag); err != nil {
			return true, err
		}
	}
	body, _, h, err := o.s.core.GetObject(o.ctx, o.s.bucket, o.key, opts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "PreconditionFailed" {
			err = fmt.Errorf("object changed since it was opened: %w", err)
		}
		return true, err
	}
	defer body.Close()
	if h.Get("Content-Range") == "" && (off != 0 || int64(len(p)) != o.size) {
		return true, errors.New("server ignored the range request")
	}
	if _, err := io.ReadFull(body, p); err != nil {
		return false, err
	}
	// Reach the body's end (if ReadFull did not) so the connection is reused.
	io.Copy(io.Discard, io.LimitReader(body, 1024))
	return false, nil
}

// s3Transient says whether a failure while reading a body is worth a retry.
func s3Transient(err error) bool {
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		(errors.As(err, &ne) && ne.Timeout()) || minio.IsNetworkOrHostDown(err, false)
}

// s3Sleep waits before retry number attempt+1 (100 ms doubling, at most
// 2 s), or returns ctx's error when it is done first.
func s3Sleep(ctx context.Context, attempt int) error {
	d := min(100*time.Millisecond<<min(attempt-1, 5), 2*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
