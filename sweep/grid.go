package sweep

import (
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Cell is one run of a sweep: certmix train, then certmix certify, in a
// directory of its own named by its parameters.
type Cell struct {
	Name   string `json:"name"`
	Label  string `json:"label,omitempty"`
	Preset string `json:"preset"`
	Epochs int    `json:"epochs"`
	// Fraction is the share of generated images per batch; Generated names
	// the amount (empty at fraction 0, the base model).
	Fraction float64 `json:"fraction"`
	Amount   string  `json:"generated,omitempty"`
	Seed     uint64  `json:"seed"`
	Schedule string  `json:"schedule,omitempty"`
	// Family names the cell's architecture family for the report's line of
	// gain against generalization gap (the grid's family:), or is empty. It
	// labels results and does not change the run, so it is kept in
	// plan.json (Plan.Families), not in cell.json.
	Family string `json:"-"`
	// The datasets, as URLs with local paths made absolute.
	Real         string `json:"real"`
	Test         string `json:"test"`
	GeneratedURL string `json:"generated_data,omitempty"`
	// Train and Certify are the commands' flags without the run's own
	// paths (--out, --resume, --checkpoint), which the sweep adds.
	Train   []string `json:"train"`
	Certify []string `json:"certify"`
	// Checkpoint is the checkpoint certified: last or best.
	Checkpoint string `json:"checkpoint"`
	// Trainer, when set, trains the cell in place of certmix train (Train
	// is then empty).
	Trainer *External `json:"trainer,omitempty"`
}

// External is a cell's external training command, as [Trainer] gives it
// and [RunCell] runs it (docs/external-trainers.md).
type External struct {
	Command []string `json:"command"`
	// Dir is the command's working directory: where certmix sweep ran.
	Dir  string `json:"dir"`
	Arch string `json:"arch,omitempty"`
	// Ranks are the processes (one per GPU); GPUs those Slurm asks for.
	Ranks int `json:"ranks"`
	GPUs  int `json:"gpus,omitempty"`
	// Batch is the images of a step over all ranks.
	Batch           int `json:"batch"`
	CropPad         int `json:"crop_pad"`
	CheckpointEvery int `json:"checkpoint_every,omitempty"`
	// Val real training images are held out of the cell's training
	// batches, chosen by sampler.Holdout with ValSeed: the sweep's
	// validation split, the same images certmix train --val holds out of
	// the sweep's other cells (0: none).
	Val     int    `json:"val,omitempty"`
	ValSeed uint64 `json:"val_seed,omitempty"`
}

func newExternal(t *Trainer, dir string) *External {
	pad := 4
	if t.CropPad != nil {
		pad = *t.CropPad
	}
	return &External{Command: slices.Clone(t.Command), Dir: dir, Arch: t.Arch, Ranks: t.ranks(), GPUs: t.GPUs,
		Batch: t.Batch, CropPad: pad, CheckpointEvery: t.CheckpointEvery}
}

// Row names the cell's row in the report's tables: its name without the
// fraction and the amount of generated data. The cells of one row share
// everything but the generated data, and its fraction-0 cell is their base.
func (c Cell) Row() string { return c.name(false) }

// Arch is the cell's architecture as the report's rows show it: the
// preset, after the grid's label if it has one.
func (c Cell) Arch() string {
	if c.Label != "" {
		return c.Label + " " + c.Preset
	}
	return c.Preset
}

// PresetFamily is the family a cell falls back to when its grid names
// none (sweep directories made before grids had family:): the preset up to
// its first '-', e.g. gloro for gloro-xs. It cannot tell sortnet-hinge
// from SortNet or two LOT schedules apart; sweep files name families.
func PresetFamily(preset string) string {
	f, _, _ := strings.Cut(preset, "-")
	return f
}

// name is label_preset_eE_fF_amount_schedule_sS with the empty parts left
// out; withData false leaves out the fraction and the amount.
func (c Cell) name(withData bool) string {
	parts := []string{}
	if c.Label != "" {
		parts = append(parts, c.Label)
	}
	parts = append(parts, c.Preset, "e"+strconv.Itoa(c.Epochs))
	if withData {
		parts = append(parts, "f"+formatFraction(c.Fraction))
		if c.Amount != "" {
			parts = append(parts, c.Amount)
		}
	}
	if c.Schedule != "" {
		parts = append(parts, c.Schedule)
	}
	parts = append(parts, "s"+strconv.FormatUint(c.Seed, 10))
	return strings.Join(parts, "_")
}

func formatFraction(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// Expand turns a sweep file into its cells, in the file's order (grid,
// preset, epochs, schedule, seed, fraction, amount). Relative local paths
// are made absolute from dir. Fraction 0 is one cell whatever the amounts;
// a cell given twice with the same settings is kept once, and two cells of
// one name with different settings are refused (give the grids labels).
func Expand(f *File, dir string) ([]Cell, error) {
	abs := func(u string) string {
		if u == "" || strings.Contains(u, "://") || filepath.IsAbs(u) {
			return u
		}
		return filepath.Join(dir, u)
	}
	checkpoint := f.Checkpoint
	if checkpoint == "" {
		checkpoint = "last"
	}
	var cells []Cell
	seen := map[string]int{}
	for gi, g := range f.Grids {
		train := maps.Clone(f.Train)
		if train == nil {
			train = Flags{}
		}
		maps.Copy(train, g.Train)
		if n := f.ValImages(); n > 0 {
			train["val"], train["val-seed"] = strconv.Itoa(n), strconv.FormatUint(f.ValSeed, 10)
		}
		trainer := f.Trainer
		if g.Trainer != nil {
			trainer = g.Trainer
		}
		amounts := []string(g.Generated)
		if len(amounts) == 0 && len(f.Data.Generated) == 1 {
			amounts = []string{f.Data.Generated[0].Name}
		}
		for _, preset := range g.Preset {
			for _, epochs := range g.Epochs {
				for _, schedule := range orOne(g.Schedule, "") {
					for _, seed := range orOne(g.Seed, 0) {
						for _, fraction := range g.Fraction {
							gens := amounts
							if fraction == 0 {
								gens = []string{""}
							}
							for _, gen := range gens {
								c := Cell{Label: g.Label, Preset: preset, Epochs: epochs, Fraction: fraction, Amount: gen,
									Seed: seed, Schedule: schedule, Family: g.Family, Real: abs(f.Data.Real), Test: abs(f.Data.Test), Checkpoint: checkpoint}
								if gen != "" {
									u, _ := f.Data.Generated.URL(gen)
									c.GeneratedURL = abs(u)
								}
								c.Name = c.name(true)
								if trainer != nil {
									c.Trainer = newExternal(trainer, dir)
									if n := f.ValImages(); n > 0 {
										c.Trainer.Val, c.Trainer.ValSeed = n, f.ValSeed
									}
								} else {
									c.Train = c.trainFlags(train)
								}
								c.Certify = c.certifyFlags(f.Certify)
								if i, ok := seen[c.Name]; ok {
									if !slices.Equal(cells[i].Train, c.Train) || !slices.Equal(cells[i].Certify, c.Certify) ||
										!reflect.DeepEqual(cells[i].Trainer, c.Trainer) {
										return nil, fmt.Errorf("%w: grids[%d]: cell %s is also in an earlier grid with other settings; give the grids labels", ErrFile, gi, c.Name)
									}
									continue
								}
								seen[c.Name] = len(cells)
								cells = append(cells, c)
							}
						}
					}
				}
			}
		}
	}
	return cells, nil
}

func orOne[T any](l List[T], def T) []T {
	if len(l) == 0 {
		return []T{def}
	}
	return l
}

// trainFlags are the cell's certmix train flags: the axes, then the fixed
// flags in name order.
func (c Cell) trainFlags(fixed Flags) []string {
	a := []string{"--real", c.Real}
	if c.Amount != "" {
		a = append(a, "--generated", c.GeneratedURL)
	}
	a = append(a, "--fraction", formatFraction(c.Fraction), "--preset", c.Preset, "--epochs", strconv.Itoa(c.Epochs),
		"--seed", strconv.FormatUint(c.Seed, 10))
	if c.Schedule != "" {
		a = append(a, "--schedule", c.Schedule)
	}
	a = append(a, "--test", c.Test)
	return append(a, sortedFlags(fixed)...)
}

// certifyFlags certify on the test set, with the real training set for the
// generalization gap.
func (c Cell) certifyFlags(fixed Flags) []string {
	return append([]string{"--test", c.Test, "--train", c.Real}, sortedFlags(fixed)...)
}

func sortedFlags(f Flags) []string {
	var a []string
	for _, k := range slices.Sorted(maps.Keys(f)) {
		a = append(a, "--"+k, f[k])
	}
	return a
}
