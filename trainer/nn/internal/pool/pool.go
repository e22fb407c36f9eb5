// Package pool is the one set of long-lived worker goroutines that the
// compute kernels of package nn and its distance kernels (internal/distk)
// split their loops over.
//
// A training step calls the kernels thousands of times, each for well under
// a millisecond, so they cannot start goroutines (or an errgroup) per call:
// that allocates, and TestNoAllocs in package nn holds the layers to zero
// allocations per step. The workers are started once, sleep on a channel
// when idle (so they leave the cores to BLAS and the rest of the process),
// and take work as interface values that point into structures the callers
// preallocated. Work handed to the pool must not itself call the pool: a
// worker waiting for other workers could wait for ever.
//
// Two ways to split a loop share the workers:
//   - [Split] cuts n items into a few parts of about equal size, each run
//     with its part number, so that a caller can give every part its own
//     preallocated scratch (Winograd's transforms, Gemm's column blocks);
//   - [Chunks] hands out chunks one at a time to whichever goroutine is free,
//     for loops whose chunks take uneven time (the l_p distance kernels).
//
// Goroutine groups that are not kernels (readers, encoders, servers) use
// golang.org/x/sync/errgroup instead; see docs/concurrency.md.
package pool

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A Ranged is a loop over items split into parts: Run(part, lo, hi) does items
// [lo, hi) with part's scratch. Implementations are pointers that hold the
// loop's arguments in fields, so handing one to the workers allocates nothing.
type Ranged interface {
	Run(part, lo, hi int)
}

// A Task is work split into independent chunks, run by [Chunks]. Callers keep
// their Task values (pointers into preallocated structs), so that running one
// allocates nothing.
type Task interface {
	Do(chunk int)
}

// job is one part of a loop, as sent to a worker.
type job struct {
	r            Ranged
	part, lo, hi int
	done         *sync.WaitGroup
}

var workers struct {
	once sync.Once
	n    int // goroutines that run parts: the caller and n-1 workers
	jobs chan job
}

// Workers is the number of goroutines a loop is split over: the calling one
// and the pool's workers, GOMAXPROCS at the first call in all.
func Workers() int {
	workers.once.Do(func() {
		workers.n = runtime.GOMAXPROCS(0)
		if workers.n < 2 {
			return
		}
		workers.jobs = make(chan job, workers.n-1)
		for range workers.n - 1 {
			go func() {
				for j := range workers.jobs {
					j.r.Run(j.part, j.lo, j.hi)
					j.done.Done()
				}
			}()
		}
	})
	return workers.n
}

// Split runs r over n items in p parts of about equal size (fewer when n < p),
// part 0 on the calling goroutine and the others on the workers, and returns
// when all are done. done is the caller's WaitGroup, a field of its
// preallocated loop, so that nothing escapes per call. Concurrent calls are
// allowed; their parts queue for the workers.
func Split(r Ranged, n, p int, done *sync.WaitGroup) {
	p = min(p, n)
	if p <= 1 {
		if n > 0 {
			r.Run(0, 0, n)
		}
		return
	}
	if Workers() < 2 { // GOMAXPROCS was 1: the same parts, one after another
		for i := range p {
			r.Run(i, i*n/p, (i+1)*n/p)
		}
		return
	}
	done.Add(p - 1)
	for i := 1; i < p; i++ {
		workers.jobs <- job{r: r, part: i, lo: i * n / p, hi: (i + 1) * n / p, done: done}
	}
	r.Run(0, 0, n/p)
	done.Wait()
}

// chunked is one Chunks call, shared by the caller and the workers that help.
type chunked struct {
	t    Task
	n    int64
	next atomic.Int64
	wg   sync.WaitGroup
}

// Run makes a chunked call a Ranged, so that its helpers are ordinary jobs:
// each takes chunks until none is left.
func (c *chunked) Run(_, _, _ int) {
	for {
		i := c.next.Add(1) - 1
		if i >= c.n {
			return
		}
		c.t.Do(int(i))
	}
}

var chunks struct {
	mu sync.Mutex
	c  chunked
}

// Chunks runs t.Do(c) for every c in [0, n), on the calling goroutine and the
// pool's workers, each taking the next chunk when it is free, and returns
// when all are done. Chunks must be independent; which goroutine runs a chunk
// never changes a result. Calls are serialised (one shared record, so that
// nothing is allocated).
func Chunks(t Task, n int) {
	if n <= 1 || Workers() < 2 {
		for c := range n {
			t.Do(c)
		}
		return
	}
	chunks.mu.Lock()
	defer chunks.mu.Unlock()
	c := &chunks.c
	c.t, c.n = t, int64(n)
	c.next.Store(0)
	helpers := min(workers.n-1, n-1)
	c.wg.Add(helpers)
	for range helpers {
		workers.jobs <- job{r: c, done: &c.wg}
	}
	c.Run(0, 0, 0)
	c.wg.Wait()
	c.t = nil
}
