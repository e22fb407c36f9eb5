package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"certmix/internal/npy"
	"certmix/shards"
	"certmix/trainer"
)

const importExamples = `  # weights of the authors' LiResNet, saved with np.savez({k: v.numpy() for k, v in model.state_dict().items()})
  certmix import --npz liresnet.npz --out runs/imported/last.safetensors
  certmix certify --checkpoint runs/imported/last.safetensors --test data/cifar10-test --out runs/imported/certify
`

// runImport turns a PyTorch LiResNet state dict saved with np.savez into a
// certmix checkpoint, so that models trained with the original code can be
// certified and compared here.
func runImport(ctx context.Context, args []string) error {
	fs := newFlags("import", "import --npz FILE --out FILE.safetensors [--prefix P]", importExamples)
	in := fs.String("npz", "", "state dict saved with np.savez (required)")
	out := fs.String("out", "", "checkpoint to write (required)")
	prefix := fs.String("prefix", "", `prefix of the state's keys (e.g. "state/")`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		fs.Usage()
		return errors.New("--npz and --out are required")
	}
	arrays, err := npy.LoadNPZ(*in)
	if err != nil {
		return err
	}
	// The architecture from the shapes: stem (W, C, 5, 5), one weight per
	// block, head (classes, 512).
	stem, head := arrays[*prefix+"stem.0.weight"], arrays[*prefix+"head.weight"]
	if stem == nil || head == nil || len(stem.Shape) != 4 || len(head.Shape) != 2 {
		return fmt.Errorf("%s: no LiResNet state (stem.0.weight, head.weight) under prefix %q", *in, *prefix)
	}
	depth := 0
	for k := range arrays {
		if strings.HasPrefix(k, *prefix+"backbone.") && strings.HasSuffix(k, ".affine") {
			depth++
		}
	}
	cfg, _ := trainer.Preset("gloro-xs")
	cfg.Depth, cfg.Width, cfg.Channels, cfg.Classes, cfg.Batch = depth, stem.Shape[0], stem.Shape[1], head.Shape[0], 256
	tr, err := trainer.New(cfg)
	if err != nil {
		return err
	}
	if err := tr.Model.(*trainer.Gloro).Net.Import(arrays, *prefix); err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	dir, name := filepath.Split(*out)
	if err := os.MkdirAll(filepath.Clean(dir+"."), 0o755); err != nil {
		return err
	}
	store, err := shards.NewLocal(filepath.Clean(dir + "."))
	if err != nil {
		return err
	}
	if err := tr.Save(ctx, store, name, []byte("null")); err != nil {
		return err
	}
	fmt.Printf("imported LiResNet L%dW%d (%d classes, %d channels) from %s into %s\n", depth, cfg.Width, cfg.Classes, cfg.Channels, *in, *out)
	return nil
}
