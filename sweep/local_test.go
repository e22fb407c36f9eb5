package sweep

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowCertmix is fakeCertmix with a pause in every command, counting how
// many run at once; train fails for the cell named fail.
type slowCertmix struct {
	fakeCertmix
	mu        sync.Mutex
	now, most int
	fail      string
}

func (s *slowCertmix) Run(ctx context.Context, args []string, log io.Writer) error {
	s.mu.Lock()
	s.now++
	s.most = max(s.most, s.now)
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.now--; s.mu.Unlock() }()
	time.Sleep(30 * time.Millisecond)
	if args[0] == "train" && s.fail != "" && strings.Contains(flagValue(args, "--out"), s.fail) {
		return errors.New("boom")
	}
	return s.fakeCertmix.Run(ctx, args, log)
}

func TestLocalParallel(t *testing.T) {
	for _, parallel := range []int{1, 2, 3} {
		dir, p := tinySweep(t)
		r := &slowCertmix{fail: p.Cells[1].Name}
		var progress strings.Builder
		err := Local{Parallel: parallel, Runner: r, Progress: &progress}.Run(context.Background(), dir, p.Cells)
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("parallel %d: err = %v, want the failed cell's", parallel, err)
		}
		if r.most != min(parallel, len(p.Cells)) {
			t.Errorf("parallel %d: %d commands at once", parallel, r.most)
		}
		for i, c := range p.Cells {
			if done := IsDone(dir, c.Name); done != (i != 1) {
				t.Errorf("parallel %d: cell %s done %v; a failed cell must not stop the others", parallel, c.Name, done)
			}
		}
		if !strings.Contains(progress.String(), p.Cells[1].Name+": failed") {
			t.Errorf("progress:\n%s", progress.String())
		}
	}
}
