package sweep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"certmix/rundir"
	"certmix/sampler"
	"certmix/sampler/serve"
	"certmix/shards"
)

// TrainerVars are the environment an external trainer runs with (one
// process per rank), and the names a sweep file's trainer command may use
// as ${NAME}: they are left alone when the file is read and take the
// cell's and the rank's values when the command runs.
//
//	CERTMIX_CELL              the cell's name
//	CERTMIX_SOCKET            the training batches' server: unix:PATH (the cell's data less the validation split, fraction, seed, per-rank batch, world size)
//	CERTMIX_TEST_SOCKET       the test set's server: each batch is every test image once, unaugmented
//	CERTMIX_RANK              this process's rank, 0..CERTMIX_WORLD_SIZE-1 (also RANK, LOCAL_RANK, CERTMIX_LOCAL_RANK)
//	CERTMIX_WORLD_SIZE        ranks (also WORLD_SIZE; MASTER_ADDR and MASTER_PORT for torch.distributed)
//	CERTMIX_OUT               the cell's train/ directory: everything the trainer writes goes here
//	CERTMIX_STATE_DICT        where to write the final state dict (np.savez, the authors' names): CERTMIX_OUT/state_dict.npz
//	CERTMIX_CHECKPOINT        where to keep the resumable checkpoint: CERTMIX_OUT/checkpoint.pt
//	CERTMIX_SAMPLER_STATE     where this rank keeps its sampler state: CERTMIX_OUT/sampler-rankR.json
//	CERTMIX_RESUME_CHECKPOINT CERTMIX_CHECKPOINT when it exists at the start of an attempt, else empty
//	CERTMIX_RESUME_SAMPLER    CERTMIX_SAMPLER_STATE when it exists at the start of an attempt, else empty
//	CERTMIX_EPOCHS, CERTMIX_SEED, CERTMIX_PRESET, CERTMIX_FRACTION   the cell's axes
//	CERTMIX_BATCH             images per step over all ranks; CERTMIX_RANK_BATCH per rank
//	CERTMIX_STEPS_PER_EPOCH   steps of an epoch (the real images trained on, less the validation split, over CERTMIX_BATCH)
//	CERTMIX_CLASSES           classes of the real set
//	CERTMIX_CHECKPOINT_EVERY  steps between checkpoints, when the sweep file sets it
var TrainerVars = []string{"CERTMIX_CELL", "CERTMIX_SOCKET", "CERTMIX_TEST_SOCKET", "CERTMIX_RANK", "CERTMIX_LOCAL_RANK",
	"CERTMIX_WORLD_SIZE", "CERTMIX_OUT", "CERTMIX_STATE_DICT", "CERTMIX_CHECKPOINT", "CERTMIX_SAMPLER_STATE",
	"CERTMIX_RESUME_CHECKPOINT", "CERTMIX_RESUME_SAMPLER", "CERTMIX_EPOCHS", "CERTMIX_SEED", "CERTMIX_PRESET",
	"CERTMIX_FRACTION", "CERTMIX_BATCH", "CERTMIX_RANK_BATCH", "CERTMIX_STEPS_PER_EPOCH", "CERTMIX_CLASSES",
	"CERTMIX_CHECKPOINT_EVERY"}

// The files of an external trainer's cell in its train/ directory.
const (
	StateDictName  = "state_dict.npz"
	checkpointName = "checkpoint.pt"
	trainedMarker  = "trained" // written when the trainer exited 0 with its state dict
)

// trainExternal runs the cell's external trainer into cd/train (unless an
// earlier attempt finished it) and imports its state dict into
// train/last.safetensors with certmix import through r. The sampler
// servers live exactly as long as this call: they start before the ranks
// and stop when the ranks have ended, however they end. A cell with a
// validation split records it in train/val.json first, as certmix train
// --val does, and its training server never serves those images.
func trainExternal(ctx context.Context, cd string, c Cell, r Runner, log io.Writer) error {
	out := filepath.Join(cd, "train")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	stateDict := filepath.Join(out, StateDictName)
	if _, err := os.Stat(filepath.Join(out, trainedMarker)); err != nil {
		// A state dict without the marker is from an attempt that did not
		// end well: never import it.
		os.Remove(stateDict)
		if err := recordVal(ctx, out, c); err != nil {
			return err
		}
		if err := runTrainer(ctx, cd, c, log); err != nil {
			return err
		}
		if _, err := os.Stat(stateDict); err != nil {
			return fmt.Errorf("trainer exited 0 but wrote no state dict (%s): %w", stateDict, err)
		}
		if err := writeJSONMarker(out, trainedMarker, finished{Finished: time.Now().UTC()}); err != nil {
			return err
		}
	}
	imp := []string{"import", "--npz", stateDict, "--out", filepath.Join(out, "last.safetensors")}
	if c.Trainer.Arch != "" {
		imp = append(imp, "--arch", c.Trainer.Arch)
	}
	return step(ctx, r, imp, log)
}

// recordVal writes the cell's validation split to out/val.json (nothing
// when it has none). An earlier attempt's must hold out the same images:
// its trainer's checkpoint and sampler state were made without them.
func recordVal(ctx context.Context, out string, c Cell) error {
	t := c.Trainer
	if t.Val == 0 {
		return nil
	}
	real, err := shards.Open(ctx, c.Real, shards.S3ConfigFromEnv())
	if err != nil {
		return fmt.Errorf("real data: %w", err)
	}
	v, _, err := sampler.HoldoutSplit(ctx, real, c.Real, t.Val, t.ValSeed)
	if err != nil {
		return fmt.Errorf("validation split (val: %d, val_seed: %d): %w", t.Val, t.ValSeed, err)
	}
	path := filepath.Join(out, rundir.ValFile)
	if _, err := os.Stat(path); err == nil {
		old, err := rundir.ReadVal(out)
		if err != nil {
			return err
		}
		if !old.Same(v) {
			return fmt.Errorf("%s holds out other images (seed %d, %d rows of dataset %s) than the cell's val: %d, val_seed: %d",
				path, old.Seed, len(old.Rows), old.Manifest, t.Val, t.ValSeed)
		}
		return nil
	}
	return rundir.WriteVal(out, v)
}

// servers are a cell's two sampler servers.
type servers struct {
	train, test   string // socket paths
	stepsPerEpoch int64
	classes       int
	cleanup       func()
}

// serverConfigs are the sampler configurations of the cell's training
// batches (as certmix train draws them) and of its test set (one batch of
// every test image, unaugmented).
func serverConfigs(ctx context.Context, c Cell) (train, test sampler.Config, classes int, err error) {
	s3 := shards.S3ConfigFromEnv()
	real, err := shards.Open(ctx, c.Real, s3)
	if err != nil {
		return train, test, 0, fmt.Errorf("real data: %w", err)
	}
	sources := []sampler.Source{{Dataset: real, Fraction: 1}}
	if t := c.Trainer; t.Val > 0 {
		// The rows recordVal wrote to val.json: they depend on the real
		// set and the seed alone.
		if sources[0].Exclude, err = sampler.Holdout(real.Manifest, t.Val, t.ValSeed); err != nil {
			return train, test, 0, fmt.Errorf("validation split of %s (val: %d, val_seed: %d): %w", c.Real, t.Val, t.ValSeed, err)
		}
	}
	if c.Fraction > 0 {
		gen, err := shards.Open(ctx, c.GeneratedURL, s3)
		if err != nil {
			return train, test, 0, fmt.Errorf("generated data: %w", err)
		}
		sources[0].Fraction = 1 - c.Fraction
		sources = append(sources, sampler.Source{Dataset: gen, Fraction: c.Fraction, Replacement: true})
	}
	m := real.Manifest
	pad := c.Trainer.CropPad
	if m.Height < 32 {
		pad = min(pad, 2) // as certmix train: such images are padded to 32 at the centre by the model's input
	}
	train = sampler.Config{Sources: sources, Batch: c.Trainer.Batch / c.Trainer.Ranks, Seed: c.Seed, WorldSize: c.Trainer.Ranks,
		Augment: sampler.Augment{Size: m.Height, Pad: pad, Flip: true}, S3: s3}
	ts, err := shards.Open(ctx, c.Test, s3)
	if err != nil {
		return train, test, 0, fmt.Errorf("test data: %w", err)
	}
	if ts.Manifest.Rows < 1 {
		return train, test, 0, fmt.Errorf("test data %s holds no image", c.Test)
	}
	test = sampler.Config{Sources: []sampler.Source{{Dataset: ts, Fraction: 1}}, Batch: int(ts.Manifest.Rows), Prefetch: 1, S3: s3}
	return train, test, m.Classes, nil
}

// startServers starts the cell's servers on Unix sockets in dir (or, when
// that path is too long for a socket address, in a temporary directory),
// serving until ctx ends; cleanup stops them, waits for them and removes
// the sockets.
func startServers(ctx context.Context, c Cell, dir string, log io.Writer) (*servers, error) {
	trainCfg, testCfg, classes, err := serverConfigs(ctx, c)
	if err != nil {
		return nil, err
	}
	probe, err := sampler.New(ctx, trainCfg, nil) // refuse a bad configuration before any trainer starts
	if err != nil {
		return nil, err
	}
	spe := probe.StepsPerEpoch()
	probe.Close()

	sockDir := dir
	var tmp string
	if len(filepath.Join(dir, "sampler-test.sock")) > 100 { // sun_path holds 108 bytes
		if tmp, err = os.MkdirTemp("", "certmix-sock"); err != nil {
			return nil, err
		}
		sockDir = tmp
	}
	s := &servers{train: filepath.Join(sockDir, "sampler.sock"), test: filepath.Join(sockDir, "sampler-test.sock"),
		stepsPerEpoch: spe, classes: classes}
	var mu sync.Mutex
	logf := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(log, "== %s sampler server: %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, a...))
	}
	sctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(sctx)
	var listeners []net.Listener
	fail := func(err error) (*servers, error) {
		for _, l := range listeners {
			l.Close()
		}
		cancel()
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return nil, err
	}
	for _, srv := range []struct {
		path string
		cfg  sampler.Config
	}{{s.train, trainCfg}, {s.test, testCfg}} {
		os.Remove(srv.path) // left by a killed attempt
		l, err := net.Listen("unix", srv.path)
		if err != nil {
			return fail(fmt.Errorf("sampler server: %w", err))
		}
		listeners = append(listeners, l)
		server := serve.New(srv.cfg, serve.Options{Logf: logf})
		g.Go(func() error { return server.Serve(gctx, l) })
	}
	logf("serving %s on %s (%d steps per epoch, %d rank(s)) and the test set %s on %s", c.Real, s.train, spe, trainCfg.WorldSize, c.Test, s.test)
	s.cleanup = func() {
		cancel()
		if err := g.Wait(); err != nil {
			logf("%v", err)
		}
		os.Remove(s.train)
		os.Remove(s.test)
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		logf("stopped")
	}
	return s, nil
}

// runTrainer starts the cell's servers, runs its ranks and stops the
// servers. A rank that fails stops the others (SIGTERM, SIGKILL 30 s
// later), and the first failure is returned.
func runTrainer(ctx context.Context, cd string, c Cell, log io.Writer) error {
	t := c.Trainer
	out := filepath.Join(cd, "train")
	srv, err := startServers(ctx, c, out, log)
	if err != nil {
		return err
	}
	defer srv.cleanup()
	port, err := freePort()
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	lw := &lockedWriter{w: log}
	for rank := range t.Ranks {
		env := trainerEnv(c, out, srv, rank, port)
		argv := make([]string, len(t.Command))
		for i, a := range t.Command {
			argv[i] = os.Expand(a, func(k string) string {
				if v, ok := env[k]; ok {
					return v
				}
				return "${" + k + "}"
			})
		}
		fmt.Fprintf(lw, "== %s rank %d of %d: %q in %s (resume checkpoint %q)\n", time.Now().UTC().Format(time.RFC3339),
			rank, t.Ranks, argv, t.Dir, env["CERTMIX_RESUME_CHECKPOINT"])
		g.Go(func() error {
			if err := runProcess(gctx, argv, t.Dir, env, lw); err != nil {
				return fmt.Errorf("trainer rank %d: %w", rank, err)
			}
			return nil
		})
	}
	err = g.Wait()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("trainer: %w", ctx.Err())
	}
	return err
}

// trainerEnv is the environment of rank's process (see [TrainerVars]).
func trainerEnv(c Cell, out string, s *servers, rank, port int) map[string]string {
	t := c.Trainer
	ckpt := filepath.Join(out, checkpointName)
	samplerState := filepath.Join(out, "sampler-rank"+strconv.Itoa(rank)+".json")
	exists := func(p string) string {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		return ""
	}
	env := map[string]string{
		"CERTMIX_CELL": c.Name, "CERTMIX_SOCKET": "unix:" + s.train, "CERTMIX_TEST_SOCKET": "unix:" + s.test,
		"CERTMIX_RANK": strconv.Itoa(rank), "CERTMIX_LOCAL_RANK": strconv.Itoa(rank), "CERTMIX_WORLD_SIZE": strconv.Itoa(t.Ranks),
		"RANK": strconv.Itoa(rank), "LOCAL_RANK": strconv.Itoa(rank), "WORLD_SIZE": strconv.Itoa(t.Ranks),
		"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": strconv.Itoa(port),
		"CERTMIX_OUT": out, "CERTMIX_STATE_DICT": filepath.Join(out, StateDictName),
		"CERTMIX_CHECKPOINT": ckpt, "CERTMIX_SAMPLER_STATE": samplerState,
		"CERTMIX_RESUME_CHECKPOINT": exists(ckpt), "CERTMIX_RESUME_SAMPLER": exists(samplerState),
		"CERTMIX_EPOCHS": strconv.Itoa(c.Epochs), "CERTMIX_SEED": strconv.FormatUint(c.Seed, 10),
		"CERTMIX_PRESET": c.Preset, "CERTMIX_FRACTION": formatFraction(c.Fraction),
		"CERTMIX_BATCH": strconv.Itoa(t.Batch), "CERTMIX_RANK_BATCH": strconv.Itoa(t.Batch / t.Ranks),
		"CERTMIX_STEPS_PER_EPOCH": strconv.FormatInt(s.stepsPerEpoch, 10), "CERTMIX_CLASSES": strconv.Itoa(s.classes),
	}
	if t.CheckpointEvery > 0 {
		env["CERTMIX_CHECKPOINT_EVERY"] = strconv.Itoa(t.CheckpointEvery)
	}
	if _, set := os.LookupEnv("OMP_NUM_THREADS"); !set {
		env["OMP_NUM_THREADS"] = strconv.Itoa(max(runtime.NumCPU()/t.Ranks, 1))
	}
	return env
}

// runProcess runs argv in dir with env added to this process's, its output
// into log. Like [Command.Run]: SIGTERM on cancellation (SIGKILL 30 s
// later), and the child dies with the thread that started it.
func runProcess(ctx context.Context, argv []string, dir string, env map[string]string, log io.Writer) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	setParentDeath(cmd)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && ctx.Err() == nil {
			return fmt.Errorf("%s: %w (its output is in the cell's log)", argv[0], err)
		}
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	return nil
}

// freePort returns a TCP port of the loopback that is free now (for
// torch.distributed's rendezvous between the ranks).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("a port for the ranks: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedWriter serialises the writes of several processes' output.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
