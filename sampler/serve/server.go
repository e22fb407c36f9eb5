package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"certmix/sampler"
	"certmix/shards"
)

// Options tune a server.
type Options struct {
	// Logf reports connections and errors (default: nothing).
	Logf func(format string, args ...any)
	// HandshakeTimeout bounds the wait for a client's handshake (default 10 s).
	HandshakeTimeout time.Duration
}

// Server serves the batches of one sampler configuration. Each connection
// gets its own iterator, at the rank and state its handshake asks for, so
// its batches are exactly those of sampler.New with that rank and state.
type Server struct {
	cfg  sampler.Config
	opts Options
	m    *metrics

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// New returns a server of cfg's batches; cfg.Rank is ignored (each client
// picks its rank), cfg.WorldSize is the number of ranks clients may pick.
func New(cfg sampler.Config, opts Options) *Server {
	if cfg.WorldSize < 1 {
		cfg.WorldSize = 1
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	return &Server{cfg: cfg, opts: opts, m: newMetrics(), conns: map[net.Conn]struct{}{}}
}

// Serve accepts clients on l until ctx is cancelled, then closes the
// listener and every connection, and returns once all are done.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		l.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	}()
	var err error
	var clients errgroup.Group // a client's failure is its own (logged, sent to it): no shared error
	for {
		conn, aerr := l.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("serve %s: %w", l.Addr(), aerr)
				cancel()
			}
			break
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		clients.Go(func() error {
			s.handle(ctx, conn)
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
			conn.Close()
			return nil
		})
	}
	clients.Wait()
	return err
}

// handle runs one client: handshake, then a frame per batch until the
// client goes away or the context ends.
func (s *Server) handle(ctx context.Context, conn net.Conn) {
	peer := conn.RemoteAddr().String()
	s.m.clients.Inc()
	defer s.m.clients.Dec()
	w := bufio.NewWriterSize(conn, 1<<20)
	reply := func(r Response) error {
		data, _ := json.Marshal(r)
		w.Write(append(data, '\n'))
		return w.Flush()
	}
	conn.SetReadDeadline(time.Now().Add(s.opts.HandshakeTimeout))
	req, err := readRequest(bufio.NewReaderSize(conn, 4096))
	if err == nil {
		err = s.check(req)
	}
	if err != nil {
		s.m.handshakeErrors.Inc()
		s.opts.Logf("client %s: refused: %v", peer, err)
		reply(Response{OK: false, Error: err.Error()})
		return
	}
	conn.SetReadDeadline(time.Time{})
	cfg := s.cfg
	cfg.Rank = req.Rank
	it, err := sampler.New(ctx, cfg, req.State)
	if err != nil {
		s.m.handshakeErrors.Inc()
		s.opts.Logf("client %s: refused: %v", peer, err)
		reply(Response{OK: false, Error: err.Error()})
		return
	}
	defer it.Close()
	// A client that goes away is noticed by the next write; a read that
	// ends (EOF) also stops the stream at once.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, conn)
		cancel()
	}()

	st := it.State()
	c := it.Config()
	shape := it.Shape()
	h, wd, err := c.Augment.OutSize(shape.Height, shape.Width)
	if err != nil {
		reply(Response{OK: false, Error: err.Error()})
		return
	}
	resp := Response{OK: true, Version: Version, Batch: c.Batch, Height: h, Width: wd, Channels: shape.Channels, Step: st.Step,
		StepsPerEpoch: it.StepsPerEpoch(), Quotas: it.Quotas(), WorldSize: c.WorldSize, DType: "uint8", Layout: "NHWC"}
	if c.Normalize != nil {
		resp.DType, resp.Layout = "float32", "NCHW"
	}
	if err := reply(resp); err != nil {
		return
	}
	s.opts.Logf("client %s: rank %d of %d from step %d", peer, req.Rank, c.WorldSize, st.Step)
	hdr := make([]byte, HeaderSize)
	var floats []byte // float32 images as little-endian bytes, reused
	var prev sampler.IOStats
	for {
		b, err := it.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.opts.Logf("client %s: %v", peer, err)
				writeError(w, err)
			}
			return
		}
		if err := writeBatch(w, hdr, &floats, b, it.State()); err != nil {
			s.opts.Logf("client %s: gone: %v", peer, err)
			return
		}
		s.m.served(b.Len(), it, &prev)
	}
}

// check validates a handshake against the server's configuration.
func (s *Server) check(r *Request) error {
	switch {
	case r.Magic != "certmix":
		return fmt.Errorf("handshake magic %q, want \"certmix\": %w", r.Magic, ErrProtocol)
	case r.Version != Version:
		return fmt.Errorf("protocol version %d, this server speaks %d: %w", r.Version, Version, ErrProtocol)
	case r.Rank < 0 || r.Rank >= s.cfg.WorldSize:
		return fmt.Errorf("rank %d outside 0..%d (the server's world size is %d)", r.Rank, s.cfg.WorldSize-1, s.cfg.WorldSize)
	}
	return nil
}

// readRequest reads one handshake line of at most MaxHandshake bytes.
func readRequest(r *bufio.Reader) (*Request, error) {
	var line []byte
	for {
		part, more, err := r.ReadLine()
		if err != nil {
			return nil, fmt.Errorf("read handshake: %w", err)
		}
		line = append(line, part...)
		if len(line) > MaxHandshake {
			return nil, fmt.Errorf("handshake longer than %d bytes: %w", MaxHandshake, ErrProtocol)
		}
		if !more {
			break
		}
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("handshake is not the JSON object of protocol %d (%v): %w", Version, err, ErrProtocol)
	}
	return &req, nil
}

// writeBatch writes one batch frame; floats is scratch for float32 images.
func writeBatch(w *bufio.Writer, hdr []byte, floats *[]byte, b *sampler.Batch, st sampler.State) error {
	state, err := json.Marshal(st)
	if err != nil {
		return err
	}
	n := b.Len()
	h := Header{Kind: KindBatch, DType: DTypeUint8, Layout: LayoutNHWC, Batch: uint32(n), Height: uint16(b.Height),
		Width: uint16(b.Width), Channels: uint16(b.Channels), Step: b.Step, Epoch: b.Epoch, StateBytes: uint32(len(state))}
	var images []byte
	if b.Floats != nil {
		h.DType, h.Layout = DTypeFloat32, LayoutNCHW
		*floats = slices.Grow((*floats)[:0], 4*len(b.Floats))[:4*len(b.Floats)]
		images = *floats
		for i, f := range b.Floats {
			binary.LittleEndian.PutUint32(images[4*i:], math.Float32bits(f))
		}
	} else {
		images = b.Images
	}
	h.PayloadBytes = uint64(len(images) + 17*n + len(state))
	h.Encode(hdr)
	w.Write(hdr)
	w.Write(images)
	var buf [8]byte
	for _, l := range b.Labels {
		binary.LittleEndian.PutUint64(buf[:], uint64(int64(l)))
		w.Write(buf[:])
	}
	for _, id := range b.IDs {
		binary.LittleEndian.PutUint64(buf[:], uint64(id))
		w.Write(buf[:])
	}
	w.Write(b.Sources)
	w.Write(state)
	return w.Flush()
}

// writeError sends an error frame; the connection closes after it.
func writeError(w *bufio.Writer, err error) {
	msg := []byte(err.Error())
	hdr := make([]byte, HeaderSize)
	h := Header{Kind: KindError, PayloadBytes: uint64(len(msg))}
	h.Encode(hdr)
	w.Write(hdr)
	w.Write(msg)
	w.Flush()
}

// Metrics returns a handler of the server's Prometheus metrics.
func (s *Server) Metrics() http.Handler {
	return promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{})
}

type metrics struct {
	reg                              *prometheus.Registry
	batches, images, handshakeErrors prometheus.Counter
	clients                          prometheus.Gauge
	queue                            prometheus.Gauge
	hits, misses, fetched, refetches prometheus.Counter
	rate                             prometheus.Gauge

	mu        sync.Mutex
	last      time.Time
	lastCount float64
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		m.reg.MustRegister(g)
		return g
	}
	m.batches = counter("certmix_batches_served_total", "Batches sent to clients.")
	m.images = counter("certmix_images_served_total", "Images sent to clients.")
	m.handshakeErrors = counter("certmix_handshake_errors_total", "Clients refused at the handshake.")
	m.clients = gauge("certmix_clients", "Clients connected.")
	m.queue = gauge("certmix_queue_depth", "Batches made ahead and waiting to be sent, for the client served last.")
	m.hits = counter("certmix_cache_hits_total", "Record batches found in a client's cache.")
	m.misses = counter("certmix_cache_misses_total", "Record batches fetched from the store (local disk or S3).")
	m.fetched = counter("certmix_fetched_bytes_total", "Bytes of record batches fetched from the store (local disk or S3).")
	m.refetches = counter("certmix_refetches_total", "Record batches fetched again after a checksum mismatch.")
	m.rate = gauge("certmix_images_per_second", "Images sent per second, over the last few seconds.")
	for _, c := range []struct {
		name, help string
		get        func(shards.S3Counters) int64
	}{
		{"certmix_s3_requests_total", "HTTP requests to S3 stores.", func(c shards.S3Counters) int64 { return c.Requests }},
		{"certmix_s3_bytes_read_total", "Bytes read from S3 response bodies.", func(c shards.S3Counters) int64 { return c.BytesRead }},
		{"certmix_s3_failed_requests_total", "S3 requests that failed (connection errors, 5xx) and were retried or reported.", func(c shards.S3Counters) int64 { return c.Failures }},
	} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(c.get(shards.S3Stats())) }))
	}
	m.last = time.Now()
	return m
}

// served counts a batch sent and adds what the client's iterator did since
// prev (updated in place).
func (m *metrics) served(n int, it *sampler.Iterator, prev *sampler.IOStats) {
	m.batches.Inc()
	m.images.Add(float64(n))
	io := it.IOStats()
	m.queue.Set(float64(io.Queued))
	m.hits.Add(float64(io.CacheHits - prev.CacheHits))
	m.misses.Add(float64(io.CacheMisses - prev.CacheMisses))
	m.fetched.Add(float64(io.FetchedBytes - prev.FetchedBytes))
	m.refetches.Add(float64(io.Refetches - prev.Refetches))
	*prev = io
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastCount += float64(n)
	if d := time.Since(m.last); d >= 2*time.Second {
		m.rate.Set(m.lastCount / d.Seconds())
		m.last, m.lastCount = time.Now(), 0
	}
}
