package sweep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Local runs cells on this machine, Parallel at a time (default 1), each
// through [RunCell]. A failed cell does not stop the others; cancelling
// ctx stops them all (each resumes on the next run).
type Local struct {
	Parallel int
	Runner   Runner
	// Progress receives one line as each cell starts and ends (nil: none).
	Progress io.Writer
}

// Run brings every cell to done and returns the failures, joined.
func (l Local) Run(ctx context.Context, dir string, cells []Cell) error {
	n := max(l.Parallel, 1)
	progress := l.Progress
	if progress == nil {
		progress = io.Discard
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	slots := make(chan struct{}, n)
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(progress, format+"\n", a...)
	}
	for i, c := range cells {
		if IsDone(dir, c.Name) {
			say("[%d/%d] %s: done already", i+1, len(cells), c.Name)
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			say("[%d/%d] %s: running (log %s)", i+1, len(cells), c.Name, LogPath(dir, c.Name))
			start := time.Now()
			if _, err := RunCell(ctx, dir, c, l.Runner); err != nil {
				say("[%d/%d] %s: failed after %s: %v", i+1, len(cells), c.Name, time.Since(start).Round(time.Second), err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			say("[%d/%d] %s: done in %s", i+1, len(cells), c.Name, time.Since(start).Round(time.Second))
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}
