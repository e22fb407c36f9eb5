// Package cli is the little that certmix's commands share: dispatch to a
// subcommand with signal-aware cancellation and exit codes, and flag sets
// whose --help explains with examples.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Command is one subcommand of a program.
type Command struct {
	Name, Summary string
	Run           func(ctx context.Context, args []string) error
}

// Main runs the subcommand named by os.Args[1] and exits: 0 on success or
// --help, 1 on error (printed as "program name: error"), 2 on misuse.
// Ctrl-C and SIGTERM cancel the command's context.
func Main(program, about string, commands []Command) {
	usage := func() {
		fmt.Fprintf(os.Stderr, "%s\n\nUsage: %s COMMAND [flags]\n\nCommands:\n", about, program)
		for _, c := range commands {
			fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.Name, c.Summary)
		}
		fmt.Fprintf(os.Stderr, "\nRun '%s COMMAND --help' for a command's flags and examples.\n", program)
	}
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
		if c.Name != os.Args[1] {
			continue
		}
		err := c.Run(ctx, os.Args[2:])
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "%s %s: %v\n", program, c.Name, err)
			stop()
			os.Exit(1)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "%s: unknown command %q\n\n", program, os.Args[1])
	usage()
	os.Exit(2)
}

// Flags returns a flag set whose --help prints the command's synopsis, its
// flags and its examples.
func Flags(program, synopsis, examples string) *flag.FlagSet {
	fs := flag.NewFlagSet(program, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s %s\n\n", program, synopsis)
		fs.PrintDefaults()
		if examples != "" {
			fmt.Fprintf(fs.Output(), "\nExamples:\n%s", examples)
		}
	}
	return fs
}

// Parse parses flags that may come before or after the positional
// arguments ("verify URL --nested-in URL2") and returns the positionals.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
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

// ParseFlags parses the flags of a command that takes no positional
// arguments and refuses any that are left: the flag package stops at the
// first argument that is not a flag, so without this check everything after
// a stray word ("--out o x --eps 0.1") would be silently ignored.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return nil
	}
	rest := fs.Args()
	msg := fmt.Sprintf("unexpected argument %q: this command takes only flags", rest[0])
	if len(rest) > 1 {
		msg += fmt.Sprintf("; flags after it were not read: %s", strings.Join(rest[1:], " "))
	}
	return errors.New(msg)
}
