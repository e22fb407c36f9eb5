package trainer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"certmix/rundir"
	"certmix/trainer"
)

// constant is the simplest Batches: every batch the same two images, one
// dark (class 0) and one bright (class 1), 32x32 grey.
type constant struct{ step int64 }

func (c *constant) Next(context.Context) (trainer.Batch, error) {
	c.step++
	img := make([]byte, 2*32*32)
	for i := 32 * 32; i < len(img); i++ {
		img[i] = 200
	}
	return trainer.Batch{Step: c.step, Images: img, Labels: []int16{0, 1}, Height: 32, Width: 32, Channels: 1}, nil
}

func (c *constant) State() json.RawMessage { s, _ := json.Marshal(c.step); return s }
func (c *constant) StepsPerEpoch() int64   { return 5 }

// Run trains a model from a preset on any Batches and leaves its
// checkpoints and metrics in the run directory; with Resume it continues
// from them. certmix train does the same with the sampler's batches
// (trainer.OpenSampler) and a DatasetEvaluator.
func ExampleRun() {
	dir, _ := os.MkdirTemp("", "run")
	defer os.RemoveAll(dir)
	cfg, _ := trainer.Preset("gloro-xs")
	cfg.Depth, cfg.Width, cfg.Classes, cfg.Channels, cfg.Batch, cfg.Epochs = 1, 4, 2, 1, 2, 2
	open := func(_ context.Context, _ trainer.Config, state json.RawMessage) (trainer.Batches, error) {
		c := &constant{}
		if state != nil {
			json.Unmarshal(state, &c.step)
		}
		return c, nil
	}
	tr, err := trainer.Run(context.Background(), cfg, open, trainer.RunOptions{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	epochs, _ := rundir.ReadMetrics(dir)
	fmt.Println("steps:", tr.Step, "epochs logged:", len(epochs))
	_, err = os.Stat(dir + "/" + rundir.LastCheckpoint)
	fmt.Println("last checkpoint written:", err == nil)
	// Output:
	// steps: 10 epochs logged: 2
	// last checkpoint written: true
}
