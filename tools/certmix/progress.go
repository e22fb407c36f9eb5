package main

import (
	"certmix/trainer"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// bar shows training progress on a terminal (steps, rate, ETA, loss); off a
// terminal the per-epoch log lines are the progress.
type bar struct{ pb *progressbar.ProgressBar }

func newBar(total, done int64) *bar {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return &bar{}
	}
	pb := progressbar.NewOptions64(total, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowCount(),
		progressbar.OptionShowIts(), progressbar.OptionSetItsString("steps"), progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionFullWidth(), progressbar.OptionSetDescription("train"))
	_ = pb.Set64(done)
	return &bar{pb: pb}
}

func (b *bar) step(done int64, loss float64) {
	if b.pb != nil {
		b.pb.Describe(fmt.Sprintf("train loss %.4f", loss))
		_ = b.pb.Set64(done)
	}
}

// clear makes room for a log line.
func (b *bar) clear() {
	if b.pb != nil {
		_ = b.pb.Clear()
	}
}

func (b *bar) finish() {
	if b.pb != nil {
		_ = b.pb.Finish()
		fmt.Fprintln(os.Stderr)
	}
}

// runOptions are a training run's options with a progress bar on a
// terminal and log lines that make room for it.
func runOptions(dir string, resume bool, eval trainer.Evaluator) trainer.RunOptions {
	var b *bar
	return trainer.RunOptions{Dir: dir, Resume: resume, Eval: eval,
		Progress: func(step, total int64, loss float64) {
			if b == nil {
				b = newBar(total, step-1)
			}
			b.step(step, loss)
			if step == total {
				b.finish()
			}
		},
		Logf: func(format string, args ...any) {
			if b != nil {
				b.clear()
			}
			log.Printf(format, args...)
		},
	}
}
