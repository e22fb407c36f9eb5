package main

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"certmix/internal/imagegrid"
	"certmix/shards"
)

const peekExamples = `  shardtool peek --out /tmp/fmnist.png data/fmnist-train
  # 100 images from row 5000 of shard 3, 10 to a row, at 6x
  shardtool peek --out /tmp/gen.png -n 100 --cols 10 --scale 6 --shard 3 --start 5000 s3://bucket/cifar10-gen-1m
`

// maxPeek bounds -n: a grid is for a person to look at, not a dump.
const maxPeek = 1024

func runPeek(ctx context.Context, args []string) error {
	fs := newFlags("peek", "peek --out FILE.png [flags] URL", peekExamples)
	out := fs.String("out", "", "PNG file to write (required)")
	n := fs.Int("n", 64, fmt.Sprintf("number of images, 1..%d", maxPeek))
	cols := fs.Int("cols", 8, "images per row of the grid")
	scale := fs.Int("scale", 0, fmt.Sprintf("pixel scale factor, 1..%d (default 4 for images up to 32 px, else 2)", imagegrid.MaxScale))
	shard := fs.Int("shard", 0, "index of the shard to start in")
	start := fs.Int64("start", 0, "row of that shard to start at; later shards follow if it holds too few rows")
	s3cfg := s3Flags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		fs.Usage()
		return fmt.Errorf("want --out and one dataset URL, got --out %q and %d arguments", *out, len(pos))
	}
	switch {
	case *n < 1 || *n > maxPeek:
		return fmt.Errorf("-n %d outside 1..%d", *n, maxPeek)
	case *cols < 1:
		return fmt.Errorf("--cols %d, want at least 1", *cols)
	case *scale < 0 || *scale > imagegrid.MaxScale:
		return fmt.Errorf("--scale %d outside 1..%d", *scale, imagegrid.MaxScale)
	}

	d, err := shards.Open(ctx, pos[0], s3cfg())
	if err != nil {
		return err
	}
	m := d.Manifest
	if *scale == 0 {
		*scale = 2
		if max(m.Height, m.Width) <= 32 {
			*scale = 4
		}
	}
	rows, err := peekRows(ctx, d, *shard, *start, *n)
	if err != nil {
		return err
	}

	tiles := make([]imagegrid.Tile, rows.Len())
	for i := range tiles {
		caption := fmt.Sprint(rows.Labels[i])
		if m.CoarseClasses > 0 {
			caption += fmt.Sprintf("/%d", rows.Coarse[i])
		}
		tiles[i] = imagegrid.Tile{
			Pixels:  rows.Image(i, m.ImageBytes()),
			Caption: fmt.Sprintf("%s #%d", caption, rows.IDs[i]),
		}
	}
	var buf bytes.Buffer
	if err := imagegrid.WritePNG(&buf, tiles, m.Height, m.Width, m.Channels, *cols, *scale); err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write the grid of %s: %w", d, err)
	}

	labels := "label #id"
	if m.CoarseClasses > 0 {
		labels = "label/coarse #id"
	}
	short := ""
	if rows.Len() < *n {
		short = fmt.Sprintf(" (only %d of the %d asked for: the dataset ends there)", rows.Len(), *n)
	}
	fmt.Printf("wrote %s: %d images of %s (%s, %s, %s split), %dx%dx%d at %dx, from shard %d row %d, captions %s%s\n",
		*out, rows.Len(), d, m.Name, m.Kind, m.Split, m.Height, m.Width, m.Channels, *scale, *shard, *start, labels, short)
	return nil
}

// peekRows reads up to n rows of d from row start of shard i on, reading
// only the record batches it needs (one range read each) and going on into
// the following shards when shard i holds too few rows.
func peekRows(ctx context.Context, d *shards.Dataset, i int, start int64, n int) (shards.Rows, error) {
	var rows shards.Rows
	m := d.Manifest
	if i < 0 || i >= len(m.Shards) {
		return rows, fmt.Errorf("%s: --shard %d, the dataset has shards 0..%d", d, i, len(m.Shards)-1)
	}
	if start < 0 || start >= m.Shards[i].Rows {
		return rows, fmt.Errorf("%s: --start %d, shard %d has rows 0..%d", d, start, i, m.Shards[i].Rows-1)
	}
	skip := int(start) // rows to drop from the first batch read
	for ; i < len(m.Shards) && rows.Len()-skip < n; i++ {
		for j, b := range m.Shards[i].Batches {
			if rows.Len() == 0 && int64(skip) >= b.Rows {
				skip -= int(b.Rows)
				continue
			}
			if rows.Len()-skip >= n {
				break
			}
			if err := d.ReadBatch(ctx, i, j, &rows); err != nil {
				return rows, fmt.Errorf("shard %d: %w", i, err)
			}
		}
	}
	end := min(rows.Len(), skip+n)
	ib := m.ImageBytes()
	rows.IDs, rows.Labels, rows.Images = rows.IDs[skip:end], rows.Labels[skip:end], rows.Images[skip*ib:end*ib]
	if rows.Coarse != nil {
		rows.Coarse = rows.Coarse[skip:end]
	}
	return rows, nil
}
