// Command certmix trains certifiably robust classifiers on mixed batches of
// real and generated images and certifies them.
//
//	certmix train   --real URL --generated URL --fraction 0.7 --preset gloro-xs --epochs N --out DIR
//	certmix certify --checkpoint DIR/last.safetensors --test URL --out DIR
//
// Run "certmix COMMAND --help" for the flags of each command.
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

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

var commands = []command{
	{"train", "train GloroNet (LiResNet) on exact-ratio mixed batches, with checkpoints and per-epoch metrics", runTrain},
	{"certify", "certify a checkpoint on a test dataset: radii, certified accuracy, plots", runCertify},
	{"import", "turn the authors' PyTorch LiResNet weights (saved with np.savez) into a certmix checkpoint", runImport},
	{"table", "print the certify summaries of several runs as a Markdown table", runTable},
}

func usage() {
	fmt.Fprintf(os.Stderr, "certmix: certified training on a mix of real and generated images.\n\nUsage: certmix COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'certmix COMMAND --help' for a command's flags and examples.\n")
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
				fmt.Fprintf(os.Stderr, "certmix %s: %v\n", c.name, err)
				stop()
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "certmix: unknown command %q\n\n", os.Args[1])
	usage()
	os.Exit(2)
}

func newFlags(name, synopsis, examples string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: certmix %s\n\n", synopsis)
		fs.PrintDefaults()
		if examples != "" {
			fmt.Fprintf(fs.Output(), "\nExamples:\n%s", examples)
		}
	}
	return fs
}
