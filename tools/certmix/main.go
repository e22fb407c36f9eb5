// Command certmix trains certifiably robust classifiers on mixed batches of
// real and generated images and certifies them.
//
//	certmix train   --real URL --generated URL --fraction 0.7 --preset gloro-xs --epochs N --out DIR
//	certmix certify --checkpoint DIR/last.safetensors --test URL --out DIR
//	certmix sweep   [--executor local|slurm] --out DIR FILE; certmix sweep status DIR
//	certmix report  SWEEPDIR; certmix report --predict GAP SWEEPDIR
//
// Run "certmix COMMAND --help" for the flags of each command.
package main

import (
	"flag"

	"certmix/internal/cli"
)

var commands = []cli.Command{
	{Name: "train", Summary: "train a certifiably robust model (a preset of the paper's) on exact-ratio mixed batches, with checkpoints and per-epoch metrics", Run: runTrain},
	{Name: "certify", Summary: "certify a checkpoint on a test dataset: radii, certified accuracy, plots", Run: runCertify},
	{Name: "import", Summary: "turn the authors' PyTorch LiResNet weights (saved with np.savez) into a certmix checkpoint", Run: runImport},
	{Name: "table", Summary: "print the certify summaries of several runs as a Markdown table", Run: runTable},
	{Name: "sweep", Summary: "run a sweep file's grid of train+certify cells, locally or as a Slurm job array; sweep status", Run: runSweep},
	{Name: "report", Summary: "a sweep's tables and plots (Markdown, HTML, PNG); --predict the gain from the fitted lines", Run: runReport},
}

func main() {
	cli.Main("certmix", "certmix: certified training on a mix of real and generated images.", commands)
}

// newFlags returns the flag set of a certmix command.
func newFlags(_, synopsis, examples string) *flag.FlagSet {
	return cli.Flags("certmix", synopsis, examples)
}

// parseFlags parses the flags of a command that takes no positional
// arguments, refusing a stray one (and so the flags after it) by name.
func parseFlags(fs *flag.FlagSet, args []string) error { return cli.ParseFlags(fs, args) }
