package nn

import (
	"runtime"
	"sync"
)

// maxParts bounds the parts a layer splits its Go loops into (and so the
// per-part scratch it allocates).
const maxParts = 8

// A ranged is a loop over items split into parts: run(part, lo, hi) does
// items [lo, hi) with part's scratch. Implementations are layer pointers that
// hold the loop's arguments in fields, so handing one to the workers
// allocates nothing.
type ranged interface {
	run(part, lo, hi int)
}

// job is one part of a loop, as sent to a worker.
type job struct {
	r            ranged
	part, lo, hi int
	done         *sync.WaitGroup
}

var (
	workersOnce sync.Once
	jobs        chan job
)

// parts is how many parts Go loops are split into: one per core Go may use
// (GOMAXPROCS at the first call), at most maxParts.
func parts() int {
	return min(runtime.GOMAXPROCS(0), maxParts)
}

// parallel runs r over n items in up to p parts of about equal size, one in
// the calling goroutine and the others on long-lived workers, and returns when
// all are done. done is the caller's WaitGroup (a field of the layer, so that
// nothing escapes per call). Between Gemms the BLAS threads are idle, so the
// layers' own loops (Winograd transforms) use the cores through these workers.
func parallel(r ranged, n, p int, done *sync.WaitGroup) {
	p = min(p, n)
	if p <= 1 {
		if n > 0 {
			r.run(0, 0, n)
		}
		return
	}
	workersOnce.Do(func() {
		jobs = make(chan job, maxParts)
		for range maxParts - 1 {
			go func() {
				for j := range jobs {
					j.r.run(j.part, j.lo, j.hi)
					j.done.Done()
				}
			}()
		}
	})
	done.Add(p - 1)
	for i := 1; i < p; i++ {
		jobs <- job{r: r, part: i, lo: i * n / p, hi: (i + 1) * n / p, done: done}
	}
	r.run(0, 0, n/p)
	done.Wait()
}
