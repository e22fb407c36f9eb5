package checkpoint

import (
	"bytes"
	"context"
	"errors"
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

// FuzzCheckpoint: no bytes make the checkpoint reader panic or allocate
// beyond what the file holds.
func FuzzCheckpoint(f *testing.F) {
	c := &File{Tensors: map[string]Tensor{"w": {Shape: []int{2}, Data: []float32{1, 2}}}, Meta: map[string]string{"step": "1"}}
	good, _ := c.Marshal()
	f.Add(good)
	f.Add(good[:10])
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '})
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
