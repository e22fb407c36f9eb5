package sweep

import (
	"path/filepath"
	"testing"
)

// TestRepositorySweepFiles: every sweep file the repository ships (the
// study of each architecture, the README's demo) parses and expands into
// the cells its comments promise.
func TestRepositorySweepFiles(t *testing.T) {
	files, err := filepath.Glob("../sweeps/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("sweep files: %v, %v", files, err)
	}
	// demo: 6 cells; the study: three seeds per setting (2, 4 and 4 settings).
	want := map[string]int{"demo.yaml": 6, "study-gloro.yaml": 6, "study-lot.yaml": 12, "study-linf.yaml": 12, "tiny.yaml": 4, "study-torch.yaml": 2}
	for _, path := range files {
		f, _, err := ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		cells, err := Expand(f, t.TempDir())
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if n, ok := want[filepath.Base(path)]; ok && len(cells) != n {
			t.Errorf("%s: %d cells, want %d", path, len(cells), n)
		}
		if len(cells) == 0 {
			t.Errorf("%s: no cells", path)
		}
	}
}

// TestRepositorySweepFamilies: every grid of the shipped sweep files names
// its family, so that no report falls back to parsing preset names.
func TestRepositorySweepFamilies(t *testing.T) {
	files, _ := filepath.Glob("../sweeps/*.yaml")
	for _, path := range files {
		f, _, err := ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for i, g := range f.Grids {
			if g.Family == "" {
				t.Errorf("%s: grids[%d] names no family", path, i)
			}
		}
	}
}
