package sampler_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"certmix/internal/testsets"
	"certmix/pipeline"
	"certmix/sampler"
	"certmix/shards"
)

// New streams exact-ratio mixed batches: here 30% real and 70% generated
// images in every batch of 100, the paper's mix. Each batch says which
// source every image came from, and State resumes the stream exactly.
func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "sampler")
	defer os.RemoveAll(dir)
	for name, n := range map[string]int{"real": 1000, "generated": 5000} {
		store, _ := shards.NewLocal(filepath.Join(dir, name))
		if _, err := pipeline.Build(ctx, &testsets.Noise{N: n, X: uint64(n)}, store, pipeline.Options{Name: name, Seed: 1}); err != nil {
			log.Fatal(err)
		}
	}
	it, err := sampler.New(ctx, sampler.Config{
		Sources: []sampler.Source{
			{URL: filepath.Join(dir, "real"), Fraction: 0.3},
			{URL: filepath.Join(dir, "generated"), Fraction: 0.7, Replacement: true},
		},
		Batch: 100, Seed: 7,
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer it.Close()
	fmt.Println("steps per epoch of the real set:", it.StepsPerEpoch()) // ceil(1000 real / 100 per batch)
	for range 2 {
		b, err := it.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		count := [2]int{}
		for _, s := range b.Sources {
			count[s]++
		}
		fmt.Printf("step %d: %d real, %d generated\n", b.Step, count[0], count[1])
	}
	// Output:
	// steps per epoch of the real set: 10
	// step 0: 30 real, 70 generated
	// step 1: 30 real, 70 generated
}
