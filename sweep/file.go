package sweep

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrFile marks a sweep file that cannot be run: a YAML error, an unknown
// key, a missing or out-of-range value, cells whose names collide.
var ErrFile = errors.New("sweep file")

// File is a sweep file: the data every cell uses, the fixed settings of
// certmix train and certmix certify, one or more grids whose axes multiply
// into cells, and the resources of a Slurm array task.
//
//	name: demo
//	data:
//	  real: out/fmnist-real10k
//	  test: out/fashion-mnist-test
//	  generated: {aux50k: out/fmnist-aux50k}   # amount name -> dataset, in column order
//	train: {depth: 2, width: 16, batch: 128}  # flags of certmix train, the same for every cell
//	grids:
//	  - preset: gloro-xs
//	    fraction: [0, 0.3, 0.7]
//	    epochs: 3
//	slurm: {cpus_per_task: 2, mem: 4G, time: "01:00:00"}
type File struct {
	// Name names the sweep (its default output directory is runs/NAME).
	Name string `yaml:"name"`
	Data Data   `yaml:"data"`
	// Train and Certify are flags passed to every cell's certmix train and
	// certmix certify, as --KEY VALUE; a grid's Train is merged over Train.
	Train   Flags `yaml:"train"`
	Certify Flags `yaml:"certify"`
	// Checkpoint is the checkpoint certified: "last" (default) or "best"
	// (the epoch of best certified accuracy on the training run's
	// evaluation images).
	Checkpoint string `yaml:"checkpoint"`
	// Val is the number of real training images every cell holds out of
	// training as its validation split (certmix train --val), which
	// chooses best.safetensors instead of test images; the split depends
	// on the real set and val_seed alone, so every cell holds out the same
	// images. Cells of an external trainer hold them out of their training
	// server (and choose no best checkpoint). Absent: [DefaultVal]; 0: none.
	Val     *int   `yaml:"val"`
	ValSeed uint64 `yaml:"val_seed"`
	// Trainer, when set, trains every cell with this command instead of
	// certmix train (a grid's Trainer replaces it for that grid's cells).
	Trainer *Trainer  `yaml:"trainer"`
	Grids   []Grid    `yaml:"grids"`
	Slurm   Resources `yaml:"slurm"`
}

// DefaultVal is the validation split of a sweep file that names none:
// 1,000 images, 10% of the study's 10,000 real training images.
const DefaultVal = 1000

// ValImages is the validation split the file's cells hold out.
func (f *File) ValImages() int {
	if f.Val == nil {
		return DefaultVal
	}
	return *f.Val
}

// Trainer is an external training command (a PyTorch script, on GPUs)
// that trains a cell in place of certmix train, fed by the sampler server
// the cell runs, with the environment of [TrainerEnv]; certmix imports the
// state dict it writes and certifies it as its own cells
// (docs/external-trainers.md).
//
//	trainer: {command: [python3, clients/python/train_gloro.py, --epochs, "${CERTMIX_EPOCHS}"], arch: gloro, gpus: 2, batch: 256}
type Trainer struct {
	// Command is the program and its arguments, run without a shell from
	// the directory certmix sweep ran in. ${CERTMIX_...} in it are the
	// cell's (and rank's) values of [TrainerEnv].
	Command []string `yaml:"command"`
	// Arch is certmix import --arch (empty: detected from the state dict).
	Arch string `yaml:"arch"`
	// GPUs is the number of ranks, each a process with its own stream of
	// batches (and, on Slurm, the GPUs each array task asks for); 0 is one
	// rank and no GPU asked for.
	GPUs int `yaml:"gpus"`
	// Batch is the images of a step over all ranks (required; each rank
	// gets Batch/ranks).
	Batch int `yaml:"batch"`
	// CropPad is the padding of the random crop (default 4, at most 2 for
	// images smaller than 32x32, as certmix train's GloroNet and LOT).
	CropPad *int `yaml:"crop_pad"`
	// CheckpointEvery is CERTMIX_CHECKPOINT_EVERY, the steps between the
	// trainer's checkpoints (0: the trainer's default, every epoch).
	CheckpointEvery int `yaml:"checkpoint_every"`
}

// Data names the datasets of a sweep by URL (local path or s3://).
// Relative local paths are taken from the directory certmix sweep runs in.
type Data struct {
	Real string `yaml:"real"`
	Test string `yaml:"test"`
	// Generated maps an amount's name (1M, 5M, 10M) to its dataset, in the
	// order of the report's columns.
	Generated Named `yaml:"generated"`
}

// Grid is one block of axes: every combination of its values is a cell.
// A value may be given as a list or as a single scalar.
type Grid struct {
	// Label, when set, starts the cells' names and their rows in the
	// report; it tells apart two grids of one preset with other Train.
	Label  string       `yaml:"label"`
	Preset List[string] `yaml:"preset"`
	// Family names the architecture family of the grid's cells: the
	// report fits one line of gain against generalization gap per family
	// (the paper's Fig. 3: one per architecture, sizes pooled). Give
	// presets that are different architectures (sortnet-hinge and
	// linfdist, say) grids of their own. Without it the report falls back
	// to the preset up to its first '-' and says so.
	Family string `yaml:"family"`
	// Fraction is the share of generated images in every batch; 0 is the
	// base model without generated data, the same cell for every amount.
	Fraction List[float64] `yaml:"fraction"`
	// Generated lists amounts by their name in Data.Generated (default: the
	// only one there is).
	Generated List[string] `yaml:"generated"`
	Epochs    List[int]    `yaml:"epochs"`
	Seed      List[uint64] `yaml:"seed"`
	// Schedule is passed to certmix train --schedule (the learning-rate
	// schedule); empty means the preset's and no flag.
	Schedule List[string] `yaml:"schedule"`
	Train    Flags        `yaml:"train"`
	// Trainer replaces the file's Trainer for this grid's cells.
	Trainer *Trainer `yaml:"trainer"`
}

// Resources are the sbatch resources of each array task (one task per
// cell).
type Resources struct {
	Partition   string `yaml:"partition"`
	CPUsPerTask int    `yaml:"cpus_per_task"`
	Mem         string `yaml:"mem"`  // --mem, e.g. 4G
	Time        string `yaml:"time"` // --time, e.g. 02:00:00
	GPUs        int    `yaml:"gpus"` // --gres=gpu:N
	// MaxRunning caps the array tasks running at once (--array=...%N).
	MaxRunning int `yaml:"max_running"`
	// Extra are more sbatch options, e.g. ["--account=lab", "--qos=long"].
	Extra []string `yaml:"extra"`
}

// List is a YAML list that may also be written as one scalar.
type List[T any] []T

// UnmarshalYAML accepts a sequence or a single scalar.
func (l *List[T]) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		var v []T
		if err := n.Decode(&v); err != nil {
			return err
		}
		*l = v
		return nil
	}
	var v T
	if err := n.Decode(&v); err != nil {
		return err
	}
	*l = List[T]{v}
	return nil
}

// Flags are command-line flags as written in the sweep file: the value's
// text is passed as it is (1e-3 stays 1e-3).
type Flags map[string]string

// UnmarshalYAML takes a mapping of scalars.
func (f *Flags) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping of flag names to values", n.Line)
	}
	*f = Flags{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: flag %q: want a scalar value", v.Line, k.Value)
		}
		(*f)[k.Value] = v.Value
	}
	return nil
}

// NamedURL is one entry of [Named].
type NamedURL struct{ Name, URL string }

// Named is a YAML mapping of names to URLs that keeps the file's order.
type Named []NamedURL

// UnmarshalYAML takes a mapping of names to strings.
func (d *Named) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping of names to datasets", n.Line)
	}
	*d = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		*d = append(*d, NamedURL{n.Content[i].Value, n.Content[i+1].Value})
	}
	return nil
}

// URL returns the dataset of name.
func (d Named) URL(name string) (string, bool) {
	for _, e := range d {
		if e.Name == name {
			return e.URL, true
		}
	}
	return "", false
}

// ReadFile reads and checks a sweep file; see [Parse].
func ReadFile(path string) (*File, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read sweep file: %w", err)
	}
	f, expanded, err := Parse(data, os.LookupEnv)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, expanded, nil
}

// Parse expands ${NAME} and ${NAME:-default} from env (so one file serves
// several data directories; $$ is a dollar sign), decodes the YAML with
// unknown keys refused, and checks it. It returns the file and the expanded
// text, which is what a sweep directory keeps.
func Parse(data []byte, env func(string) (string, bool)) (*File, []byte, error) {
	var missing []string
	expanded := os.Expand(string(data), func(s string) string {
		if s == "$" {
			return "$"
		}
		name, def, hasDef := strings.Cut(s, ":-")
		if slices.Contains(TrainerVars, name) {
			return "${" + s + "}" // the cell's, set when its trainer runs
		}
		if v, ok := env(name); ok && (v != "" || !hasDef) {
			return v
		}
		if !hasDef {
			missing = append(missing, name)
		}
		return def
	})
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("%w: ${%s} is not set and has no default (write ${%s:-value})", ErrFile, missing[0], missing[0])
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader([]byte(expanded)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%w: %v", ErrFile, err)
	}
	if err := f.check(); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrFile, err)
	}
	return &f, []byte(expanded), nil
}

// word is what names and labels may hold: they become directory names.
var word = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+-]*$`)

// owned are the train flags that the axes and the sweep set.
var owned = map[string]string{"real": "data.real", "generated": "the generated axis", "fraction": "the fraction axis",
	"preset": "the preset axis", "epochs": "the epochs axis", "seed": "the seed axis", "schedule": "the schedule axis",
	"resume": "the sweep", "out": "the sweep", "test": "data.test", "val": "val:", "val-seed": "val_seed:"}

func (f *File) check() error {
	if f.Name != "" && !word.MatchString(f.Name) {
		return fmt.Errorf("name %q: use letters, digits, '.', '+' and '-'", f.Name)
	}
	if f.Data.Real == "" || f.Data.Test == "" {
		return errors.New("data.real and data.test are required")
	}
	for _, g := range f.Data.Generated {
		if !word.MatchString(g.Name) || g.URL == "" {
			return fmt.Errorf("data.generated: %q: want a name of letters, digits, '.', '+' and '-' and a dataset", g.Name)
		}
	}
	if f.Val != nil && *f.Val < 0 {
		return fmt.Errorf("val %d: want a number of images, 0 for none", *f.Val)
	}
	switch f.Checkpoint {
	case "", "last", "best":
	default:
		return fmt.Errorf("checkpoint %q: want last or best", f.Checkpoint)
	}
	if len(f.Grids) == 0 {
		return errors.New("no grids: add at least one under grids:")
	}
	if err := checkFlags("train", f.Train); err != nil {
		return err
	}
	for k := range f.Certify {
		if k == "checkpoint" || k == "test" || k == "out" || k == "train" {
			return fmt.Errorf("certify.%s is set by the sweep", k)
		}
	}
	if f.Trainer != nil {
		if err := f.Trainer.check(f); err != nil {
			return fmt.Errorf("trainer: %w", err)
		}
	}
	for i, g := range f.Grids {
		if err := g.check(f); err != nil {
			return fmt.Errorf("grids[%d]: %w", i, err)
		}
	}
	if f.Slurm.CPUsPerTask < 0 || f.Slurm.GPUs < 0 || f.Slurm.MaxRunning < 0 {
		return errors.New("slurm: cpus_per_task, gpus and max_running must not be negative")
	}
	return nil
}

func checkFlags(where string, flags Flags) error {
	for k := range flags {
		if by, ok := owned[k]; ok {
			return fmt.Errorf("%s.%s is set by %s", where, k, by)
		}
		if strings.HasPrefix(k, "-") || k == "" {
			return fmt.Errorf("%s: flag %q: write it without dashes", where, k)
		}
	}
	return nil
}

func (g Grid) check(f *File) error {
	if g.Label != "" && !word.MatchString(g.Label) {
		return fmt.Errorf("label %q: use letters, digits, '.', '+' and '-'", g.Label)
	}
	if g.Family != "" && !word.MatchString(g.Family) {
		return fmt.Errorf("family %q: use letters, digits, '.', '+' and '-'", g.Family)
	}
	if len(g.Preset) == 0 || len(g.Epochs) == 0 || len(g.Fraction) == 0 {
		return errors.New("preset, fraction and epochs are required")
	}
	for _, p := range g.Preset {
		if !word.MatchString(p) {
			return fmt.Errorf("preset %q: use letters, digits, '.', '+' and '-'", p)
		}
	}
	for _, s := range g.Schedule {
		if !word.MatchString(s) {
			return fmt.Errorf("schedule %q: use letters, digits, '.', '+' and '-'", s)
		}
	}
	for _, e := range g.Epochs {
		if e <= 0 {
			return fmt.Errorf("epochs %d: want at least 1", e)
		}
	}
	withGenerated := false
	for _, fr := range g.Fraction {
		if !(fr >= 0 && fr <= 1) {
			return fmt.Errorf("fraction %v: want 0 to 1", fr)
		}
		withGenerated = withGenerated || fr > 0
	}
	for _, name := range g.Generated {
		if _, ok := f.Data.Generated.URL(name); !ok {
			return fmt.Errorf("generated %q is not under data.generated", name)
		}
	}
	if withGenerated && len(g.Generated) == 0 && len(f.Data.Generated) != 1 {
		return fmt.Errorf("a fraction above 0 needs generated data: name the amounts (generated: [...]) of the %d under data.generated", len(f.Data.Generated))
	}
	if g.Trainer != nil {
		if err := g.Trainer.check(f); err != nil {
			return fmt.Errorf("trainer: %w", err)
		}
	}
	return checkFlags("train", g.Train)
}

func (t *Trainer) check(f *File) error {
	switch {
	case len(t.Command) == 0 || t.Command[0] == "":
		return errors.New("command: name the program and its arguments, e.g. [python3, train.py]")
	case t.GPUs < 0:
		return fmt.Errorf("gpus %d: want 0 (one rank on the CPU) or more", t.GPUs)
	case t.Batch < 1:
		return errors.New("batch: the images of a step over all ranks are required")
	case t.Batch%t.ranks() != 0:
		return fmt.Errorf("batch %d is not divisible by the %d ranks", t.Batch, t.ranks())
	case t.CropPad != nil && *t.CropPad < 0:
		return fmt.Errorf("crop_pad %d: want 0 (no crop) or more", *t.CropPad)
	case t.CheckpointEvery < 0:
		return fmt.Errorf("checkpoint_every %d: want 0 (every epoch) or more", t.CheckpointEvery)
	case f.Checkpoint == "best":
		return errors.New("checkpoint: best: an external trainer's cell certifies the state dict it writes at the end; use last")
	}
	return nil
}

// ranks is the number of trainer processes.
func (t *Trainer) ranks() int { return max(t.GPUs, 1) }
