package sweep

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	f, _, err := Parse([]byte(demoFile), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	cells, err := Expand(f, "/work")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cells {
		names = append(names, c.Name)
	}
	// Grid 1: 2 presets x 2 epochs x (fraction 0 once + fraction 0.7 x 2
	// amounts) = 12; grid 2: 2 seeds.
	want := []string{
		"gloro-xs_e800_f0_s0", "gloro-xs_e800_f0.7_1M_s0", "gloro-xs_e800_f0.7_5M_s0",
		"gloro-xs_e1600_f0_s0", "gloro-xs_e1600_f0.7_1M_s0", "gloro-xs_e1600_f0.7_5M_s0",
		"gloro-s_e800_f0_s0", "gloro-s_e800_f0.7_1M_s0", "gloro-s_e800_f0.7_5M_s0",
		"gloro-s_e1600_f0_s0", "gloro-s_e1600_f0.7_1M_s0", "gloro-s_e1600_f0.7_5M_s0",
		"L2W8_gloro-xs_e3_f0.7_5M_cosine_s1", "L2W8_gloro-xs_e3_f0.7_5M_cosine_s2",
	}
	if !slices.Equal(names, want) {
		t.Fatalf("cells\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	base, mixed, labelled := cells[0], cells[2], cells[13]
	wantTrain := []string{"--real", "/work/out/real", "--fraction", "0", "--preset", "gloro-xs", "--epochs", "800", "--seed", "0",
		"--test", "/work/out/test", "--depth", "2", "--lr", "1e-3", "--val", "1000", "--val-seed", "0", "--width", "16"}
	if !slices.Equal(base.Train, wantTrain) {
		t.Errorf("base cell's train flags\n%q\nwant\n%q", base.Train, wantTrain)
	}
	wantTrain = []string{"--real", "/work/out/real", "--generated", "/work/out/gen-5m", "--fraction", "0.7", "--preset", "gloro-xs",
		"--epochs", "800", "--seed", "0", "--test", "/work/out/test", "--depth", "2", "--lr", "1e-3", "--val", "1000", "--val-seed", "0", "--width", "16"}
	if !slices.Equal(mixed.Train, wantTrain) {
		t.Errorf("mixed cell's train flags\n%q\nwant\n%q", mixed.Train, wantTrain)
	}
	if cells[1].GeneratedURL != "s3://bucket/gen-1m" {
		t.Errorf("an s3:// URL was changed: %q", cells[1].GeneratedURL)
	}
	wantTrain = []string{"--real", "/work/out/real", "--generated", "/work/out/gen-5m", "--fraction", "0.7", "--preset", "gloro-xs",
		"--epochs", "3", "--seed", "2", "--schedule", "cosine", "--test", "/work/out/test", "--depth", "2", "--lr", "1e-3", "--val", "1000", "--val-seed", "0", "--width", "8"}
	if !slices.Equal(labelled.Train, wantTrain) {
		t.Errorf("the grid's train flags are not merged over the file's\n%q\nwant\n%q", labelled.Train, wantTrain)
	}
	wantCertify := []string{"--test", "/work/out/test", "--train", "/work/out/real", "--eps", "0.1411764705882353"}
	if !slices.Equal(base.Certify, wantCertify) || base.Checkpoint != "last" {
		t.Errorf("certify flags %q (checkpoint %s), want %q (last)", base.Certify, base.Checkpoint, wantCertify)
	}
	if mixed.Row() != "gloro-xs_e800_s0" || base.Row() != mixed.Row() || labelled.Row() != "L2W8_gloro-xs_e3_cosine_s2" {
		t.Errorf("rows %q %q %q", base.Row(), mixed.Row(), labelled.Row())
	}
	if mixed.Family != "gloro" || labelled.Family != "" || labelled.Arch() != "L2W8 gloro-xs" {
		t.Errorf("families %q %q, arch %q", mixed.Family, labelled.Family, labelled.Arch())
	}
	// val: 0 holds nothing out.
	zero := 0
	f.Val = &zero
	if cells, _ := Expand(f, "/work"); slices.Contains(cells[0].Train, "--val") {
		t.Errorf("val: 0 still passes --val: %q", cells[0].Train)
	}
	if PresetFamily("gloro-xs") != "gloro" || PresetFamily("sortnet-hinge") != "sortnet" || PresetFamily("linfdist") != "linfdist" {
		t.Error("PresetFamily")
	}
}

func TestCellNames(t *testing.T) {
	for _, tc := range []struct {
		cell Cell
		name string
	}{
		{Cell{Preset: "gloro-xs", Epochs: 3, Fraction: 0}, "gloro-xs_e3_f0_s0"},
		{Cell{Preset: "gloro-xs", Epochs: 3, Fraction: 0.3, Amount: "aux50k"}, "gloro-xs_e3_f0.3_aux50k_s0"},
		{Cell{Preset: "lot-s", Epochs: 200, Fraction: 1, Amount: "10M", Schedule: "cosine", Seed: 7}, "lot-s_e200_f1_10M_cosine_s7"},
		{Cell{Label: "nodrop", Preset: "sortnet", Epochs: 3000, Fraction: 0.125, Amount: "5M"}, "nodrop_sortnet_e3000_f0.125_5M_s0"},
	} {
		if got := tc.cell.name(true); got != tc.name {
			t.Errorf("%+v: name %q, want %q", tc.cell, got, tc.name)
		}
	}
}

func TestExpandRefusesCollidingCells(t *testing.T) {
	file := `
data: {real: r, test: t}
grids:
  - {preset: gloro-xs, fraction: 0, epochs: 3, train: {width: 16}}
  - {preset: gloro-xs, fraction: 0, epochs: 3, train: {width: 8}}
`
	f, _, err := Parse([]byte(file), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Expand(f, "/"); !errors.Is(err, ErrFile) || !strings.Contains(err.Error(), "give the grids labels") {
		t.Fatalf("err = %v, want a refusal naming labels", err)
	}
	// The same cell twice with the same settings is kept once.
	f.Grids[1].Train = Flags{"width": "16"}
	cells, err := Expand(f, "/")
	if err != nil || len(cells) != 1 {
		t.Fatalf("%d cells, %v; want 1", len(cells), err)
	}
}

// TestFamilyInPlan: a grid's family reaches the report through plan.json,
// and cell.json (which a rerun compares) does not hold it, so naming the
// families of an existing sweep does not make its cells "changed".
func TestFamilyInPlan(t *testing.T) {
	f, src, err := Parse([]byte(demoFile), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(f, "/work")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Prepare(dir, p, src); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPlan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cells[0].Family != "gloro" || got.Cells[13].Family != "" || len(got.Families) != 12 {
		t.Errorf("families after plan.json: %q %q (%d named)", got.Cells[0].Family, got.Cells[13].Family, len(got.Families))
	}
	c, err := ReadCell(dir, got.Cells[0].Name)
	if err != nil || c.Family != "" {
		t.Errorf("cell.json holds family %q (%v)", c.Family, err)
	}
	// The same sweep with its family removed prepares over the old
	// directory.
	f.Grids[0].Family = ""
	p, _ = NewPlan(f, "/work")
	if err := Prepare(dir, p, src); err != nil {
		t.Errorf("naming no family refused: %v", err)
	}
}
