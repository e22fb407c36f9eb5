package main

import (
	"fmt"
	"log"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows the advance of a long job: a bar with rate and ETA on a
// terminal, a plain log line every few seconds otherwise (CI logs, pipes).
type progress struct {
	tty   bool
	stage string
	bar   *progressbar.ProgressBar
	last  time.Time
	start time.Time
}

func newProgress() *progress {
	return &progress{tty: term.IsTerminal(int(os.Stderr.Fd()))}
}

// update reports done of total units of stage (rows or bytes).
func (p *progress) update(stage string, done, total int64) {
	if stage != p.stage {
		p.finish()
		p.stage, p.start, p.last = stage, time.Now(), time.Now()
		if p.tty {
			p.bar = progressbar.NewOptions64(total,
				progressbar.OptionSetDescription(fmt.Sprintf("%-6s", stage)),
				progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("rows"),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionFullWidth(),
			)
		}
	}
	if p.bar != nil {
		_ = p.bar.Set64(done)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= 5*time.Second || done == total {
		p.last = now
		rate := float64(done) / max(now.Sub(p.start).Seconds(), 1e-9)
		eta := time.Duration(float64(total-done) / max(rate, 1e-9) * float64(time.Second))
		log.Printf("%s: %d/%d rows (%.0f%%), %.0f rows/s, ETA %s", stage, done, total, 100*float64(done)/float64(max(total, 1)), rate, eta.Round(time.Second))
	}
}

// finish closes the current bar, if any.
func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(os.Stderr)
		p.bar = nil
	}
}
