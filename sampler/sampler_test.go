package sampler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"certmix/internal/s3test"
	"certmix/internal/testsets"
	"certmix/shards"
)

func TestMain(m *testing.M) {
	os.Exit(s3test.Run(m, func() error {
		shards.CloseIdleS3Connections()
		return s3test.FindLeaks()
	}))
}

var small = shards.Shape{Height: 4, Width: 4, Channels: 1, Classes: 10}

func local(t testing.TB) shards.Store {
	s, err := shards.NewLocal(filepath.Join(t.TempDir(), "ds"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sets returns a real set of 100 rows and a generated one of 300, ids apart.
func sets(t testing.TB) (real, gen *shards.Dataset) {
	return testsets.Write(t, local(t), 100, small, 40, 16, 0), testsets.Write(t, local(t), 300, small, 64, 16, 1_000_000)
}

func mixConfig(real, gen *shards.Dataset, batch int, f float64) Config {
	return Config{Sources: []Source{{Dataset: real, Fraction: 1 - f}, {Dataset: gen, Fraction: f, Replacement: true}},
		Batch: batch, Seed: 42}
}

// collect returns the next n batches, copied.
func collect(t testing.TB, cfg Config, state *State, n int) []Batch {
	t.Helper()
	ctx := context.Background()
	it, err := New(ctx, cfg, state)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []Batch
	for range n {
		b, err := it.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Clone())
	}
	return out
}

func equalBatches(a, b []Batch) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d batches vs %d", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Step != y.Step || x.Epoch != y.Epoch || !bytes.Equal(x.Images, y.Images) || !slices.Equal(x.Floats, y.Floats) ||
			!slices.Equal(x.Labels, y.Labels) || !slices.Equal(x.IDs, y.IDs) || !slices.Equal(x.Sources, y.Sources) {
			return fmt.Errorf("batch %d (step %d vs %d) differs", i, x.Step, y.Step)
		}
	}
	return nil
}

func TestExactCountsPerBatchAndRank(t *testing.T) {
	real, gen := sets(t)
	for b := 1; b <= 600; b++ {
		for _, f := range []float64{0, 0.1, 0.3, 0.7, 1} {
			q, err := Quotas(b, []float64{1 - f, f})
			if err != nil {
				continue // too small a batch for this fraction: Quotas' own test
			}
			worlds := []int{1}
			if b <= 40 || b%37 == 0 || b == 256 || b == 512 || b == 600 {
				worlds = append(worlds, 3) // every rank of 3, on a spread of sizes
			}
			for _, world := range worlds {
				for rank := range world {
					cfg := mixConfig(real, gen, b, f)
					cfg.Rank, cfg.WorldSize, cfg.Workers = rank, world, 1
					for _, bt := range collect(t, cfg, nil, 2) {
						var n [2]int
						for i, s := range bt.Sources {
							n[s]++
							if (s == 0) != (bt.IDs[i] < 1_000_000) || !bytes.Equal(bt.Images[i*16:i*16+8], testsets.Pixels(bt.IDs[i], 16)[:8]) {
								t.Fatalf("b=%d f=%v: image %d (id %d, source %d) is not that id's", b, f, i, bt.IDs[i], s)
							}
						}
						if n[0] != q[0] || n[1] != q[1] || bt.Len() != b {
							t.Fatalf("b=%d f=%v rank %d/%d step %d: %v real/generated, want %v", b, f, rank, world, bt.Step, n, q)
						}
					}
				}
			}
		}
	}
}

func TestRealCoversTheSetOncePerCycle(t *testing.T) {
	real, gen := sets(t)
	const world = 2
	seen := map[int64]int{}
	var draws int
	for rank := range world {
		cfg := mixConfig(real, gen, 20, 0.3) // 14 real a batch; 100 rows; 2 ranks
		cfg.Rank, cfg.WorldSize = rank, world
		for _, b := range collect(t, cfg, nil, 25) { // 25*14*2 = 700 = 7 cycles
			for i, s := range b.Sources {
				if s == 0 {
					seen[b.IDs[i]]++
					draws++
				}
			}
		}
	}
	if draws != 700 || len(seen) != 100 {
		t.Fatalf("%d real draws over %d distinct images, want 700 over 100", draws, len(seen))
	}
	for id, n := range seen {
		if n != 7 {
			t.Errorf("real image %d drawn %d times in 7 cycles", id, n)
		}
	}
}

func TestSameBatchesWhateverPrefetchAndWorkers(t *testing.T) {
	real, gen := sets(t)
	var runs [][]Batch
	for _, tc := range []struct{ prefetch, workers, cache int }{{1, 1, 1 << 30}, {8, 4, 1 << 30}, {3, 2, 1}} {
		cfg := mixConfig(real, gen, 32, 0.7)
		cfg.Prefetch, cfg.Workers, cfg.CacheBytes = tc.prefetch, tc.workers, int64(tc.cache)
		cfg.Augment = Augment{Pad: 2, Flip: true}
		runs = append(runs, collect(t, cfg, nil, 30))
	}
	for i := 1; i < len(runs); i++ {
		if err := equalBatches(runs[0], runs[i]); err != nil {
			t.Errorf("run %d: %v", i, err)
		}
	}
}

func TestResumeEqualsUninterrupted(t *testing.T) {
	real, gen := sets(t)
	cfg := mixConfig(real, gen, 24, 0.7)
	cfg.Augment = Augment{Pad: 1, Flip: true, Edge: true}
	all := collect(t, cfg, nil, 40) // 5 steps an epoch: several epochs
	ctx := context.Background()
	for _, at := range []int{0, 1, 7, 13, 25, 39} {
		it, err := New(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range at {
			if _, err := it.Next(ctx); err != nil {
				t.Fatal(err)
			}
		}
		st := it.State()
		stats := it.Stats()
		it.Close()
		if st.Step != int64(at) {
			t.Fatalf("state after %d batches is at step %d", at, st.Step)
		}
		if st.Epoch != all[at].Epoch {
			t.Errorf("state after %d batches is in epoch %d, its next step in epoch %d", at, st.Epoch, all[at].Epoch)
		}
		it2, err := New(ctx, cfg, &st)
		if err != nil {
			t.Fatal(err)
		}
		if got := it2.Stats(); !slices.Equal(got.Drawn, stats.Drawn) || !slices.Equal(got.Unique, stats.Unique) {
			t.Errorf("resumed at %d: epoch stats %+v, before %+v", at, got, stats)
		}
		it2.Close()
		if err := equalBatches(collect(t, cfg, &st, 40-at), all[at:]); err != nil {
			t.Errorf("resumed at step %d: %v", at, err)
		}
	}
	// A state of other data or another ratio is refused.
	st := State{Seed: 42, Batch: 24, WorldSize: 1, Sources: []SourceState{{Manifest: "0", Fraction: 0.3}, {Manifest: "1", Fraction: 0.7}}}
	if _, err := New(ctx, cfg, &st); err == nil {
		t.Error("resume with other manifests accepted")
	}
	// So is a state this configuration wrote, resumed with another
	// generated set in place of the one it drew from.
	it, err := New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := it.Next(ctx); err != nil {
		t.Fatal(err)
	}
	st = it.State()
	it.Close()
	other := cfg
	other.Sources = slices.Clone(cfg.Sources)
	other.Sources[1].Dataset = testsets.Write(t, local(t), 300, small, 64, 16, 2_000_000)
	if it, err := New(ctx, other, &st); err == nil {
		it.Close()
		t.Error("resume on another generated set accepted")
	}
}

func TestPairedSweeps(t *testing.T) {
	real, gen := sets(t)
	other := testsets.Write(t, local(t), 500, small, 100, 16, 2_000_000)
	realIDs := func(cfg Config, steps int) []int64 {
		var ids []int64
		for _, b := range collect(t, cfg, nil, steps) {
			var step []int64
			for i, s := range b.Sources {
				if s == 0 {
					step = append(step, b.IDs[i])
				}
			}
			slices.Sort(step) // the order inside a batch is shuffled
			ids = append(ids, step...)
		}
		return ids
	}
	chunks := func(ids []int64, n int) [][]int64 { // sorted chunks of n draws
		var out [][]int64
		for lo := 0; lo+n <= len(ids); lo += n {
			c := slices.Clone(ids[lo : lo+n])
			slices.Sort(c)
			out = append(out, c)
		}
		return out
	}
	// B=100: f=0.3 draws 70 real a step, f=0.6 draws 40: 280 draws are 4 and 7 steps.
	a := realIDs(mixConfig(real, gen, 100, 0.3), 8)
	b := realIDs(mixConfig(real, gen, 100, 0.6), 14)
	cfg := mixConfig(real, other, 100, 0.6)
	c := realIDs(cfg, 14)
	ca, cb, cc := chunks(a, 280), chunks(b, 280), chunks(c, 280)
	for i := range ca {
		if !slices.Equal(ca[i], cb[i]) || !slices.Equal(cb[i], cc[i]) {
			t.Fatalf("real draws %d..%d differ between fractions 0.3 and 0.6 or generated sets", i*280, (i+1)*280)
		}
	}
}

func TestGeneratedDrawsAreUniform(t *testing.T) {
	real, gen := sets(t)                 // 300 generated images
	cfg := mixConfig(real, gen, 50, 0.7) // 35 generated a step
	counts := map[int64]float64{}
	const steps = 600 // 21,000 draws: 70 expected per image
	for _, b := range collect(t, cfg, nil, steps) {
		for i, s := range b.Sources {
			if s == 1 {
				counts[b.IDs[i]]++
			}
		}
	}
	if len(counts) != 300 {
		t.Fatalf("%d distinct generated images drawn, want all 300", len(counts))
	}
	exp := float64(steps*35) / 300
	var chi float64
	for _, c := range counts {
		chi += (c - exp) * (c - exp) / exp
	}
	// 299 degrees of freedom: the 0.999 quantile is 388.
	if chi > 388 {
		t.Errorf("chi-square %.1f over 300 generated images, > 388 (not uniform)", chi)
	}
}

func TestS3AndLocalGiveTheSameBatches(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	ctx := context.Background()
	cfgS3 := shards.S3Config{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	var ds [2][2]*shards.Dataset
	for i, n := range []int{100, 300} {
		s3, err := shards.NewS3(ctx, cfgS3, bucket, fmt.Sprintf("set%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ds[0][i] = testsets.Write(t, local(t), n, small, 64, 16, int64(i)*1_000_000)
		ds[1][i] = testsets.Write(t, s3, n, small, 64, 16, int64(i)*1_000_000)
	}
	a := collect(t, mixConfig(ds[0][0], ds[0][1], 30, 0.7), nil, 20)
	b := collect(t, mixConfig(ds[1][0], ds[1][1], 30, 0.7), nil, 20)
	if err := equalBatches(a, b); err != nil {
		t.Error(err)
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	real, gen := sets(t)
	rgb := testsets.Write(t, local(t), 50, shards.Shape{Height: 4, Width: 4, Channels: 3, Classes: 10}, 50, 16, 0)
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"fraction above 1", mixConfig(real, gen, 64, 1.5)},
		{"batch too small", mixConfig(real, gen, 3, 0.1)},
		{"shapes differ", mixConfig(real, rgb, 64, 0.5)},
		{"no manifest", Config{Sources: []Source{{URL: empty, Fraction: 1}}, Batch: 8}},
		{"rank", Config{Sources: []Source{{Dataset: real, Fraction: 1}}, Batch: 8, Rank: 2, WorldSize: 2}},
		{"crop too large", Config{Sources: []Source{{Dataset: real, Fraction: 1}}, Batch: 8, Augment: Augment{Size: 9, Pad: 2}}},
	} {
		if it, err := New(ctx, tc.cfg, nil); err == nil {
			it.Close()
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// readCounter is a real store that counts the reads at one offset of one
// object: how often the sampler fetched a given record batch.
type readCounter struct {
	shards.Store
	name string
	off  int64
	n    atomic.Int64
}

func (r *readCounter) Open(ctx context.Context, name string) (shards.Object, error) {
	o, err := r.Store.Open(ctx, name)
	if err != nil || name != r.name {
		return o, err
	}
	return countedObject{o, r}, nil
}

type countedObject struct {
	shards.Object
	r *readCounter
}

func (o countedObject) ReadAt(p []byte, off int64) (int, error) {
	if off == o.r.off {
		o.r.n.Add(1)
	}
	return o.Object.ReadAt(p, off)
}

// TestDamagedShardIsNeverUsed: a shard whose bytes rot is fetched again
// once, then the iterator fails naming it; no batch is made from it.
func TestDamagedShardIsNeverUsed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, _ := shards.NewLocal(dir)
	real := testsets.Write(t, store, 100, small, 100, 16, 0)
	damaged := real.Manifest.Shards[0].Batches[2]
	path := filepath.Join(dir, real.Manifest.Shards[0].Name)
	data, _ := os.ReadFile(path)
	data[damaged.Offset+40] ^= 1
	os.WriteFile(path, data, 0o644)
	counter := &readCounter{Store: store, name: real.Manifest.Shards[0].Name, off: damaged.Offset}
	ds, err := shards.OpenDataset(ctx, counter)
	if err != nil {
		t.Fatal(err)
	}
	// One worker, one batch ahead. A worker making a later step may want
	// the damaged record batch again (a failed fetch is not cached), but
	// every time, it is read exactly twice: once, and once more.
	it, err := New(ctx, Config{Sources: []Source{{Dataset: ds, Fraction: 1}}, Batch: 100, Seed: 1, Workers: 1, Prefetch: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	b, err := it.Next(ctx)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(real.Manifest.Shards[0].Name)) || !errors.Is(err, shards.ErrChecksum) {
		t.Fatalf("got %v, want a checksum error naming the shard", err)
	}
	if b != nil {
		t.Errorf("a batch came with the error")
	}
	if _, err2 := it.Next(ctx); err2 == nil {
		t.Errorf("Next after the checksum failure made a batch")
	}
	// Wait for a fetch in flight to finish: then reads are twice the refetches.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, re := counter.n.Load(), it.IOStats().Refetches
		if n == 2*re && re >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the damaged record batch was read %d times for %d refetches: want it fetched again exactly once each time (2 reads per refetch)", n, re)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCloseLeavesNoGoroutine(t *testing.T) {
	real, gen := sets(t)
	before := runtime.NumGoroutine()
	ctx := context.Background()
	for range 5 {
		it, err := New(ctx, mixConfig(real, gen, 64, 0.7), nil)
		if err != nil {
			t.Fatal(err)
		}
		it.Next(ctx)
		it.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before", n, before)
	}
}

// TestS3OutageIsBridged: the S3 server stops while batches stream, until a
// read has failed against it; reads are retried with backoff and the
// batches are those of an uninterrupted run.
func TestS3OutageIsBridged(t *testing.T) {
	srv := s3test.StartPrivate(t)
	bucket := srv.Bucket(t)
	ctx := context.Background()
	cfgS3 := shards.S3Config{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	var ds []*shards.Dataset
	for i, n := range []int{100, 300} {
		s3, err := shards.NewS3(ctx, cfgS3, bucket, fmt.Sprintf("set%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, testsets.Write(t, s3, n, small, 64, 16, int64(i)*1_000_000))
	}
	cfg := mixConfig(ds[0], ds[1], 30, 0.7)
	cfg.CacheBytes, cfg.Prefetch, cfg.Workers = 1, 1, 1 // every step fetches
	want := collect(t, cfg, nil, 30)

	it, err := New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	before := shards.S3Stats()
	restarted := make(chan error, 1)
	var got []Batch
	for i := range 30 {
		if i == 10 {
			srv.Stop()
			down := shards.S3Stats().Failures
			// The server comes back once a request has failed against it
			// (the outage was met and is being retried), which under load
			// a fixed pause could miss or outlast; Restart returns when it
			// answers again.
			go func() {
				start := time.Now()
				for deadline := start.Add(10 * time.Second); shards.S3Stats().Failures == down && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond)
				}
				met := time.Since(start)
				err := srv.Restart()
				t.Logf("outage: first failed request after %v, server back after %v", met.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
				restarted <- err
			}()
		}
		b, err := it.Next(ctx)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got = append(got, b.Clone())
	}
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	if err := equalBatches(got, want); err != nil {
		t.Error(err)
	}
	if after := shards.S3Stats(); after.Failures <= before.Failures || after.BytesRead <= before.BytesRead {
		t.Errorf("S3 counters before %+v, after %+v: the outage's failed requests or the bytes read were not counted", before, after)
	}
}

// TestNextNeverSkipsAStep: a Next whose context ends while it waits leaves
// the step for the next call; and a too-small cache is raised for real.
func TestNextNeverSkipsAStep(t *testing.T) {
	real, gen := sets(t)
	cfg := mixConfig(real, gen, 20, 0.7)
	cfg.CacheBytes = 1
	it, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if it.cache.budget != it.Config().CacheBytes || it.cache.budget <= 1 {
		t.Errorf("cache budget %d, Config says %d", it.cache.budget, it.Config().CacheBytes)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	// Every batch either call returns is recorded: the cancelled Next may
	// return ctx.Err() or a batch (both cases are ready at once, and select
	// picks at random), but the steps handed out must be exactly 0, 1, 2, ...
	// Many rounds, so that a lost step shows whichever way select falls.
	var steps []int64
	for range 64 {
		b, err := it.Next(done)
		switch {
		case err == nil:
			steps = append(steps, b.Step)
		case !errors.Is(err, context.Canceled):
			t.Fatalf("cancelled Next: %v, want a batch or context.Canceled", err)
		}
		b, err = it.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, b.Step)
	}
	for i, s := range steps {
		if s != int64(i) {
			t.Fatalf("call %d returned step %d, want %d: steps %v", i, s, i, steps)
		}
	}
	if st := it.State(); st.Step != steps[len(steps)-1]+1 {
		t.Fatalf("state at step %d after step %d", st.Step, steps[len(steps)-1])
	}
}

// TestS3GoneForGood: with the store gone for good, Next fails with a clear
// error after bounded retries; it never hangs.
func TestS3GoneForGood(t *testing.T) {
	ctx := context.Background()
	srv := s3test.StartPrivate(t)
	bucket := srv.Bucket(t)
	cfgS3 := shards.S3Config{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Retries: 2}
	var ds []*shards.Dataset
	for i, n := range []int{100, 300} {
		s3, err := shards.NewS3(ctx, cfgS3, bucket, fmt.Sprintf("set%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, testsets.Write(t, s3, n, small, 64, 16, int64(i)*1_000_000))
	}
	cfg := mixConfig(ds[0], ds[1], 30, 0.7)
	cfg.CacheBytes, cfg.Prefetch, cfg.Workers = 1, 1, 1
	it, err := New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if _, err := it.Next(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	for {
		_, err := it.Next(ctx)
		if err != nil {
			if !strings.Contains(err.Error(), "unreachable") {
				t.Errorf("error %v, want one saying the store is unreachable", err)
			}
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("still making batches 30 s after the store went away")
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the error took %s", d)
	}
}
