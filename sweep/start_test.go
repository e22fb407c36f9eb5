package sweep

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
)

func TestDefaultDir(t *testing.T) {
	for _, tc := range []struct {
		name, path, want string
	}{
		{"study", "sweeps/x.yaml", "runs/study"},
		{"", "sweeps/study-lot.yaml", "runs/study-lot"},
		{"", "tiny.yml", "runs/tiny"},
	} {
		if got := DefaultDir(&File{Name: tc.name}, tc.path); got != tc.want {
			t.Errorf("DefaultDir(name %q, %s) = %s, want %s", tc.name, tc.path, got, tc.want)
		}
	}
}

func TestBLASThreads(t *testing.T) {
	t.Setenv("OPENBLAS_NUM_THREADS", "")
	if got := BLASThreads(1); got != nil {
		t.Errorf("one cell at a time: %v, want the environment left alone", got)
	}
	if got := BLASThreads(2); !slices.Equal(got, nil) {
		t.Errorf("OPENBLAS_NUM_THREADS set (even empty): %v, want it left alone", got)
	}
	os.Unsetenv("OPENBLAS_NUM_THREADS") // restored by t.Setenv's cleanup
	want := []string{"OPENBLAS_NUM_THREADS=" + strconv.Itoa(max(runtime.NumCPU()/2, 1))}
	if got := BLASThreads(2); !slices.Equal(got, want) {
		t.Errorf("two cells at a time: %v, want %v", got, want)
	}
}
