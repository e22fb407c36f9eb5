package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"certmix/internal/imagegrid"
	"certmix/sampler"
	"certmix/shards"
)

const sampleExamples = `  # the paper's mix: 70% generated images in every batch of 512, for one epoch of the real set
  shardtool sample --real data/cifar10-train --generated s3://bucket/cifar10-gen-1m --fraction 0.7 --batch 512

  # 100 steps with a look at the first batch and a checkpoint, then 100 more from the checkpoint
  shardtool sample --real data/fmnist-train --generated data/fmnist-gen --steps 100 --png /tmp/batch.png --save-state /tmp/state.json
  shardtool sample --real data/fmnist-train --generated data/fmnist-gen --steps 100 --resume /tmp/state.json

  # what rank 3 of 8 draws in two epochs of real images only
  shardtool sample --real data/cifar10-train --fraction 0 --rank 3 --world-size 8 --epochs 2
`

// maxSampleTiles bounds the --png grid: a person looks at it.
const maxSampleTiles = 64

// sourceNames and sourceBorders name and colour the sources of a mix, in
// sampler order: real first, then generated.
var (
	sourceNames   = []string{"real", "generated"}
	sourceBorders = []color.RGBA{
		{0x1f, 0x77, 0xb4, 0xff}, // real: blue
		{0xff, 0x7f, 0x0e, 0xff}, // generated: orange
	}
)

func runSample(ctx context.Context, args []string) (err error) {
	fs := newFlags("sample", "sample --real URL [--generated URL] [--fraction F] [--batch N] [--steps N | --epochs N] [flags]", sampleExamples)
	var (
		pngOut, resume, saveState string
		epochs                    int
		steps                     int64
	)
	mix := addMixFlags(fs, true)
	fs.Int64Var(&steps, "steps", 0, "batches to draw (default: one epoch)")
	fs.IntVar(&epochs, "epochs", 0, "epochs to draw, instead of --steps")
	fs.StringVar(&pngOut, "png", "", fmt.Sprintf("write a PNG grid of the first batch (at most %d images), framed blue for real, orange for generated", maxSampleTiles))
	fs.StringVar(&resume, "resume", "", "start from this state (JSON written by --save-state) instead of step 0")
	fs.StringVar(&saveState, "save-state", "", "write the state after the last step to this file (JSON), to --resume from")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if mix.realURL == "" {
		fs.Usage()
		return fmt.Errorf("--real is required")
	}
	if err := mix.check(); err != nil {
		return err
	}
	if err := checkSampleFlags(given, steps, epochs, pngOut, saveState); err != nil {
		return err
	}
	var state *sampler.State
	if resume != "" {
		if state, err = readState(resume); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
	}
	cfg, sets, err := mix.open(ctx, "sample")
	if err != nil {
		return err
	}
	batch, replacement := mix.batch, []bool{mix.replReal, mix.replGen}
	it, err := sampler.New(ctx, cfg, state)
	if err != nil {
		if state != nil {
			return fmt.Errorf("resume from %s: %w", resume, err)
		}
		return fmt.Errorf("start the sampler: %w", err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the sampler: %w", cerr)
		}
	}()
	first := it.State()
	stepsPer := it.StepsPerEpoch()
	total := steps
	if !given["steps"] {
		total = max(int64(epochs), 1) * stepsPer
	}

	printSampleHeader(sets, replacement, cfg, it, mix, total, first, state != nil, resume)

	d, err := drawSteps(ctx, it, sets, total, stepsPer, pngOut != "", saveState)
	if err != nil {
		return err
	}
	printSampleDone(it, sets, stepsPer, total, d.images, int64(batch), d.elapsed, d.firstBatch)
	last := it.State()
	fmt.Printf("%-10s step %d, epoch %d (the next step to draw)\n", "state", last.Step, last.Epoch)
	if saveState != "" {
		if err := writeState(saveState, last); err != nil {
			return err
		}
		fmt.Printf("%-10s %s\n", "saved", saveState)
	}
	if pngOut != "" {
		return writeSampleGrid(pngOut, d.grid, d.h, d.w, d.c, batch, d.step)
	}
	return nil
}

// describeQuotas says how a batch splits, e.g. "154 real + 358 generated
// per batch (f=0.70 of 512)".
func describeQuotas(quotas []int, fraction float64, batch int) string {
	var parts []string
	for i, q := range quotas {
		parts = append(parts, fmt.Sprintf("%d %s", q, sourceNames[i]))
	}
	f := strconv.FormatFloat(fraction, 'f', -1, 64)
	if len(f) < 4 { // at least two decimals: 0.70, 1.00
		f = fmt.Sprintf("%.2f", fraction)
	}
	return fmt.Sprintf("%s per batch (f=%s of %d)", strings.Join(parts, " + "), f, batch)
}

// describeAugment says what the augmentation does to images of shape s.
func describeAugment(a sampler.Augment, s shards.Shape) string {
	var parts []string
	if a.Pad > 0 {
		fill := "zeros"
		if a.Edge {
			fill = "the replicated border"
		}
		parts = append(parts, fmt.Sprintf("random %dx%d crop of the image padded by %d (%s)", s.Height, s.Width, a.Pad, fill))
	}
	if a.Flip {
		parts = append(parts, "random horizontal flip")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// printEpoch prints the accounting of one epoch of stepsPer steps, or of
// its steps so far.
func printEpoch(st sampler.Stats, sets []*shards.Dataset, stepsPer int64) {
	steps := plural(st.Steps, "step")
	if st.Steps < stepsPer {
		steps = fmt.Sprintf("%d of %d steps so far", st.Steps, stepsPer)
	}
	var parts []string
	for i, d := range sets {
		parts = append(parts, fmt.Sprintf("%s %d drawn, %d unique of %d", sourceNames[i], st.Drawn[i], st.Unique[i], d.Manifest.Rows))
	}
	frac := ""
	if len(sets) > 1 {
		frac = fmt.Sprintf("; generated fraction %.4f", st.Fraction(1))
	}
	fmt.Printf("%-10s %s: %s%s\n", fmt.Sprintf("epoch %d", st.Epoch), steps, strings.Join(parts, "; "), frac)
}

// batchTiles copies the first images of b into tiles framed by source: the
// batch's memory is recycled by the next call to Next.
func batchTiles(b *sampler.Batch) []imagegrid.Tile {
	ib := b.Height * b.Width * b.Channels
	tiles := make([]imagegrid.Tile, min(b.Len(), maxSampleTiles))
	for i := range tiles {
		tiles[i] = imagegrid.Tile{
			Pixels:  bytes.Clone(b.Images[i*ib : (i+1)*ib]),
			Caption: fmt.Sprintf("%d #%d", b.Labels[i], b.IDs[i]),
			Border:  sourceBorders[b.Sources[i]],
		}
	}
	return tiles
}

// checkDir checks, before any work, that a file can be written at path
// (empty: nothing to check): its directory exists.
func checkDir(path string) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("cannot write %s: %s is not a directory", path, dir)
	}
	return nil
}

// readState reads a state written by writeState.
func readState(path string) (*sampler.State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st sampler.State
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%s is not a sampler state: %w", path, err)
	}
	return &st, nil
}

// writeState writes st as JSON, replacing path only once the new state is
// complete, so that an interrupted write leaves the previous one.
func writeState(path string, st sampler.State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("--save-state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("--save-state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--save-state: %w", err)
	}
	return nil
}

// plural returns "1 step", "2 steps".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// printSampleHeader says what sample draws: the sources, the batch's split,
// the epoch, the augmentation and the run.
func printSampleHeader(sets []*shards.Dataset, replacement []bool, cfg sampler.Config, it *sampler.Iterator, mix *mixFlags, total int64, first sampler.State, resumed bool, resume string) {
	quotas, stepsPer := it.Quotas(), it.StepsPerEpoch()
	batch, world, fraction := mix.batch, mix.world, mix.fraction
	realRows, global := sets[0].Manifest.Rows, int64(batch)*int64(world)
	for i, d := range sets {
		m := d.Manifest
		how := "without"
		if replacement[i] {
			how = "with"
		}
		fmt.Printf("%-10s %s: %s (%s, %s split), %d images of %dx%dx%d, %d classes; drawn %s replacement\n",
			sourceNames[i], d, m.Name, m.Kind, m.Split, m.Rows, m.Height, m.Width, m.Channels, m.Classes, how)
	}
	fmt.Printf("%-10s %s, rank %d of %d\n", "batch", describeQuotas(quotas, fraction, batch), mix.rank, world)
	fmt.Printf("%-10s %d steps per epoch (%d real images / %d per step on %d rank(s), rounded up)\n",
		"epoch", stepsPer, realRows, global, world)
	fmt.Printf("%-10s %s\n", "augment", describeAugment(cfg.Augment, sets[0].Manifest.Shape))
	from := ""
	if resumed {
		from = ", resumed from " + resume
	}
	fmt.Printf("%-10s %s from step %d (epoch %d)%s, seed %d\n", "run", plural(total, "step"), first.Step, first.Epoch, from, mix.seed)

}

// writeSampleGrid writes the first batch's grid as a PNG.
func writeSampleGrid(pngOut string, grid []imagegrid.Tile, gh, gw, gc, batch, gridStep int) error {
	scale := 2
	if max(gh, gw) <= 32 {
		scale = 4
	}
	var buf bytes.Buffer
	if err := imagegrid.WritePNG(&buf, grid, gh, gw, gc, 8, scale); err != nil {
		return fmt.Errorf("--png: %w", err)
	}
	if err := os.WriteFile(pngOut, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--png: %w", err)
	}
	fmt.Printf("%-10s %s: first %d of the %d images of step %d, captions label #id, framed blue for real, orange for generated\n",
		"wrote", pngOut, len(grid), batch, gridStep)
	return nil
}

// checkSampleFlags checks sample's flags that depend on each other.
func checkSampleFlags(given map[string]bool, steps int64, epochs int, pngOut, saveState string) error {
	switch {
	case given["steps"] && given["epochs"]:
		return fmt.Errorf("--steps and --epochs are alternatives: give one")
	case given["steps"] && steps < 1:
		return fmt.Errorf("--steps %d, want at least 1", steps)
	case given["epochs"] && epochs < 1:
		return fmt.Errorf("--epochs %d, want at least 1", epochs)
	}
	for flagName, path := range map[string]string{"png": pngOut, "save-state": saveState} {
		if err := checkDir(path); err != nil {
			return fmt.Errorf("--%s: %w", flagName, err)
		}
	}
	return nil
}

// printSampleDone prints the last partial epoch's statistics and the
// throughput.
func printSampleDone(it *sampler.Iterator, sets []*shards.Dataset, stepsPer, total, images, batch int64, elapsed, firstBatch time.Duration) {
	if st := it.Stats(); st.Steps > 0 && st.Steps < stepsPer {
		printEpoch(st, sets, stepsPer)
	}

	steady := ""
	if total > 1 && elapsed > firstBatch {
		steady = fmt.Sprintf(", %.0f/s after the first batch", float64(images-batch)/(elapsed-firstBatch).Seconds())
	}
	fmt.Printf("%-10s %s, %d images in %s: %.0f images/s (first batch after %s%s)\n", "done",
		plural(total, "step"), images, elapsed.Round(time.Millisecond), float64(images)/max(elapsed.Seconds(), 1e-9),
		firstBatch.Round(time.Microsecond), steady)
}

// drawn is what drawSteps saw: the images, the time to the first batch
// and in all, and the first batch's tiles when a grid was asked for.
type drawn struct {
	images              int64
	firstBatch, elapsed time.Duration
	grid                []imagegrid.Tile
	h, w, c, step       int
}

// drawSteps draws total batches with a progress bar, printing each
// epoch's statistics as it ends; a cancelled run saves its state to
// saveState when one is given.
func drawSteps(ctx context.Context, it *sampler.Iterator, sets []*shards.Dataset, total, stepsPer int64, wantGrid bool, saveState string) (drawn, error) {
	var d drawn
	p := newProgress()
	p.update("sample", 0, total)
	start := time.Now()
	for i := range total {
		b, err := it.Next(ctx)
		if err != nil {
			p.finish() // the sampler's error names the step
			if ctx.Err() != nil && saveState != "" {
				if serr := writeState(saveState, it.State()); serr != nil {
					return d, errors.Join(err, serr)
				}
				return d, fmt.Errorf("%w (state at step %d saved to %s)", err, it.State().Step, saveState)
			}
			return d, err
		}
		if i == 0 {
			d.firstBatch = time.Since(start)
			if wantGrid {
				d.grid, d.h, d.w, d.c, d.step = batchTiles(b), b.Height, b.Width, b.Channels, int(b.Step)
			}
		}
		d.images += int64(b.Len())
		if (b.Step+1)%stepsPer == 0 {
			if p.bar != nil {
				_ = p.bar.Clear()
			}
			printEpoch(it.Stats(), sets, stepsPer)
		}
		p.update("sample", i+1, total)
	}
	d.elapsed = time.Since(start)
	p.finish()
	return d, nil
}
