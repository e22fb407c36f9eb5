package serve

// Tests of the Python client (clients/python/certmix_client.py) against a
// real server on loopback: its batches must be byte-identical to the Go
// iterator's. They need /usr/bin/python3 with numpy and torch, and fail
// without them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"certmix/internal/s3test"
	"certmix/internal/testsets"
	"certmix/pipeline"
	"certmix/sampler"
	"certmix/shards"
)

const pyInterpreter = "/usr/bin/python3"

var pyCheck struct {
	once sync.Once
	err  error
}

// pyRoot returns the repository root and checks, once, that python3 can
// import numpy and torch.
func pyRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	pyCheck.once.Do(func() {
		out, err := exec.Command(pyInterpreter, "-c", "import numpy, torch").CombinedOutput()
		if err != nil {
			pyCheck.err = fmt.Errorf("%s with numpy and torch is needed for the Python client's tests (apt-get install python3-numpy python3-torch): %v\n%s", pyInterpreter, err, out)
		}
	})
	if pyCheck.err != nil {
		t.Fatal(pyCheck.err)
	}
	return root
}

// pyProc is a running Python script.
type pyProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	stderr bytes.Buffer
}

// pyStart starts clients/python/<script> with PYTHONPATH=clients/python.
func pyStart(t *testing.T, script string, args ...string) *pyProc {
	t.Helper()
	root := pyRoot(t)
	p := &pyProc{cmd: exec.Command(pyInterpreter, append([]string{filepath.Join(root, "clients", "python", script)}, args...)...)}
	p.cmd.Dir = root
	p.cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(root, "clients", "python"), "PYTHONDONTWRITEBYTECODE=1")
	p.cmd.Stderr = &p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.lines = bufio.NewScanner(out)
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// next returns the script's next line of JSON output.
func (p *pyProc) next(t *testing.T) map[string]any {
	t.Helper()
	if !p.lines.Scan() {
		p.stdin.Close()
		err := p.cmd.Wait()
		t.Fatalf("python ended (%v) before its next line:\n%s", err, p.stderr.String())
	}
	var m map[string]any
	if err := json.Unmarshal(p.lines.Bytes(), &m); err != nil {
		t.Fatalf("python printed %q: %v", p.lines.Bytes(), err)
	}
	return m
}

// wait waits for the script to end well.
func (p *pyProc) wait(t *testing.T) {
	t.Helper()
	p.stdin.Close()
	for p.lines.Scan() {
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("python: %v\n%s", err, p.stderr.String())
	}
}

// pyRun runs a script to its end and returns its last line of output.
func pyRun(t *testing.T, script string, args ...string) map[string]any {
	t.Helper()
	p := pyStart(t, script, args...)
	var last map[string]any
	for {
		m := p.next(t)
		if _, ok := m["done"]; ok {
			last = m
			break
		}
	}
	p.wait(t)
	return last
}

// pyServe serves cfg on loopback TCP or a Unix socket until the test ends
// and returns the address in the client's notation.
func pyServe(t testing.TB, cfg sampler.Config, network string) string {
	t.Helper()
	var l net.Listener
	var addr string
	var err error
	if network == "unix" {
		dir, err := os.MkdirTemp("", "cmx") // t.TempDir() can pass the 108 bytes of a socket path
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		path := filepath.Join(dir, "s.sock")
		l, err = net.Listen("unix", path)
		addr = "unix:" + path
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			addr = l.Addr().String()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(cfg, Options{Logf: t.Logf}).Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return 10 s after its context was cancelled")
		}
	})
	return addr
}

// pyConfig mixes a real set of 200 8x8x3 images with 600 generated ones,
// 30/70 at B=24 (9 steps an epoch), padded crops and flips.
func pyConfig(t testing.TB) sampler.Config {
	shape := shards.Shape{Height: 8, Width: 8, Channels: 3, Classes: 10}
	real := testsets.Local(t, 200, shape, 80, 16, 0)
	gen := testsets.Local(t, 600, shape, 256, 32, 1_000_000)
	return sampler.Config{Sources: []sampler.Source{{Dataset: real, Fraction: 0.3}, {Dataset: gen, Fraction: 0.7, Replacement: true}},
		Batch: 24, Seed: 7, Augment: sampler.Augment{Pad: 2, Flip: true}, Workers: 2, Prefetch: 4}
}

// pyGoBatches returns n batches of the Go iterator at rank, from state.
func pyGoBatches(t testing.TB, cfg sampler.Config, rank int, state *sampler.State, n int) []sampler.Batch {
	t.Helper()
	ctx := context.Background()
	cfg.Rank = rank
	it, err := sampler.New(ctx, cfg, state)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []sampler.Batch
	for range n {
		b, err := it.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Clone())
	}
	return out
}

// pyBatch is a batch as the Python client dumped it (tests/dump_batches.py).
type pyBatch struct {
	Step   int64         `json:"step"`
	Epoch  int64         `json:"epoch"` // -1: not known (read through CertmixDataset)
	Shape  []int         `json:"shape"`
	DType  string        `json:"dtype"`
	HasIDs bool          `json:"has_ids"`
	State  sampler.State `json:"state"`

	Images      []byte
	Labels, IDs []int64
	Sources     []byte
}

func pyReadDump(t *testing.T, path string) []pyBatch {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	take := func(n int) []byte {
		if n < 0 || n > len(data) {
			t.Fatalf("%s: truncated", path)
		}
		b := data[:n]
		data = data[n:]
		return b
	}
	int64s := func(n int) []int64 {
		b := take(8 * n)
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
		return out
	}
	var out []pyBatch
	for len(data) > 0 {
		var b pyBatch
		n := int(binary.LittleEndian.Uint32(take(4)))
		if err := json.Unmarshal(take(n), &b); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(b.Shape) != 4 {
			t.Fatalf("%s: batch of step %d has shape %v", path, b.Step, b.Shape)
		}
		size := map[string]int{"uint8": 1, "float32": 4}[b.DType]
		if size == 0 {
			t.Fatalf("%s: batch of step %d has dtype %q", path, b.Step, b.DType)
		}
		b.Images = take(size * b.Shape[0] * b.Shape[1] * b.Shape[2] * b.Shape[3])
		b.Labels = int64s(b.Shape[0])
		if b.HasIDs {
			b.IDs = int64s(b.Shape[0])
			b.Sources = take(b.Shape[0])
		}
		out = append(out, b)
	}
	return out
}

// pyCompare checks that Python's batches are byte-identical to Go's.
func pyCompare(t *testing.T, got []pyBatch, want []sampler.Batch, stepsPerEpoch int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("python read %d batches, want %d", len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		n := w.Len()
		shape, dtype := []int{n, w.Height, w.Width, w.Channels}, "uint8"
		images := w.Images
		if w.Floats != nil {
			shape, dtype = []int{n, w.Channels, w.Height, w.Width}, "float32"
			images = make([]byte, 4*len(w.Floats))
			for j, f := range w.Floats {
				binary.LittleEndian.PutUint32(images[4*j:], math.Float32bits(f))
			}
		}
		labels := make([]int64, n)
		for j, l := range w.Labels {
			labels[j] = int64(l)
		}
		switch {
		case g.Step != w.Step:
			t.Fatalf("batch %d: step %d, want %d", i, g.Step, w.Step)
		case g.Epoch != -1 && g.Epoch != w.Epoch:
			t.Fatalf("batch %d (step %d): epoch %d, want %d", i, w.Step, g.Epoch, w.Epoch)
		case g.State.Step != w.Step+1 || g.State.Epoch != (w.Step+1)/stepsPerEpoch:
			t.Fatalf("batch %d (step %d): state %+v", i, w.Step, g.State)
		case !slices.Equal(g.Shape, shape) || g.DType != dtype:
			t.Fatalf("batch %d (step %d): %s %v, want %s %v", i, w.Step, g.DType, g.Shape, dtype, shape)
		case !bytes.Equal(g.Images, images):
			t.Fatalf("batch %d (step %d): images differ", i, w.Step)
		case !slices.Equal(g.Labels, labels):
			t.Fatalf("batch %d (step %d): labels %v, want %v", i, w.Step, g.Labels, labels)
		case g.HasIDs && !slices.Equal(g.IDs, w.IDs):
			t.Fatalf("batch %d (step %d): ids %v, want %v", i, w.Step, g.IDs, w.IDs)
		case g.HasIDs && !bytes.Equal(g.Sources, w.Sources):
			t.Fatalf("batch %d (step %d): sources %v, want %v", i, w.Step, g.Sources, w.Sources)
		}
	}
}

// TestPythonClientBatchesEqualGo: the Python client's batches, through
// read_batch and through CertmixDataset, over TCP and Unix sockets, uint8
// and float32, rank 0 of 1 and rank 1 of 2, equal the Go iterator's.
func TestPythonClientBatchesEqualGo(t *testing.T) {
	base := pyConfig(t)
	norm := &sampler.Normalize{Mean: []float32{0.49, 0.48, 0.45}, Std: []float32{0.25, 0.24, 0.26}}
	for _, tc := range []struct {
		name        string
		network     string
		via         string
		normalize   bool
		world, rank int
	}{
		{"tcp/uint8/read_batch", "tcp", "conn", false, 1, 0},
		{"unix/uint8/dataset", "unix", "dataset", false, 1, 0},
		{"unix/float32/read_batch", "unix", "conn", true, 1, 0},
		{"tcp/float32/dataset", "tcp", "dataset", true, 1, 0},
		{"tcp/rank1of2/read_batch", "tcp", "conn", false, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.WorldSize = tc.world
			if tc.normalize {
				cfg.Normalize = norm
			}
			const n = 12 // more than an epoch
			want := pyGoBatches(t, cfg, tc.rank, nil, n)
			addr := pyServe(t, cfg, tc.network)
			out := filepath.Join(t.TempDir(), "dump")
			last := pyRun(t, "tests/dump_batches.py", "--address", addr, "--rank", strconv.Itoa(tc.rank), "--batches", strconv.Itoa(n),
				"--out", out, "--via", tc.via)
			info := last["info"].(map[string]any)
			if info["batch"] != float64(24) || info["world_size"] != float64(tc.world) || info["steps_per_epoch"] != float64(pyWantSteps(tc.world)) {
				t.Errorf("handshake response %v", info)
			}
			pyCompare(t, pyReadDump(t, out), want, pyWantSteps(tc.world))
		})
	}
}

// pyWantSteps is the epoch length of pyConfig: ceil(200 / (24 * world)).
func pyWantSteps(world int) int64 { return int64((200 + 24*world - 1) / (24 * world)) }

// TestPythonClientResume: CertmixDataset's state_dict after 5 batches,
// through JSON and a new process, resumes with the uninterrupted run's
// batches 5..9; CertmixDataset raises CertmixError for a rank out of range.
func TestPythonClientResume(t *testing.T) {
	cfg := pyConfig(t)
	want := pyGoBatches(t, cfg, 0, nil, 10)
	addr := pyServe(t, cfg, "tcp")
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	pyRun(t, "tests/dump_batches.py", "--address", addr, "--batches", "5", "--via", "dataset",
		"--out", filepath.Join(dir, "first"), "--state-out", state, "--bad-rank", "1")
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var st sampler.State
	if err := json.Unmarshal(data, &st); err != nil || st.Step != 5 || st.Seed != 7 || len(st.Sources) != 2 {
		t.Fatalf("state_dict after 5 batches: %s (%v)", data, err)
	}
	pyRun(t, "tests/dump_batches.py", "--address", addr, "--batches", "5", "--via", "dataset",
		"--out", filepath.Join(dir, "second"), "--state-in", state)
	pyCompare(t, pyReadDump(t, filepath.Join(dir, "first")), want[:5], pyWantSteps(1))
	pyCompare(t, pyReadDump(t, filepath.Join(dir, "second")), want[5:], pyWantSteps(1))
}

// pyDial connects and sends a handshake line.
func pyDial(t *testing.T, addr string, line []byte) net.Conn {
	network, a := "tcp", addr
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, a = "unix", p
	}
	c, err := net.DialTimeout(network, a, 5*time.Second)
	if err != nil {
		t.Error(err)
		return nil
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if line != nil {
		if _, err := c.Write(line); err != nil {
			t.Error(err)
			c.Close()
			return nil
		}
	}
	return c
}

// pyResponse reads a handshake response line.
func pyResponse(c net.Conn) (*bufio.Reader, Response, error) {
	r := bufio.NewReader(c)
	line, err := r.ReadBytes('\n')
	var resp Response
	if err != nil {
		return r, resp, fmt.Errorf("read handshake response: %w (got %q)", err, line)
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return r, resp, fmt.Errorf("handshake response %q: %w", line, err)
	}
	return r, resp, nil
}

// pyDisconnectMidFrame handshakes, reads a header and part of its body
// (how much: part of 0..3), and closes the connection.
func pyDisconnectMidFrame(t *testing.T, addr string, part int) {
	c := pyDial(t, addr, []byte(`{"magic": "certmix", "version": 1, "rank": 0, "state": null}`+"\n"))
	if c == nil {
		return
	}
	defer c.Close()
	r, resp, err := pyResponse(c)
	if err != nil || !resp.OK {
		t.Errorf("handshake: %+v, %v", resp, err)
		return
	}
	if part == 0 {
		return // gone before the first frame
	}
	hdr := make([]byte, HeaderSize)
	if part == 1 {
		io.ReadFull(r, hdr[:HeaderSize/2]) // gone mid-header
		return
	}
	if _, err := io.ReadFull(r, hdr); err != nil {
		t.Errorf("read header: %v", err)
		return
	}
	h, err := DecodeHeader(hdr)
	if err != nil || h.Kind != KindBatch {
		t.Errorf("header %+v: %v", h, err)
		return
	}
	body := make([]byte, h.PayloadBytes/uint64(part))
	if _, err := io.ReadFull(r, body); err != nil {
		t.Errorf("read half a frame: %v", err)
	}
}

// TestPythonClientUnaffectedByDisconnects: clients that go away mid-frame,
// mid-header or right after the handshake, before and while a Python client
// reads, leave its batches exact.
func TestPythonClientUnaffectedByDisconnects(t *testing.T) {
	cfg := pyConfig(t)
	const n = 30
	want := pyGoBatches(t, cfg, 0, nil, n)
	addr := pyServe(t, cfg, "tcp")
	out := filepath.Join(t.TempDir(), "dump")
	p := pyStart(t, "tests/dump_batches.py", "--address", addr, "--batches", strconv.Itoa(n), "--out", out, "--pause-after", "3")
	if m := p.next(t); m["paused"] != float64(3) {
		t.Fatalf("python printed %v, want paused", m)
	}
	// While the Python client's connection is open and blocked:
	var wg sync.WaitGroup
	for part := range 4 {
		for range 2 {
			wg.Go(func() { pyDisconnectMidFrame(t, addr, part) })
		}
	}
	wg.Wait()
	// And while it reads:
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			pyDisconnectMidFrame(t, addr, i%4)
		}
	})
	fmt.Fprintln(p.stdin)
	for {
		if _, ok := p.next(t)["done"]; ok {
			break
		}
	}
	close(stop)
	wg.Wait()
	p.wait(t)
	pyCompare(t, pyReadDump(t, out), want, pyWantSteps(1))
}

// TestPythonHandshakeErrors: malformed handshakes get {"ok": false,
// "error": ...} with a clear message and a closed connection while a Python
// client reads on undisturbed; the Python client raises CertmixError for a
// rank out of range.
func TestPythonHandshakeErrors(t *testing.T) {
	cfg := pyConfig(t)
	cfg.WorldSize = 2
	const n = 20
	want := pyGoBatches(t, cfg, 1, nil, n)
	addr := pyServe(t, cfg, "unix")
	out := filepath.Join(t.TempDir(), "dump")
	p := pyStart(t, "tests/dump_batches.py", "--address", addr, "--rank", "1", "--batches", strconv.Itoa(n), "--out", out,
		"--pause-after", "2", "--bad-rank", "2")
	m := p.next(t)
	if msg, _ := m["bad_rank_error"].(string); !strings.Contains(msg, "rank 2 outside 0..1") {
		t.Errorf("python's CertmixError for rank 2: %v", m)
	}
	if m := p.next(t); m["paused"] != float64(2) {
		t.Fatalf("python printed %v, want paused", m)
	}

	// A valid state, of rank 0, and one of another seed.
	st0 := pyGoState(t, cfg, 0)
	other := st0
	other.Seed++
	stateLine := func(rank int, st sampler.State) string {
		data, _ := json.Marshal(Request{Magic: "certmix", Version: 1, Rank: rank, State: &st})
		return string(data)
	}
	noise := make([]byte, 300)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.IntN(255) + 1)
		if noise[i] == '\n' {
			noise[i] = 0
		}
	}
	cases := []struct{ name, line, want string }{
		{"random bytes", string(noise), "not the JSON object"},
		{"not JSON", "hello server", "not the JSON object"},
		{"JSON array", "[1, 2, 3]", "not the JSON object"},
		{"unknown field", `{"magic": "certmix", "version": 1, "rank": 0, "state": null, "batch": 64}`, "unknown field"},
		{"wrong magic", `{"magic": "certmux", "version": 1, "rank": 0, "state": null}`, `magic "certmux"`},
		{"no magic", `{"version": 1, "rank": 0}`, `magic ""`},
		{"wrong version", `{"magic": "certmix", "version": 2, "rank": 0, "state": null}`, "protocol version 2"},
		{"rank too large", `{"magic": "certmix", "version": 1, "rank": 2, "state": null}`, "rank 2 outside 0..1"},
		{"negative rank", `{"magic": "certmix", "version": 1, "rank": -1, "state": null}`, "rank -1 outside 0..1"},
		{"rank not a number", `{"magic": "certmix", "version": 1, "rank": "one", "state": null}`, "not the JSON object"},
		{"state of another rank", stateLine(1, st0), "does not match"},
		{"state of another seed", stateLine(0, other), "does not match"},
		{"state not a state", `{"magic": "certmix", "version": 1, "rank": 0, "state": [1]}`, "not the JSON object"},
	}
	garbage := func(t *testing.T) {
		for _, tc := range cases {
			c := pyDial(t, addr, []byte(tc.line+"\n"))
			if c == nil {
				return
			}
			r, resp, err := pyResponse(c)
			switch {
			case err != nil:
				t.Errorf("%s: %v", tc.name, err)
			case resp.OK || !strings.Contains(resp.Error, tc.want):
				t.Errorf("%s: response %+v, want an error about %q", tc.name, resp, tc.want)
			default:
				if _, err := r.ReadByte(); err != io.EOF {
					t.Errorf("%s: after the refusal, read %v, want EOF", tc.name, err)
				}
			}
			c.Close()
		}
		// A client that says nothing and goes away.
		if c := pyDial(t, addr, nil); c != nil {
			c.Close()
		}
	}
	garbage(t)
	// A handshake line over MaxHandshake: refused, or reset if the server
	// closes with bytes of it unread.
	if c := pyDial(t, addr, nil); c != nil {
		go c.Write(bytes.Repeat([]byte("x"), MaxHandshake+8192))
		_, resp, err := pyResponse(c)
		if err == nil && (resp.OK || !strings.Contains(resp.Error, "longer than")) {
			t.Errorf("oversized handshake: response %+v", resp)
		} else if err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Errorf("oversized handshake: %v", err)
		}
		c.Close()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			garbage(t)
		}
	})
	fmt.Fprintln(p.stdin)
	for {
		if _, ok := p.next(t)["done"]; ok {
			break
		}
	}
	close(stop)
	wg.Wait()
	p.wait(t)
	pyCompare(t, pyReadDump(t, out), want, pyWantSteps(2))
}

// pyGoState returns the state of rank's iterator at step 0.
func pyGoState(t *testing.T, cfg sampler.Config, rank int) sampler.State {
	cfg.Rank = rank
	it, err := sampler.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	return it.State()
}

// BenchmarkPythonClient measures bench.py (images/s into torch tensors) at
// B=512, f=0.7, crop+flip, in sub-benchmarks by data and codec:
// data=noise-cifar/codec=raw, CIFAR-shaped sets of 50k real and 200k
// generated noise images (incompressible, so stored raw whatever the
// codec), and data=fashion-mnist/codec=none|zstd, the 10,000 real and
// 50,000 auxiliary images of `task split` with uncompressed and with zstd
// shards (the default codec; Fashion-MNIST compresses to about 0.27). The
// sets are kept in CERTMIX_BENCH_DIR (a temporary directory if unset).
// CERTMIX_PY_BENCH_NET=unix serves on a Unix socket instead of TCP,
// CERTMIX_PY_BENCH_RAW=1 times read_batch alone, no torch tensors (--raw),
// and CERTMIX_PY_BENCH_BATCHES sets the batches timed (default 1000):
//
//	CERTMIX_BENCH_DIR=/tmp/cmx go test ./sampler/serve -run '^$' -bench PythonClient -benchtime 1x -v
func BenchmarkPythonClient(b *testing.B) {
	dir := os.Getenv("CERTMIX_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	ctx := context.Background()
	openSet := func(t testing.TB, path string) *shards.Dataset {
		d, err := shards.Open(ctx, path, shards.S3Config{})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	noise := func(t testing.TB, name string, n int, seed uint64) *shards.Dataset {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(filepath.Join(path, shards.ManifestName)); err != nil {
			store, err := shards.NewLocal(path)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if _, err := pipeline.Build(ctx, &testsets.Noise{N: n, X: seed*0x9e3779b97f4a7c15 + 1}, store,
				pipeline.Options{Seed: seed, Kind: shards.KindGenerated, TempDir: t.TempDir()}); err != nil {
				t.Fatal(err)
			}
			t.Logf("built %s (%d images) in %s", path, n, time.Since(start))
		}
		return openSet(t, path)
	}
	b.Run("data=noise-cifar/codec=raw", func(b *testing.B) {
		benchPythonClient(b, noise(b, "real-50k", 50_000, 1), noise(b, "gen-200k", 200_000, 2))
	})
	for _, codec := range []string{shards.CodecNone, shards.CodecZstd} {
		b.Run("data=fashion-mnist/codec="+codec, func(b *testing.B) {
			real, gen := testsets.FashionMNIST(b, dir, codec)
			benchPythonClient(b, openSet(b, real), openSet(b, gen))
		})
	}
}

func benchPythonClient(t *testing.B, real, gen *shards.Dataset) {
	cfg := sampler.Config{Sources: []sampler.Source{{Dataset: real, Fraction: 0.3}, {Dataset: gen, Fraction: 0.7, Replacement: true}},
		Batch: 512, Seed: 1, Augment: sampler.Augment{Pad: 4, Flip: true}}
	network := os.Getenv("CERTMIX_PY_BENCH_NET") // tcp (default) or unix
	if network == "" {
		network = "tcp"
	}
	batches := os.Getenv("CERTMIX_PY_BENCH_BATCHES")
	if batches == "" {
		batches = "1000"
	}
	addr := pyServe(t, cfg, network)
	args := []string{"bench.py", addr, "--batches", batches}
	if os.Getenv("CERTMIX_PY_BENCH_RAW") != "" {
		args = append(args, "--raw")
	}
	cmd := exec.Command(pyInterpreter, args...)
	cmd.Dir = filepath.Join(pyRoot(t), "clients", "python")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench.py: %v\n%s", err, out)
	}
	t.Logf("%s: %s", network, bytes.TrimSpace(out))
	var res struct {
		ImagesPerS float64 `json:"images_per_s"`
	}
	if json.Unmarshal(bytes.TrimSpace(out), &res) == nil {
		t.ReportMetric(res.ImagesPerS, "images/s")
	}
}

// TestPythonClientThroughAnS3Outage: the datasets live on an S3 server that
// dies for a moment while the Python client reads through shardtool serve's
// server; the batches it gets are those of an uninterrupted run.
func TestPythonClientThroughAnS3Outage(t *testing.T) {
	ctx := context.Background()
	srv := s3test.StartPrivate(t)
	bucket := srv.Bucket(t)
	s3cfg := shards.S3Config{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Retries: 8}
	shape := shards.Shape{Height: 8, Width: 8, Channels: 3, Classes: 10}
	var sets []*shards.Dataset
	for i, n := range []int{200, 600} {
		st, err := shards.NewS3(ctx, s3cfg, bucket, fmt.Sprintf("set%d", i))
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, testsets.Write(t, st, n, shape, 64, 16, int64(i)*1_000_000))
	}
	cfg := sampler.Config{Sources: []sampler.Source{{Dataset: sets[0], Fraction: 0.3}, {Dataset: sets[1], Fraction: 0.7, Replacement: true}},
		Batch: 24, Seed: 3, Augment: sampler.Augment{Pad: 1, Flip: true}, CacheBytes: 1, Prefetch: 1, Workers: 1}
	const n = 30
	want := pyGoBatches(t, cfg, 0, nil, n)
	addr := pyServe(t, cfg, "tcp")
	out := filepath.Join(t.TempDir(), "dump")
	p := pyStart(t, "tests/dump_batches.py", "--address", addr, "--batches", strconv.Itoa(n), "--out", out, "--pause-after", "5")
	if m := p.next(t); m["paused"] != float64(5) {
		t.Fatalf("python printed %v, want paused", m)
	}
	before := shards.S3Stats()
	srv.Stop()
	go func() { time.Sleep(400 * time.Millisecond); srv.Restart() }()
	fmt.Fprintln(p.stdin)
	for {
		if _, ok := p.next(t)["done"]; ok {
			break
		}
	}
	p.wait(t)
	pyCompare(t, pyReadDump(t, out), want, int64((200+24-1)/24))
	if after := shards.S3Stats(); after.Failures <= before.Failures {
		t.Errorf("no S3 request failed during the outage (%+v, then %+v): it was not exercised", before, after)
	}
}
