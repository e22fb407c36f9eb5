package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"certmix/internal/cli"
	"certmix/sweep"
)

const sweepExamples = `  # the README's tiny sweep, three cells on this machine, then its report
  certmix sweep --out runs/demo sweeps/demo.yaml
  certmix report runs/demo
  # the same grid as one Slurm job array, waiting until it has finished
  certmix sweep --executor slurm --wait --out runs/demo sweeps/demo.yaml
  certmix sweep status runs/demo
  # run it again after a stop: finished cells are skipped, interrupted ones resume
  certmix sweep --out runs/demo sweeps/demo.yaml

  certmix sweep status DIR        each cell: pending, running, done or failed, with its log
  certmix sweep cell DIR NAME     run one cell (what each Slurm array task runs)
`

// runSweep runs a sweep file, or the status and cell subcommands.
func runSweep(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "status":
			return runSweepStatus(ctx, args[1:])
		case "cell":
			return runSweepCell(ctx, args[1:])
		}
	}
	fs := newFlags("sweep", "sweep [--executor local|slurm] [--parallel N] [--wait] [--out DIR] FILE", sweepExamples)
	executor := fs.String("executor", "local", "local: run the cells on this machine; slurm: submit them as one Slurm job array (sbatch --array)")
	parallel := fs.Int("parallel", 1, "local: cells run at once (OpenBLAS gets the CPUs divided among them)")
	wait := fs.Bool("wait", false, "slurm: wait until every submitted cell has finished or failed")
	out := fs.String("out", "", "sweep directory (default runs/NAME, NAME from the sweep file)")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("name one sweep file")
	}
	if *executor != "local" && *executor != "slurm" {
		return fmt.Errorf("--executor %q: want local or slurm", *executor)
	}
	f, source, err := sweep.ReadFile(pos[0])
	if err != nil {
		return err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	plan, err := sweep.NewPlan(f, cwd)
	if err != nil {
		return err
	}
	dir := *out
	if dir == "" {
		dir = sweep.DefaultDir(f, pos[0])
	}
	todo, busy, err := sweep.Start(ctx, dir, plan, source)
	if err != nil {
		return err
	}
	for _, s := range busy {
		fmt.Printf("%s: left alone, %s (%s)\n", s.Cell, s.State, s.Note)
	}
	fmt.Printf("sweep %s: %d cells, %d done, %d to run, in %s\n", plan.Name, len(plan.Cells), len(plan.Cells)-len(todo)-len(busy), len(todo), dir)
	if len(todo) == 0 {
		fmt.Printf("report: certmix report %s\n", dir)
		return nil
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("sweep: the certmix binary: %w", err)
	}
	switch *executor {
	case "local":
		l := sweep.Local{Parallel: *parallel, Runner: sweep.Command{Path: bin, Env: sweep.BLASThreads(*parallel)}, Progress: os.Stdout}
		if err := l.Run(ctx, dir, todo); err != nil {
			return err
		}
		fmt.Printf("done; report: certmix report %s\n", dir)
		return nil
	case "slurm":
		sub, err := sweep.Slurm{Binary: bin}.Submit(ctx, dir, plan, todo)
		if err != nil {
			return err
		}
		fmt.Printf("submitted Slurm job %s: %d array tasks (script %s); certmix sweep status %s\n", sub.Job, len(sub.Cells), filepath.Join(sub.Dir, "job.sh"), dir)
		if !*wait {
			return nil
		}
		if err := sweep.Wait(ctx, dir, sub.Cells, sweep.Squeue{}, 2*time.Second, os.Stdout); err != nil {
			return err
		}
		fmt.Printf("done; report: certmix report %s\n", dir)
		return nil
	default:
		return fmt.Errorf("--executor %q: want local or slurm", *executor)
	}
}

func runSweepStatus(ctx context.Context, args []string) error {
	fs := newFlags("sweep status", "sweep status DIR", "  certmix sweep status runs/demo\n")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("name one sweep directory")
	}
	var q sweep.Queue
	if subs, err := sweep.Submissions(pos[0]); err == nil && len(subs) > 0 {
		q = sweep.Squeue{}
	}
	sts, err := sweep.Status(ctx, pos[0], q)
	if sts == nil && err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CELL\tSTATE\tLOG\tNOTE")
	for _, s := range sts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Cell, s.State, s.Log, s.Note)
	}
	tw.Flush()
	fmt.Println(sweep.Counts(sts))
	return err
}

func runSweepCell(ctx context.Context, args []string) error {
	fs := newFlags("sweep cell", "sweep cell DIR NAME", "  certmix sweep cell runs/demo gloro-xs_e3_f0.3_aux50k_s0\n")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return errors.New("name a sweep directory and a cell")
	}
	c, err := sweep.ReadCell(pos[0], pos[1])
	if err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("sweep cell: the certmix binary: %w", err)
	}
	start := time.Now()
	outcome, err := sweep.RunCell(ctx, pos[0], c, sweep.Command{Path: bin})
	if err != nil {
		return err
	}
	if outcome == sweep.Skipped {
		fmt.Printf("%s: done already\n", c.Name)
		return nil
	}
	fmt.Printf("%s: done in %s (log %s)\n", c.Name, time.Since(start).Round(time.Second), sweep.LogPath(pos[0], c.Name))
	return nil
}
