package pool

import (
	"sync"
	"sync/atomic"
	"testing"
)

// counter is a Ranged and a Task that counts how often each item is done
// and checks the part numbers it is given.
type counter struct {
	seen  []atomic.Int32
	parts int
	done  sync.WaitGroup
	bad   atomic.Int32
}

func (c *counter) Run(part, lo, hi int) {
	if part < 0 || part >= c.parts || lo > hi {
		c.bad.Add(1)
	}
	for i := lo; i < hi; i++ {
		c.seen[i].Add(1)
	}
}

func (c *counter) Do(chunk int) { c.seen[chunk].Add(1) }

func (c *counter) check(t *testing.T, what string) {
	t.Helper()
	if b := c.bad.Load(); b != 0 {
		t.Errorf("%s: %d calls with a part outside [0, %d) or lo > hi", what, b, c.parts)
	}
	for i := range c.seen {
		if n := c.seen[i].Load(); n != 1 {
			t.Fatalf("%s: item %d done %d times, want once", what, i, n)
		}
	}
}

// TestSplitAndChunks: every item of a loop is done exactly once, with part
// numbers below the parts asked for, for loops shorter and longer than the
// parts, and while other goroutines split their own loops over the same
// workers.
func TestSplitAndChunks(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 8, 9, 1000} {
		for _, p := range []int{1, 2, 3, 8, 16} {
			c := &counter{seen: make([]atomic.Int32, n), parts: p}
			Split(c, n, p, &c.done)
			c.check(t, "Split")
		}
		c := &counter{seen: make([]atomic.Int32, n), parts: 1}
		Chunks(c, n)
		c.check(t, "Chunks")
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				c := &counter{seen: make([]atomic.Int32, 100+g), parts: 4}
				if g%2 == 0 {
					Split(c, len(c.seen), 4, &c.done)
				} else {
					Chunks(c, len(c.seen))
				}
				c.check(t, "concurrent")
			}
		}()
	}
	wg.Wait()
}

// TestNoAllocs: a loop handed to the workers allocates nothing.
func TestNoAllocs(t *testing.T) {
	c := &counter{seen: make([]atomic.Int32, 64), parts: 8}
	if a := testing.AllocsPerRun(100, func() { Split(c, 64, 8, &c.done) }); a != 0 {
		t.Errorf("Split allocates %v times per call", a)
	}
	if a := testing.AllocsPerRun(100, func() { Chunks(c, 64) }); a != 0 {
		t.Errorf("Chunks allocates %v times per call", a)
	}
}
