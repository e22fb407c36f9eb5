package shards_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"certmix/internal/testsets"
	"certmix/pipeline"
	"certmix/shards"
)

// Open reads a dataset's manifest from a local directory (or an
// s3://bucket/prefix URL, with credentials from S3ConfigFromEnv), after
// which its shards can be read and checked one at a time.
func ExampleOpen() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "shards")
	defer os.RemoveAll(dir)
	store, _ := shards.NewLocal(filepath.Join(dir, "noise"))
	// 1,000 CIFAR-shaped images, shuffled with seed 1, into shards.
	if _, err := pipeline.Build(ctx, &testsets.Noise{N: 1000}, store, pipeline.Options{Name: "noise", Seed: 1}); err != nil {
		log.Fatal(err)
	}

	d, err := shards.Open(ctx, filepath.Join(dir, "noise"), shards.S3ConfigFromEnv())
	if err != nil {
		log.Fatal(err)
	}
	m := d.Manifest
	fmt.Printf("%s: %d rows of %dx%dx%d, %d classes\n", m.Name, m.Rows, m.Height, m.Width, m.Channels, m.Classes)
	var rows shards.Rows
	if err := d.ReadShard(ctx, 0, &rows); err != nil { // checksums verified on the way
		log.Fatal(err)
	}
	fmt.Println("first shard holds", rows.Len(), "rows")
	// Output:
	// noise: 1000 rows of 32x32x3, 10 classes
	// first shard holds 1000 rows
}
