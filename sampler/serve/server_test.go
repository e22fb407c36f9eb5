package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"certmix/internal/s3test"
	"certmix/internal/testsets"
	"certmix/sampler"
	"certmix/shards"
)

func TestMain(m *testing.M) {
	os.Exit(s3test.Run(m, func() error {
		shards.CloseIdleS3Connections()
		return s3test.FindLeaks()
	}))
}

// testSet is a dataset of n 6x6x3 rows with ids from base.
func testSet(t testing.TB, n int, base int64) *shards.Dataset {
	return testsets.Local(t, n, shards.Shape{Height: 6, Width: 6, Channels: 3, Classes: 10}, n, 32, base)
}

func testConfig(t testing.TB) sampler.Config {
	return sampler.Config{Sources: []sampler.Source{{Dataset: testSet(t, 200, 0), Fraction: 0.3},
		{Dataset: testSet(t, 500, 1000), Fraction: 0.7, Replacement: true}},
		Batch: 20, Seed: 9, WorldSize: 2, Augment: sampler.Augment{Pad: 2, Flip: true}}
}

// start serves cfg on loopback until the test ends.
func start(t *testing.T, cfg sampler.Config) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(cfg, Options{Logf: t.Logf})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return srv, l.Addr().String()
}

// client is a minimal Go reader of the protocol.
type client struct {
	conn net.Conn
	r    *bufio.Reader
	resp Response
}

func dial(t *testing.T, addr string, req any) (*client, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var line []byte
	if s, ok := req.(string); ok {
		line = []byte(s)
	} else {
		line, _ = json.Marshal(req)
		line = append(line, '\n')
	}
	conn.Write(line)
	c := &client{conn: conn, r: bufio.NewReader(conn)}
	resp, err := c.r.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(resp, &c.resp); err != nil {
		return nil, err
	}
	if !c.resp.OK {
		return c, fmt.Errorf("%s", c.resp.Error)
	}
	return c, nil
}

type frame struct {
	h               Header
	images, sources []byte
	labels, ids     []int64
	state           sampler.State
}

func (c *client) next() (frame, error) {
	var f frame
	hdr := make([]byte, HeaderSize)
	if _, err := io.ReadFull(c.r, hdr); err != nil {
		return f, err
	}
	h, err := DecodeHeader(hdr)
	if err != nil {
		return f, err
	}
	body := make([]byte, h.PayloadBytes)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return f, err
	}
	if h.Kind == KindError {
		return f, fmt.Errorf("server: %s", body)
	}
	f.h = h
	n := int(h.Batch)
	img := len(body) - 17*n - int(h.StateBytes)
	f.images = body[:img]
	for i := range n {
		f.labels = append(f.labels, int64(binary.LittleEndian.Uint64(body[img+8*i:])))
		f.ids = append(f.ids, int64(binary.LittleEndian.Uint64(body[img+8*n+8*i:])))
	}
	f.sources = body[img+16*n : img+17*n]
	err = json.Unmarshal(body[img+17*n:], &f.state)
	return f, err
}

// want returns the first n batches of the Go iterator at rank from state.
func want(t *testing.T, cfg sampler.Config, rank int, state *sampler.State, n int) []frame {
	t.Helper()
	ctx := context.Background()
	cfg.Rank = rank
	it, err := sampler.New(ctx, cfg, state)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []frame
	for range n {
		b, err := it.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f := frame{images: slices.Clone(b.Images), sources: slices.Clone(b.Sources), state: it.State()}
		f.h.Step = b.Step
		for i := range b.Len() {
			f.labels = append(f.labels, int64(b.Labels[i]))
			f.ids = append(f.ids, b.IDs[i])
		}
		out = append(out, f)
	}
	return out
}

func same(a, b frame) bool {
	return a.h.Step == b.h.Step && bytes.Equal(a.images, b.images) && bytes.Equal(a.sources, b.sources) &&
		slices.Equal(a.labels, b.labels) && slices.Equal(a.ids, b.ids) && a.state.Step == b.state.Step
}

func TestClientsGetTheIteratorsBatches(t *testing.T) {
	cfg := testConfig(t)
	_, addr := start(t, cfg)
	for rank := range 2 {
		c, err := dial(t, addr, Request{Magic: "certmix", Version: Version, Rank: rank})
		if err != nil {
			t.Fatal(err)
		}
		if c.resp.Batch != 20 || !slices.Equal(c.resp.Quotas, []int{6, 14}) || c.resp.DType != "uint8" {
			t.Fatalf("response %+v", c.resp)
		}
		exp := want(t, cfg, rank, nil, 12)
		for i := range exp {
			f, err := c.next()
			if err != nil {
				t.Fatal(err)
			}
			if !same(f, exp[i]) {
				t.Fatalf("rank %d batch %d differs from the iterator's", rank, i)
			}
		}
		// Resume from the state of batch 5 on a new connection.
		st := exp[5].state
		c2, err := dial(t, addr, Request{Magic: "certmix", Version: Version, Rank: rank, State: &st})
		if err != nil {
			t.Fatal(err)
		}
		for i := 6; i < 12; i++ {
			f, err := c2.next()
			if err != nil || !same(f, exp[i]) {
				t.Fatalf("resumed rank %d batch %d differs (%v)", rank, i, err)
			}
		}
	}
}

func TestBadClientsDoNotDisturbOthers(t *testing.T) {
	cfg := testConfig(t)
	srv, addr := start(t, cfg)
	good, err := dial(t, addr, Request{Magic: "certmix", Version: Version})
	if err != nil {
		t.Fatal(err)
	}
	exp := want(t, cfg, 0, nil, 30)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the good client reads on while the others misbehave
		defer wg.Done()
		for i := range exp {
			f, err := good.next()
			if err != nil || !same(f, exp[i]) {
				t.Errorf("good client, batch %d: %v", i, err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for _, tc := range []struct {
		req  any
		want string
	}{
		{"\x00\x01garbage\xff\n", "not the JSON object"},
		{"{\"magic\": \"nope\", \"version\": 1}\n", "magic"},
		{Request{Magic: "certmix", Version: 7}, "protocol version 7"},
		{Request{Magic: "certmix", Version: Version, Rank: 5}, "rank 5 outside 0..1"},
		{Request{Magic: "certmix", Version: Version, State: &sampler.State{Seed: 1}}, "does not match"},
	} {
		_, err := dial(t, addr, tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("handshake %v: %v, want an error with %q", tc.req, err, tc.want)
		}
	}
	// A client that goes away in the middle of a frame.
	quitter, err := dial(t, addr, Request{Magic: "certmix", Version: Version})
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(quitter.r, make([]byte, HeaderSize+100))
	quitter.conn.Close()
	wg.Wait()

	rec := httptest.NewRecorder()
	srv.Metrics().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, m := range []string{"certmix_batches_served_total", "certmix_images_served_total", "certmix_handshake_errors_total 5",
		"certmix_cache_misses_total", "certmix_fetched_bytes_total", "certmix_queue_depth", "certmix_images_per_second",
		"certmix_s3_requests_total", "certmix_s3_bytes_read_total", "certmix_s3_failed_requests_total"} {
		if !strings.Contains(rec.Body.String(), m) {
			t.Errorf("metrics lack %q", m)
		}
	}
}

func TestDecodeHeaderRefuses(t *testing.T) {
	good := Header{Kind: KindBatch, DType: DTypeUint8, Layout: LayoutNHWC, Batch: 2, Height: 2, Width: 2, Channels: 1, PayloadBytes: 2*4 + 34 + 3, StateBytes: 3}
	b := make([]byte, HeaderSize)
	good.Encode(b)
	if _, err := DecodeHeader(b); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(b []byte){
		"magic":   func(b []byte) { b[0] = 'X' },
		"version": func(b []byte) { b[4] = 9 },
		"kind":    func(b []byte) { b[6] = 7 },
		"dtype":   func(b []byte) { b[7] = 9 },
		"huge":    func(b []byte) { binary.LittleEndian.PutUint64(b[40:], 1<<40) },
		"size":    func(b []byte) { binary.LittleEndian.PutUint32(b[8:], 3) },
		"overflow": func(b []byte) {
			binary.LittleEndian.PutUint32(b[8:], 1<<17)
			binary.LittleEndian.PutUint16(b[12:], 1<<15)
			binary.LittleEndian.PutUint16(b[14:], 1<<15)
			binary.LittleEndian.PutUint16(b[16:], 1<<15)
			b[7] = DTypeFloat32
			binary.LittleEndian.PutUint64(b[40:], 17<<17)
			binary.LittleEndian.PutUint32(b[48:], 0)
		},
	} {
		c := slices.Clone(b)
		edit(c)
		if _, err := DecodeHeader(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzDecodeHeader: a header DecodeHeader accepts declares, computed again
// in exact integers, payload bytes = 17 per image (label, id, source) + the
// images' bytes + the state, at most MaxPayload; and it round-trips: Encode
// writes back the same bytes (all but the reserved 20..23 and 52..63) and
// those decode to the same header.
func FuzzDecodeHeader(f *testing.F) {
	b := make([]byte, HeaderSize)
	(&Header{Kind: KindBatch, DType: DTypeUint8, Layout: LayoutNHWC, Batch: 1, Height: 1, Width: 1, Channels: 1, PayloadBytes: 18}).Encode(b)
	f.Add(b)
	b = make([]byte, HeaderSize)
	(&Header{Kind: KindBatch, DType: DTypeFloat32, Layout: LayoutNCHW, Batch: 512, Height: 32, Width: 32, Channels: 3, Step: 7, Epoch: 1,
		StateBytes: 40, PayloadBytes: 512*17 + 512*32*32*3*4 + 40}).Encode(b)
	f.Add(b)
	b = make([]byte, HeaderSize)
	(&Header{Kind: KindError, PayloadBytes: 12}).Encode(b)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := DecodeHeader(data)
		if err != nil {
			return
		}
		if h.PayloadBytes > MaxPayload {
			t.Fatalf("accepted a payload of %d bytes", h.PayloadBytes)
		}
		if h.Kind == KindBatch {
			size := map[uint8]int64{DTypeUint8: 1, DTypeFloat32: 4}[h.DType]
			if size == 0 || (h.Layout != LayoutNHWC && h.Layout != LayoutNCHW) {
				t.Fatalf("accepted dtype %d, layout %d", h.DType, h.Layout)
			}
			n := new(big.Int).SetUint64(uint64(h.Batch))
			want := new(big.Int).Mul(n, big.NewInt(17))
			img := new(big.Int).Mul(n, big.NewInt(size))
			for _, d := range []uint16{h.Height, h.Width, h.Channels} {
				img.Mul(img, big.NewInt(int64(d)))
			}
			want.Add(want, img).Add(want, big.NewInt(int64(h.StateBytes)))
			if want.Cmp(new(big.Int).SetUint64(h.PayloadBytes)) != 0 {
				t.Fatalf("accepted %+v: the frame's parts add up to %v bytes", h, want)
			}
		} else if h.Kind != KindError {
			t.Fatalf("accepted frame kind %d", h.Kind)
		}
		out := make([]byte, HeaderSize)
		h.Encode(out)
		for i := range HeaderSize {
			if reserved := (i >= 20 && i < 24) || i >= 52; !reserved && out[i] != data[i] {
				t.Fatalf("Encode(DecodeHeader(b)) differs from b at byte %d: %x, was %x", i, out[i], data[i])
			}
		}
		if h2, err := DecodeHeader(out); err != nil || h2 != h {
			t.Fatalf("DecodeHeader(Encode(h)) = %+v, %v; h = %+v", h2, err, h)
		}
	})
}

// FuzzHandshake: the handshake is read from its first line alone, whatever
// follows the newline; and an accepted request round-trips: marshalled and
// read again, it is the same request.
func FuzzHandshake(f *testing.F) {
	f.Add([]byte(`{"magic":"certmix","version":1,"rank":0,"state":null}` + "\n"))
	f.Add([]byte(`{"magic":"certmix","version":1,"rank":1,"state":{"seed":3,"step":12}}` + "\nrest"))
	f.Add([]byte("\x00\xff\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := readRequest(bufio.NewReader(bytes.NewReader(data)))
		// Only the first line counts: the same line followed by other bytes
		// (a client that sends more at once) reads the same.
		if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
			other := append(slices.Clone(data[:nl+1]), "{\"magic\":\"x\"}\n\x00"...)
			req2, err2 := readRequest(bufio.NewReader(bytes.NewReader(other)))
			if (err == nil) != (err2 == nil) || (err == nil && !reflectEqualJSON(t, req, req2)) {
				t.Fatalf("the bytes after the handshake line changed its reading: %+v, %v then %+v, %v", req, err, req2, err2)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("refused with %v: want a protocol error or the end of the input", err)
			}
			return
		}
		line, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("marshal an accepted request: %v", err)
		}
		req2, err := readRequest(bufio.NewReader(bytes.NewReader(append(line, '\n'))))
		if err != nil || !reflectEqualJSON(t, req, req2) {
			t.Fatalf("read(write(request)) = %+v, %v; request %+v", req2, err, req)
		}
	})
}

// reflectEqualJSON compares two requests by their JSON form.
func reflectEqualJSON(t *testing.T, a, b *Request) bool {
	t.Helper()
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
