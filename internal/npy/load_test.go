package npy

import (
	"testing"
)

func TestLoadNPZReadsTheReferenceFiles(t *testing.T) {
	arrays, err := LoadNPZ("../../testdata/liresnet_ref_L2W16.npz")
	if err != nil {
		t.Fatal(err)
	}
	in, ok := arrays["input"]
	if !ok || len(in.Shape) != 4 || in.Shape[0] != 8 || in.Shape[1] != 3 || len(in.Data) != 8*3*32*32 {
		t.Fatalf("input: %+v", in)
	}
	for _, v := range in.Data {
		if v < 0 || v > 1 {
			t.Fatalf("input value %v outside [0,1]", v)
		}
	}
	if l := arrays["label"]; l == nil || len(l.Data) != 8 {
		t.Fatalf("label: %+v", l)
	}
}
