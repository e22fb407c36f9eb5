package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"certmix/shards"
)

func TestCheckpointRoundTripAndDamage(t *testing.T) {
	c := &File{
		Tensors: map[string]Tensor{"a.weight": {Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, -6.5}}, "b": {Shape: []int{1}, Data: []float32{7}}},
		Meta:    map[string]string{"step": "12", "sampler": `{"seed":1}`},
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Tensors["a.weight"].Data, c.Tensors["a.weight"].Data) || got.Meta["sampler"] != `{"seed":1}` || got.Meta["step"] != "12" {
		t.Fatalf("round trip: %+v", got)
	}
	for name, bad := range map[string][]byte{
		"truncated": b[:len(b)-3],
		"flipped":   append(bytes.Clone(b[:len(b)-1]), b[len(b)-1]^1),
		"short":     b[:5],
		"huge":      append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, b[8:]...),
	} {
		if _, err := Unmarshal(bad); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: %v, want ErrDamaged", name, err)
		}
	}
	// Stored atomically on local disk.
	st, _ := shards.NewLocal(t.TempDir())
	if err := Write(context.Background(), st, "ckpt.safetensors", c); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(context.Background(), st, "ckpt.safetensors"); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointIsSafetensors: numpy reads it with the format's own rules
// (header length, JSON, offsets), as safetensors.numpy.load_file does.
func TestCheckpointIsSafetensors(t *testing.T) {
	c := &File{Tensors: map[string]Tensor{"w": {Shape: []int{2, 2}, Data: []float32{1.5, -2, 3, 4}}}}
	b, _ := c.Marshal()
	p := filepath.Join(t.TempDir(), "c.safetensors")
	os.WriteFile(p, b, 0o644)
	script := `
import json, struct, sys
import numpy as np
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8+n])
t = h['w']; lo, hi = t['data_offsets']
a = np.frombuffer(b[8+n+lo:8+n+hi], dtype='<f4').reshape(t['shape'])
assert t['dtype'] == 'F32' and a.tolist() == [[1.5, -2.0], [3.0, 4.0]], a
print('ok')
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, p).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("ok")) {
		t.Fatalf("numpy could not read it: %v\n%s", err, out)
	}
}

// fuzzScratch returns a directory for the stores a fuzz target writes:
// under /dev/shm when there is one (fsync on a busy disk stalls fuzzing
// for seconds at a time), else a temporary directory. It is removed at the
// end.
func fuzzScratch(f *testing.F) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "certmix-fuzz-"); err == nil {
			f.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return f.TempDir()
}

// FuzzCheckpoint: no bytes make the checkpoint reader panic or allocate
// beyond what the file holds; a checkpoint it accepts round-trips (written
// back and read again: the same tensors bit for bit, the same metadata);
// and one made inconsistent (a tensor's data one value short of its shape)
// is refused by Write, leaving nothing in a real local store.
func FuzzCheckpoint(f *testing.F) {
	c := &File{Tensors: map[string]Tensor{"w": {Shape: []int{2}, Data: []float32{1, 2}}}, Meta: map[string]string{"step": "1"}}
	good, _ := c.Marshal()
	f.Add(good)
	f.Add(good[:10])
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '})
	c = &File{Tensors: map[string]Tensor{"a": {Shape: []int{2, 2}, Data: []float32{float32(math.NaN()), float32(math.Inf(-1)), -0.0, 1e-45}},
		"b": {Shape: []int{}, Data: []float32{3}}, "c": {Shape: []int{0, 5}, Data: []float32{}}}, Meta: map[string]string{"state": `{"step":3}`}}
	good, _ = c.Marshal()
	f.Add(good)
	ctx := context.Background()
	scratch := fuzzScratch(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Unmarshal(data)
		if err != nil {
			return
		}
		var n int
		for _, tn := range c.Tensors {
			n += 4 * len(tn.Data)
		}
		if n > len(data) {
			t.Fatalf("%d bytes of tensors from a %d-byte file", n, len(data))
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal of an accepted checkpoint: %v", err)
		}
		c2, err := Unmarshal(out)
		if err != nil {
			t.Fatalf("the reader refuses what Marshal wrote of a checkpoint it accepted: %v", err)
		}
		if !maps.Equal(c.Meta, c2.Meta) || len(c.Tensors) != len(c2.Tensors) {
			t.Fatalf("read(write(c)): metadata %v, tensors %d; was %v, %d", c2.Meta, len(c2.Tensors), c.Meta, len(c.Tensors))
		}
		var short string
		for name, a := range c.Tensors {
			b, ok := c2.Tensors[name]
			if !ok || !slices.Equal(a.Shape, b.Shape) || len(a.Data) != len(b.Data) {
				t.Fatalf("read(write(c)): tensor %q %v, was %v", name, b.Shape, a.Shape)
			}
			for i := range a.Data {
				if math.Float32bits(a.Data[i]) != math.Float32bits(b.Data[i]) {
					t.Fatalf("read(write(c)): tensor %q value %d is %x, was %x", name, i, math.Float32bits(b.Data[i]), math.Float32bits(a.Data[i]))
				}
			}
			if len(a.Data) > 0 && short == "" {
				short = name
			}
		}
		if short == "" {
			return
		}
		bad := &File{Tensors: maps.Clone(c.Tensors), Meta: c.Meta}
		tn := bad.Tensors[short]
		tn.Data = tn.Data[:len(tn.Data)-1]
		bad.Tensors[short] = tn
		dir, err := os.MkdirTemp(scratch, "ck")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		st, err := shards.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := Write(ctx, st, "last.safetensors", bad); err == nil {
			t.Fatalf("Write accepted tensor %q with %d values for shape %v", short, len(tn.Data), tn.Shape)
		}
		if names, err := st.List(ctx); err != nil || len(names) != 0 {
			t.Fatalf("the refused checkpoint left %v (%v)", names, err)
		}
	})
}

// TestCheckpointOnAFullDisk: a checkpoint that does not fit fails with a
// no-space error and leaves the previous one intact and no temporary file.
func TestCheckpointOnAFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Fatalf("mount a 256 KiB tmpfs at %s (the test needs root): %v", dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	ctx := context.Background()
	st, _ := shards.NewLocal(dir)
	small := &File{Tensors: map[string]Tensor{"w": {Shape: []int{1000}, Data: make([]float32, 1000)}}}
	if err := Write(ctx, st, "last.safetensors", small); err != nil {
		t.Fatal(err)
	}
	big := &File{Tensors: map[string]Tensor{"w": {Shape: []int{200_000}, Data: make([]float32, 200_000)}}}
	err := Write(ctx, st, "last.safetensors", big)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("checkpoint on a full disk: %v, want ENOSPC", err)
	}
	got, err := Read(ctx, st, "last.safetensors")
	if err != nil || len(got.Tensors["w"].Data) != 1000 {
		t.Fatalf("the previous checkpoint after the failed write: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left: %v", entries)
	}
}
