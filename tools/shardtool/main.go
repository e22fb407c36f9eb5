// Command shardtool builds datasets of images as sharded Arrow files on local
// disk or S3, and inspects, verifies and previews them.
//
//	shardtool build   --in FILES|DIR --out URL [flags]   source files -> dataset
//	shardtool inspect URL                                manifest summary
//	shardtool verify  URL                                check every byte and row
//	shardtool peek    URL --out grid.png                 look at a few images
//	shardtool audit   --against TEST --out DIR URL...    near-copies of test images
//
// Run "shardtool COMMAND --help" for the flags of each command.
package main

import (
	"flag"

	"certmix/internal/cli"
)

// version is recorded in every manifest this tool writes.
const version = "0.1.0"

var commands = []cli.Command{
	{Name: "build", Summary: "stream source files (CIFAR-10/100 binary, .npz, IDX) into a sharded dataset", Run: runBuild},
	{Name: "inspect", Summary: "print a dataset's manifest summary, class histogram and sizes", Run: runInspect},
	{Name: "verify", Summary: "check checksums, decode every row and check ids and counts", Run: runVerify},
	{Name: "peek", Summary: "write a PNG grid of a few images with their labels", Run: runPeek},
	{Name: "sample", Summary: "stream exact-ratio mixed batches and report their statistics and throughput", Run: runSample},
	{Name: "audit", Summary: "find images of datasets that are near-copies of test images (flips, 1-pixel shifts)", Run: runAudit},
	{Name: "serve", Summary: "stream mixed batches to training processes (PyTorch) over a socket, with Prometheus metrics", Run: runServe},
}

func main() {
	cli.Main("shardtool", "shardtool "+version+": datasets of images as sharded Arrow files, on local disk or S3.", commands)
}

// newFlags returns the flag set of a shardtool command.
func newFlags(_, synopsis, examples string) *flag.FlagSet {
	return cli.Flags("shardtool", synopsis, examples)
}

// parse parses interleaved flags and positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) { return cli.Parse(fs, args) }

// parseFlags parses the flags of a command that takes no positional
// arguments, refusing a stray one (and so the flags after it) by name.
func parseFlags(fs *flag.FlagSet, args []string) error { return cli.ParseFlags(fs, args) }
