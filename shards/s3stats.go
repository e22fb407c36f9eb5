package shards

import (
	"io"
	"net/http"
	"sync/atomic"
)

// S3Counters counts the HTTP traffic of every S3 store of the process, for
// monitoring: requests, the bytes of response bodies read, and failed
// attempts (connection errors and 5xx answers), which the stores retry.
type S3Counters struct {
	Requests  int64
	BytesRead int64
	Failures  int64
}

var s3Counters struct{ requests, bytesRead, failures atomic.Int64 }

// S3Stats returns the counters so far.
func S3Stats() S3Counters {
	return S3Counters{Requests: s3Counters.requests.Load(), BytesRead: s3Counters.bytesRead.Load(), Failures: s3Counters.failures.Load()}
}

// s3Counting wraps a transport to count its traffic.
type s3Counting struct{ rt http.RoundTripper }

func (c s3Counting) RoundTrip(req *http.Request) (*http.Response, error) {
	s3Counters.requests.Add(1)
	resp, err := c.rt.RoundTrip(req)
	if err != nil || resp.StatusCode >= 500 {
		s3Counters.failures.Add(1)
	}
	if resp != nil && resp.Body != nil {
		resp.Body = &s3CountingBody{ReadCloser: resp.Body}
	}
	return resp, err
}

type s3CountingBody struct{ io.ReadCloser }

func (b *s3CountingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	s3Counters.bytesRead.Add(int64(n))
	return n, err
}
