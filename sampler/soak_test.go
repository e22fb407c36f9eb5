package sampler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"certmix/internal/s3test"
	"certmix/internal/testsets"
	"certmix/shards"
)

// BenchmarkSoak runs four iterators (two ranks of two configurations) on
// one versitygw for CERTMIX_SOAK (default 30s; the soak run is 10m), once
// per codec of the shards (codec=none, codec=zstd), sampling RSS,
// goroutines and open file descriptors every 5 seconds (more often in a
// short soak: at least 24 samples; RSS after a forced collection, so that
// it measures what is kept, not the collector's pace), and fails unless,
// after a warm-up of the first third, the RSS grows by less than 1 MiB a
// minute (a robust slope) and the goroutines and file descriptors do not
// grow (checkTrends):
//
//	CERTMIX_SOAK=10m go test ./sampler -run '^$' -bench Soak -benchtime 1x -timeout 30m -v
//
// The images (testsets.Pixels) compress far better than real ones: the
// zstd case exercises the decompression path, not realistic ratios.
func BenchmarkSoak(b *testing.B) {
	dur := 30 * time.Second
	if v := os.Getenv("CERTMIX_SOAK"); v != "" {
		var err error
		if dur, err = time.ParseDuration(v); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	srv := s3test.Start(b)
	bucket := srv.Bucket(b)
	cfgS3 := shards.S3Config{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	shape := shards.Shape{Height: 32, Width: 32, Channels: 3, Classes: 10}
	for _, codec := range []string{shards.CodecNone, shards.CodecZstd} {
		b.Run("codec="+codec, func(b *testing.B) {
			var sets []*shards.Dataset
			for i, n := range []int{20_000, 100_000} {
				st, err := shards.NewS3(ctx, cfgS3, bucket, fmt.Sprintf("soak-%s-%d", codec, i))
				if err != nil {
					b.Fatal(err)
				}
				sets = append(sets, testsets.WriteCodec(b, st, n, shape, 20_000, 4096, int64(i)*1_000_000, codec))
			}
			for range b.N {
				soak(b, ctx, sets, dur)
			}
		})
	}
}

func soak(b *testing.B, ctx context.Context, sets []*shards.Dataset, dur time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var images int
	var firstErr error
	for k := range 4 {
		wg.Go(func() {
			cfg := Config{Sources: []Source{{Dataset: sets[0], Fraction: 0.3}, {Dataset: sets[1], Fraction: 0.7, Replacement: k%2 == 0}},
				Batch: 256, Seed: uint64(k / 2), Rank: k % 2, WorldSize: 2, Augment: Augment{Pad: 4, Flip: true}, CacheBytes: 64 << 20}
			it, err := New(ctx, cfg, nil)
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				return
			}
			defer it.Close()
			for {
				bt, err := it.Next(ctx)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
					return
				}
				mu.Lock()
				images += bt.Len()
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	tick := time.NewTicker(min(5*time.Second, dur/24))
	var at []time.Duration
	var rss, gor, fds []int
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			if ctx.Err() != nil {
				break loop // the iterators are closing: not a sample of the run
			}
			debug.FreeOSMemory() // RSS of what is live, not of garbage the collector has yet to return
			r, g, f := rssKiB(), runtime.NumGoroutine(), openFDs()
			at, rss, gor, fds = append(at, time.Since(start)), append(rss, r), append(gor, g), append(fds, f)
			mu.Lock()
			b.Logf("%5.1fs  rss %d MiB  goroutines %d  fds %d  images %d", time.Since(start).Seconds(), r/1024, g, f, images)
			mu.Unlock()
		}
	}
	tick.Stop()
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	b.ReportMetric(float64(images)/time.Since(start).Seconds(), "images/s")
	if len(rss) > 0 {
		b.ReportMetric(float64(maxOf(rss))/1024, "maxRSS-MiB")
		b.ReportMetric(float64(maxOf(gor)), "maxGoroutines")
		b.ReportMetric(float64(maxOf(fds)), "maxFDs")
	}
	slope, err := checkTrends(at, rss, gor, fds)
	b.ReportMetric(slope, "RSS-MiB/min")
	if err != nil {
		b.Fatal(err)
	}
}

// checkTrends checks the soak's samples after a warm-up of the first third.
// The samples swing with the batches in flight and the caches' churn (RSS by
// hundreds of MiB, goroutines by tens), so the checks are robust ones: the
// RSS slope is the Theil–Sen estimate (the median of the slopes between
// every two samples), which must be under 1 MiB a minute; and the samples
// are cut into four windows, whose median goroutine and open-file counts
// must not grow from the first window to the last by more than 2. It
// returns the RSS slope in MiB a minute.
func checkTrends(at []time.Duration, rssKiB, goroutines, fds []int) (float64, error) {
	const windows = 4
	w := len(at) / 3
	if len(at)-w < 3*windows {
		return 0, fmt.Errorf("%d samples: too few to judge a trend after the warm-up (run longer)", len(at))
	}
	at, rssKiB, goroutines, fds = at[w:], rssKiB[w:], goroutines[w:], fds[w:]
	var slopes []float64
	for i := range at {
		for j := i + 1; j < len(at); j++ {
			if dt := (at[j] - at[i]).Minutes(); dt > 0 {
				slopes = append(slopes, float64(rssKiB[j]-rssKiB[i])/1024/dt)
			}
		}
	}
	slices.Sort(slopes)
	slope := slopes[len(slopes)/2]
	var errs []string
	if slope >= 1 {
		errs = append(errs, fmt.Sprintf("RSS grows %.2f MiB/min after the warm-up (want < 1): %v KiB", slope, rssKiB))
	}
	n := len(at)
	for _, c := range []struct {
		name string
		v    []int
	}{{"goroutines", goroutines}, {"open files", fds}} {
		first, last := median(c.v[:n/windows]), median(c.v[(windows-1)*n/windows:])
		if last > first+2 {
			errs = append(errs, fmt.Sprintf("%s grow after the warm-up (median %d in the first quarter, %d in the last): %v", c.name, first, last, c.v))
		}
	}
	if len(errs) > 0 {
		return slope, errors.New(strings.Join(errs, "; "))
	}
	return slope, nil
}

func median(xs []int) int {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestSoakTrendsCatchLeaks: checkTrends passes a flat run with garbage
// collection noise, and fails a leak of 2 MiB a minute, a goroutine leak
// and a file descriptor leak.
func TestSoakTrendsCatchLeaks(t *testing.T) {
	const n = 60 // ten minutes at 10 s
	at := make([]time.Duration, n)
	rss, gor, fds := make([]int, n), make([]int, n), make([]int, n)
	flat := func() {
		for i := range n {
			at[i] = time.Duration(i) * 10 * time.Second
			rss[i] = 300<<10 + (i%4)*(8<<10) // a sawtooth of 24 MiB: the garbage collector
			gor[i], fds[i] = 40+i%2, 20+(i%3)/2
		}
	}
	flat()
	if slope, err := checkTrends(at, rss, gor, fds); err != nil {
		t.Errorf("a flat run (RSS slope %.2f MiB/min): %v", slope, err)
	}
	for name, leak := range map[string]func(i int){
		"RSS 2 MiB/min": func(i int) { rss[i] += i * 10 * 2 << 10 / 60 },
		"goroutines":    func(i int) { gor[i] += i / 5 },
		"open files":    func(i int) { fds[i] += i / 8 },
	} {
		flat()
		for i := range n {
			leak(i)
		}
		if _, err := checkTrends(at, rss, gor, fds); err == nil {
			t.Errorf("a leak of %s passed", name)
		}
	}
}

func maxOf(xs []int) int {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func rssKiB() int {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

func openFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}
