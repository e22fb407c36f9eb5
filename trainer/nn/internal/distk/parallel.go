package distk

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A Task is work split into independent chunks, run by [Parallel]. Callers
// keep their Task values (pointers into preallocated structs), so that
// running one allocates nothing.
type Task interface {
	Do(chunk int)
}

// batch is one Parallel call shared by the caller and the pool's workers.
type batch struct {
	t    Task
	n    int64
	next atomic.Int64
	wg   sync.WaitGroup
}

func (b *batch) drain() {
	for {
		c := b.next.Add(1) - 1
		if c >= b.n {
			return
		}
		b.t.Do(int(c))
	}
}

var pool struct {
	once    sync.Once
	mu      sync.Mutex
	work    chan *batch
	b       batch
	workers int
}

// Workers is the number of goroutines Parallel runs chunks on (GOMAXPROCS at
// the first call).
func Workers() int {
	pool.once.Do(func() {
		pool.workers = runtime.GOMAXPROCS(0)
		pool.work = make(chan *batch)
		for range pool.workers - 1 {
			go func() {
				for b := range pool.work {
					b.drain()
					b.wg.Done()
				}
			}()
		}
	})
	return pool.workers
}

// Parallel runs t.Do(c) for every c in [0, chunks), on the calling goroutine
// and the pool's workers, and returns when all are done. Chunks must be
// independent; which goroutine runs a chunk never changes a result. Calls
// are serialised (a Task must not call Parallel).
func Parallel(t Task, chunks int) {
	if chunks <= 1 || Workers() == 1 {
		for c := range chunks {
			t.Do(c)
		}
		return
	}
	pool.mu.Lock()
	defer pool.mu.Unlock()
	b := &pool.b
	b.t, b.n = t, int64(chunks)
	b.next.Store(0)
	helpers := min(pool.workers-1, chunks-1)
	b.wg.Add(helpers)
	for range helpers {
		pool.work <- b
	}
	b.drain()
	b.wg.Wait()
	b.t = nil
}
