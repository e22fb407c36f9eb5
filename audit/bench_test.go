package audit

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"certmix/shards"
)

var cifarShape = shards.Shape{Height: 32, Width: 32, Channels: 3, Classes: 10}

// smoothImages returns n CIFAR-shaped images that look more like photos
// than noise does: a random 4x4 colour field, bilinearly upsampled, plus an
// 8x8 one at a third of the contrast and pixel noise of 4/255. The filter's
// work on them is what it is on real data: most of each image's energy lies
// in the coarse cells.
func smoothImages(rng *rand.Rand, n int) []byte {
	s := cifarShape
	out := make([]byte, n*s.ImageBytes())
	var coarse [4 * 4 * 3]float64
	var mid [8 * 8 * 3]float64
	sample := func(g []float64, side int, y, x, c int) float64 {
		fy := (float64(y)+0.5)*float64(side)/32 - 0.5
		fx := (float64(x)+0.5)*float64(side)/32 - 0.5
		y0, x0 := int(max(fy, 0)), int(max(fx, 0))
		y1, x1 := min(y0+1, side-1), min(x0+1, side-1)
		ty, tx := min(max(fy-float64(y0), 0), 1), min(max(fx-float64(x0), 0), 1)
		at := func(yy, xx int) float64 { return g[(yy*side+xx)*3+c] }
		return (1-ty)*((1-tx)*at(y0, x0)+tx*at(y0, x1)) + ty*((1-tx)*at(y1, x0)+tx*at(y1, x1))
	}
	for i := range n {
		for k := range coarse {
			coarse[k] = rng.Float64() * 255
		}
		for k := range mid {
			mid[k] = (rng.Float64() - 0.5) * 85
		}
		img := out[i*3072 : (i+1)*3072]
		for y := range 32 {
			for x := range 32 {
				for c := range 3 {
					v := sample(coarse[:], 4, y, x, c) + sample(mid[:], 8, y, x, c) + rng.NormFloat64()*4
					img[(y*32+x)*3+c] = byte(min(max(v+0.5, 0), 255))
				}
			}
		}
	}
	return out
}

// writeSmooth stores n smooth images at dir (uncompressed shards of 64 MiB),
// unless a dataset of n rows is already there.
func writeSmooth(b *testing.B, dir string, n int, seed uint64) *shards.Dataset {
	ctx := context.Background()
	store, err := shards.NewLocal(dir)
	if err != nil {
		b.Fatal(err)
	}
	if d, err := shards.OpenDataset(ctx, store); err == nil && d.Manifest.Rows == int64(n) {
		return d
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	m := &shards.Manifest{Name: fmt.Sprintf("smooth-%d", n), Kind: shards.KindGenerated, Split: "train", Shape: cifarShape,
		Codec: shards.CodecNone, Rows: int64(n), ClassCounts: make([]int64, 10)}
	const shardRows = 20480
	for lo := 0; lo < n; lo += shardRows {
		hi := min(lo+shardRows, n)
		r := shards.Rows{Images: smoothImages(rng, hi-lo)}
		for id := lo; id < hi; id++ {
			r.IDs = append(r.IDs, int64(id))
			r.Labels = append(r.Labels, int16(id%10))
			m.ClassCounts[id%10]++
		}
		info, err := shards.WriteShard(ctx, store, fmt.Sprintf("shard-%06d.arrow", len(m.Shards)), cifarShape, shards.CodecNone, shards.DefaultBatchRows, &r)
		if err != nil {
			b.Fatal(err)
		}
		m.Shards = append(m.Shards, info)
	}
	if err := shards.WriteManifest(ctx, store, m); err != nil {
		b.Fatal(err)
	}
	d, err := shards.OpenDataset(ctx, store)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkSearchCIFAR audits 10,000 CIFAR-shaped test images against
// AUDIT_BENCH_ROWS (default 100,000) generated ones, stored uncompressed on
// local disk; AUDIT_BENCH_DIR keeps the datasets between runs. It reports
// rows/s, the seconds per million rows, and the process's peak resident
// memory during the search (VmHWM, reset before it starts).
//
//	AUDIT_BENCH_ROWS=1000000 AUDIT_BENCH_DIR=/tmp/auditbench go test ./audit -run '^$' -bench SearchCIFAR -benchtime 1x
func BenchmarkSearchCIFAR(b *testing.B) {
	rows := 100000
	if s := os.Getenv("AUDIT_BENCH_ROWS"); s != "" {
		var err error
		if rows, err = strconv.Atoi(s); err != nil {
			b.Fatalf("AUDIT_BENCH_ROWS=%q: %v", s, err)
		}
	}
	dir := os.Getenv("AUDIT_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	test := writeSmooth(b, filepath.Join(dir, "test-10000"), 10000, 1)
	ds := writeSmooth(b, filepath.Join(dir, fmt.Sprintf("gen-%d", rows)), rows, 2)
	shifts, _ := strconv.Atoi(os.Getenv("AUDIT_BENCH_SHIFTS"))
	cands, _ := strconv.Atoi(os.Getenv("AUDIT_BENCH_CANDIDATES"))
	runtime.GC()
	resetPeak()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for range b.N {
		res, err := Search(context.Background(), test, []*shards.Dataset{ds}, Options{Shifts: shifts, Candidates: cands})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Datasets[0].Neighbours) != 10000 {
			b.Fatal("no result")
		}
	}
	el := time.Since(start).Seconds() / float64(b.N)
	cpu := (cpuTime() - cpu0).Seconds() / float64(b.N)
	b.ReportMetric(cpu*1e6/float64(rows), "cpu-s/Mrows")
	b.ReportMetric(float64(rows)/el, "rows/s")
	b.ReportMetric(el*1e6/float64(rows), "s/Mrows")
	if peak := peakRSS(); peak > 0 {
		b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
	}
}

// cpuTime is the user and system CPU time of the process so far: on a
// machine shared with other work, CPU time / cores bounds the wall time the
// search would take on idle cores.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeak resets the kernel's record of the process's peak resident set.
func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is the process's peak resident set (VmHWM) in bytes, 0 if unknown.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if f := strings.Fields(string(line)); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
