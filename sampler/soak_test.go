package sampler

import (
	"context"
	"os"
	"runtime"
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
// one versitygw for CERTMIX_SOAK (default 30s; the soak run is 10m),
// sampling RSS, goroutines and open file descriptors every 5 seconds:
//
//	CERTMIX_SOAK=10m go test ./sampler -run '^$' -bench Soak -benchtime 1x -timeout 20m -v
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
	var sets []*shards.Dataset
	for i, n := range []int{20_000, 100_000} {
		st, err := shards.NewS3(ctx, cfgS3, bucket, "soak"+strconv.Itoa(i))
		if err != nil {
			b.Fatal(err)
		}
		sets = append(sets, testsets.Write(b, st, n, shape, 20_000, 4096, int64(i)*1_000_000))
	}
	for range b.N {
		ctx, cancel := context.WithTimeout(ctx, dur)
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
		tick := time.NewTicker(5 * time.Second)
		var rss, gor, fds []int
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-tick.C:
				r, g, f := rssKiB(), runtime.NumGoroutine(), openFDs()
				rss, gor, fds = append(rss, r), append(gor, g), append(fds, f)
				mu.Lock()
				b.Logf("%5.0fs  rss %d MiB  goroutines %d  fds %d  images %d", time.Since(start).Seconds(), r/1024, g, f, images)
				mu.Unlock()
			}
		}
		tick.Stop()
		wg.Wait()
		cancel()
		if firstErr != nil {
			b.Fatal(firstErr)
		}
		b.ReportMetric(float64(images)/time.Since(start).Seconds(), "images/s")
		if len(rss) > 0 {
			b.ReportMetric(float64(maxOf(rss))/1024, "maxRSS-MiB")
			b.ReportMetric(float64(maxOf(gor)), "maxGoroutines")
			b.ReportMetric(float64(maxOf(fds)), "maxFDs")
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
