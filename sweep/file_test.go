package sweep

import (
	"errors"
	"strings"
	"testing"
)

const demoFile = `
name: demo
data:
  real: ${DATA:-out}/real
  test: ${DATA:-out}/test
  generated:
    1M: s3://bucket/gen-1m
    5M: ${DATA:-out}/gen-5m
train: {depth: 2, width: 16, lr: 1e-3}
certify: {eps: 0.1411764705882353}
grids:
  - preset: [gloro-xs, gloro-s]
    family: gloro
    fraction: [0, 0.7]
    generated: [1M, 5M]
    epochs: [800, 1600]
  - label: L2W8
    preset: gloro-xs
    fraction: 0.7
    generated: 5M
    epochs: 3
    seed: [1, 2]
    schedule: cosine
    train: {width: 8}
slurm: {cpus_per_task: 2, mem: 4G, time: "01:00:00", gpus: 1, max_running: 3, extra: [--account=lab]}
`

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestParse(t *testing.T) {
	f, expanded, err := Parse([]byte(demoFile), env(map[string]string{"DATA": "/data"}))
	if err != nil {
		t.Fatal(err)
	}
	if f.Data.Real != "/data/real" || f.Data.Test != "/data/test" || !strings.Contains(string(expanded), "/data/gen-5m") {
		t.Errorf("variables not expanded: %+v", f.Data)
	}
	if len(f.Data.Generated) != 2 || f.Data.Generated[0] != (NamedURL{"1M", "s3://bucket/gen-1m"}) || f.Data.Generated[1].Name != "5M" {
		t.Errorf("generated amounts not in file order: %+v", f.Data.Generated)
	}
	if f.Train["lr"] != "1e-3" || f.Train["depth"] != "2" {
		t.Errorf("train flags not kept as written: %v", f.Train)
	}
	g := f.Grids[1]
	if len(g.Preset) != 1 || g.Preset[0] != "gloro-xs" || len(g.Fraction) != 1 || g.Fraction[0] != 0.7 || len(g.Seed) != 2 || g.Schedule[0] != "cosine" {
		t.Errorf("scalars as one-value lists: %+v", g)
	}
	want := Resources{CPUsPerTask: 2, Mem: "4G", Time: "01:00:00", GPUs: 1, MaxRunning: 3, Extra: []string{"--account=lab"}}
	if f.Slurm.Mem != want.Mem || f.Slurm.CPUsPerTask != 2 || f.Slurm.GPUs != 1 || f.Slurm.MaxRunning != 3 || f.Slurm.Extra[0] != "--account=lab" {
		t.Errorf("slurm = %+v, want %+v", f.Slurm, want)
	}
	// Defaults when the variable is unset.
	f, _, err = Parse([]byte(demoFile), env(nil))
	if err != nil || f.Data.Real != "out/real" {
		t.Errorf("default of ${DATA:-out}: %v, %v", f.Data.Real, err)
	}
}

func TestParseRefusals(t *testing.T) {
	base := "data: {real: r, test: t, generated: {g: gen}}\n"
	for _, tc := range []struct {
		name, file, want string
	}{
		{"unknown key", base + "grids: [{preset: p, fraction: 0, epochs: 1, epoch: 2}]", "field epoch not found"},
		{"no data", "grids: [{preset: p, fraction: 0, epochs: 1}]", "data.real and data.test"},
		{"no grids", base, "no grids"},
		{"fraction above 1", base + "grids: [{preset: p, fraction: 1.5, epochs: 1}]", "fraction 1.5"},
		{"no epochs", base + "grids: [{preset: p, fraction: 0}]", "required"},
		{"zero epochs", base + "grids: [{preset: p, fraction: 0, epochs: 0}]", "epochs 0"},
		{"unknown amount", base + "grids: [{preset: p, fraction: 0.5, generated: 5M, epochs: 1}]", `generated "5M"`},
		{"flag the sweep sets", base + "train: {fraction: 0.5}\ngrids: [{preset: p, fraction: 0, epochs: 1}]", "train.fraction is set by the fraction axis"},
		{"flag with dashes", base + "train: {--depth: 2}\ngrids: [{preset: p, fraction: 0, epochs: 1}]", "without dashes"},
		{"certify flag the sweep sets", base + "certify: {checkpoint: x}\ngrids: [{preset: p, fraction: 0, epochs: 1}]", "certify.checkpoint"},
		{"negative val", base + "val: -1\ngrids: [{preset: p, fraction: 0, epochs: 1}]", "val -1"},
		{"val as a train flag", base + "train: {val: 5}\ngrids: [{preset: p, fraction: 0, epochs: 1}]", "train.val is set by val:"},
		{"bad family name", base + "grids: [{preset: p, family: a b, fraction: 0, epochs: 1}]", `family "a b"`},
		{"bad preset name", base + "grids: [{preset: a/b, fraction: 0, epochs: 1}]", `preset "a/b"`},
		{"bad checkpoint", base + "checkpoint: first\ngrids: [{preset: p, fraction: 0, epochs: 1}]", "checkpoint \"first\""},
		{"unset variable", "data: {real: ${NOPE}, test: t}\ngrids: [{preset: p, fraction: 0, epochs: 1}]", "${NOPE} is not set"},
		{"amount needed", "data: {real: r, test: t, generated: {a: x, b: y}}\ngrids: [{preset: p, fraction: 0.5, epochs: 1}]", "needs generated data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tc.file), env(nil))
			if err == nil || !errors.Is(err, ErrFile) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrFile containing %q", err, tc.want)
			}
		})
	}
}
