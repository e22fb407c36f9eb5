package main

import (
	"context"
	"errors"
	"fmt"

	"certmix/trainer/importer"
)

const importExamples = `  # a state dict saved with np.savez({k: v.numpy() for k, v in model.state_dict().items()})
  certmix import --npz liresnet.npz --out runs/imported/last.safetensors
  certmix import --npz lot.npz --out runs/lot/last.safetensors                     # LipResNet or LipConvNet, CIFAR-10's normalisation
  certmix import --npz sortnet.npz --arch sortnet --out runs/sortnet/last.safetensors
  certmix import --npz mlp.npz --mean 0.2860 --std 0.3520 --image-size 28 --out runs/fm/last.safetensors
  certmix certify --checkpoint runs/imported/last.safetensors --test data/cifar10-test --out runs/imported/certify
`

// runImport turns a PyTorch state dict of one of the authors' models,
// saved with np.savez, into a certmix checkpoint (trainer/importer).
func runImport(ctx context.Context, args []string) error {
	fs := newFlags("import", "import --npz FILE --out FILE.safetensors [flags]", importExamples)
	in := fs.String("npz", "", "state dict saved with np.savez (required)")
	out := fs.String("out", "", "checkpoint to write (required)")
	prefix := fs.String("prefix", "", `prefix of the state's keys (e.g. "state/" or "module.")`)
	arch := fs.String("arch", "", "the architecture: gloro, linfdist, sortnet or lot (default: detected; SortNet must be named, its state dict is MLPModel's)")
	mean := fs.String("mean", "", "the input normalisation's per-channel mean, comma-separated (default: the authors': 0.5 for LiResNet, CIFAR-10's for the others, Fashion-MNIST's for 1-channel l_inf models)")
	std := fs.Float64("std", 0, "the input normalisation's std (default: the authors': 1 for LiResNet, 0.2009 for l_inf-dist Net and SortNet, 0.2507 for LOT)")
	size := fs.Int("image-size", 0, "the side of the dataset's square images (default: 32; the l_inf models' from their first layer)")
	q := fs.Float64("keep-prob", 0, "SortNet's q, the authors' dropout argument (default 0.85)")
	topK := fs.Int("topk", 0, "SortNet's truncation K (default 10)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		fs.Usage()
		return errors.New("--npz and --out are required")
	}
	m, err := importer.ParseFloats(*mean)
	if err != nil {
		return fmt.Errorf("--mean: %w", err)
	}
	f, err := importer.ImportFile(ctx, *in, *out, importer.Options{Arch: *arch, Prefix: *prefix, Mean: m, Std: *std,
		ImageSize: *size, KeepProb: *q, TopK: *topK})
	if err != nil {
		return err
	}
	fmt.Printf("imported %s from %s into %s\n", f, *in, *out)
	if f.Class == "MLPModel" && *arch == "" {
		fmt.Println("(a SortNet's SortMLPModel has the same parameters: import it with --arch sortnet)")
	}
	return nil
}
