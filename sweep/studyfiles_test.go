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
	want := map[string]int{"demo.yaml": 0, "study-gloro.yaml": 2, "study-lot.yaml": 4, "study-linf.yaml": 4, "study-torch.yaml": 2}
	for _, path := range files {
		f, _, err := ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		cells, err := Expand(f, t.TempDir())
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if n, ok := want[filepath.Base(path)]; ok && n > 0 && len(cells) != n {
			t.Errorf("%s: %d cells, want %d", path, len(cells), n)
		}
		if len(cells) == 0 {
			t.Errorf("%s: no cells", path)
		}
	}
}
