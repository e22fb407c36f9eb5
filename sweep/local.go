package sweep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
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
		g    errgroup.Group // no shared context: a failed cell does not stop the others
	)
	g.SetLimit(n)
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
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { // waits for a free slot
			if ctx.Err() != nil {
				return nil // cancelled while waiting for the slot
			}
			say("[%d/%d] %s: running (log %s)", i+1, len(cells), c.Name, LogPath(dir, c.Name))
			start := time.Now()
			if _, err := RunCell(ctx, dir, c, l.Runner); err != nil {
				say("[%d/%d] %s: failed after %s: %v", i+1, len(cells), c.Name, time.Since(start).Round(time.Second), err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return nil // every failure is reported, joined, after the others finish
			}
			say("[%d/%d] %s: done in %s", i+1, len(cells), c.Name, time.Since(start).Round(time.Second))
			return nil
		})
	}
	g.Wait()
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}
