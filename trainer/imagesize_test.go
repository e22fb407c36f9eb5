package trainer

import "testing"

// TestImageSizeFromTheDataset: the image size travels from the
// configuration to the model. The l_inf models take the dataset's images
// as they are (8x8, 28x28, 32x32); LiResNet and LipConvnet take 32x32 and
// get smaller images padded at the centre; larger ones are refused.
func TestImageSizeFromTheDataset(t *testing.T) {
	dist := &DistConfig{Loss: "hinge", EpsTrain: 0.1, PStart: 8, PEnd: 8}
	lc := DefaultLOTConfig()
	cases := []struct {
		arch       string
		depth      int
		size, side int
		refused    bool
	}{
		{ArchLinfDist, 3, 8, 8, false},
		{ArchLinfDist, 3, 28, 28, false},
		{ArchSortNet, 3, 8, 8, false},
		{ArchLinfDist, 3, 0, 32, false}, // checkpoints from before the field: CIFAR's 32
		{ArchGloro, 1, 28, 32, false},
		{ArchGloro, 1, 8, 32, false},
		{ArchLOT, 5, 28, 32, false},
		{ArchGloro, 1, 64, 32, true},
		{ArchLOT, 5, 40, 32, true},
	}
	for _, c := range cases {
		cfg := Config{Arch: c.arch, Depth: c.depth, Width: 4, Classes: 2, Channels: 3, Batch: 2, PowerIters: 1,
			ImageSize: c.size, Dist: dist, LOT: &lc}
		if c.arch == ArchSortNet {
			d := *dist
			d.KeepProb, d.TopK, d.Group = 0.85, 2, 2
			cfg.Dist = &d
		}
		m, err := newModel(cfg)
		if c.refused {
			if err == nil {
				t.Errorf("%s on %dx%d images: built, want refused", c.arch, c.size, c.size)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s on %dx%d images: %v", c.arch, c.size, c.size, err)
		}
		if got, want := m.InputSize(), 3*c.side*c.side; got != want || cfg.InputSide() != c.side {
			t.Errorf("%s on %dx%d images: input of %d values (side %d), want %d (side %d)", c.arch, c.size, c.size, got, cfg.InputSide(), want, c.side)
		}
		// One image of the dataset's size converts to the model's input,
		// padded at the centre where the model is larger.
		size := max(c.size, 1)
		if c.size == 0 {
			size = 32
		}
		img := make([]byte, size*size*3)
		for i := range img {
			img[i] = 255
		}
		x := make([]float32, m.InputSize())
		if err := cfg.ToInput(x, img, 1, size, size, 3); err != nil {
			t.Fatal(err)
		}
		var ones int
		for _, v := range x {
			if v == 1 {
				ones++
			}
		}
		if ones != len(img) {
			t.Errorf("%s: %d of %d pixels arrived", c.arch, ones, len(img))
		}
		logits := make([]float32, 2)
		if err := m.Logits(logits, x, 1); err != nil {
			t.Errorf("%s: %v", c.arch, err)
		}
	}
}
