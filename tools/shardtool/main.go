// Command shardtool builds datasets of images as sharded Arrow files on local
// disk or S3, and inspects, verifies and previews them.
//
//	shardtool build   --in FILES|DIR --out URL [flags]   source files -> dataset
//	shardtool inspect URL                                manifest summary
//	shardtool verify  URL                                check every byte and row
//	shardtool peek    URL --out grid.png                 look at a few images
//
// Run "shardtool COMMAND --help" for the flags of each command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is recorded in every manifest this tool writes.
const version = "0.1.0"

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

var commands = []command{
	{"build", "stream source files (CIFAR-10/100 binary, .npz, IDX) into a sharded dataset", runBuild},
	{"inspect", "print a dataset's manifest summary, class histogram and sizes", runInspect},
	{"verify", "check checksums, decode every row and check ids and counts", runVerify},
	{"peek", "write a PNG grid of a few images with their labels", runPeek},
	{"sample", "stream exact-ratio mixed batches and report their statistics and throughput", runSample},
	{"serve", "stream mixed batches to training processes (PyTorch) over a socket, with Prometheus metrics", runServe},
}

func usage() {
	fmt.Fprintf(os.Stderr, "shardtool %s: datasets of images as sharded Arrow files, on local disk or S3.\n\nUsage: shardtool COMMAND [flags]\n\nCommands:\n", version)
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'shardtool COMMAND --help' for a command's flags and examples.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands {
		if c.name == os.Args[1] {
			err := c.run(ctx, os.Args[2:])
			if errors.Is(err, flag.ErrHelp) {
				return
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "shardtool %s: %v\n", c.name, err)
				stop()
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "shardtool: unknown command %q\n\n", os.Args[1])
	usage()
	os.Exit(2)
}

// newFlags returns a flag set whose --help prints the command's synopsis,
// its flags and its examples.
func newFlags(name, synopsis, examples string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: shardtool %s\n\n", synopsis)
		fs.PrintDefaults()
		if examples != "" {
			fmt.Fprintf(fs.Output(), "\nExamples:\n%s", examples)
		}
	}
	return fs
}

// parse parses flags that may come before or after the positional
// arguments ("verify URL --nested-in URL2") and returns the positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var pos []string
	for fs.NArg() > 0 {
		pos = append(pos, fs.Arg(0))
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return nil, err
		}
	}
	return pos, nil
}
