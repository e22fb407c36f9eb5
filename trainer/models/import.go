package models

import (
	"fmt"

	"certmix/internal/npy"
	"certmix/trainer/nn"
)

// Import loads weights saved from the authors' PyTorch LiResNet (a state dict
// written with np.savez, names under prefix, PyTorch layouts: conv OIHW,
// linear (out, in)), including the power-iteration start vectors
// (init_x, and init_layer for the blocks, one group of Width channels per
// block). Every parameter must be present with its exact shape.
func (m *LiResNet) Import(arrays map[string]*npy.Array, prefix string) error {
	for _, p := range m.Params() {
		a, ok := arrays[prefix+p.Name]
		if !ok {
			return fmt.Errorf("import: no %s%s", prefix, p.Name)
		}
		if len(a.Data) != len(p.W) {
			return fmt.Errorf("import: %s%s has shape %v, the model's is %v", prefix, p.Name, a.Shape, p.Shape)
		}
		for i, v := range a.Data {
			p.W[i] = float32(v)
		}
	}
	vec := func(pi *nn.PowerIteration, name string, from int) error {
		a, ok := arrays[prefix+name]
		if !ok {
			return fmt.Errorf("import: no %s%s", prefix, name)
		}
		if len(a.Data) < from+len(pi.V) {
			return fmt.Errorf("import: %s%s has %d values, want %d", prefix, name, len(a.Data), from+len(pi.V))
		}
		v := make([]float32, len(pi.V))
		for i := range v {
			v[i] = float32(a.Data[from+i])
		}
		pi.SetV(v)
		return nil
	}
	if err := vec(m.PIStem, "stem.0.init_x", 0); err != nil {
		return err
	}
	for i, pi := range m.PIBlocks {
		if err := vec(pi, "init_layer", i*len(pi.V)); err != nil {
			return err
		}
	}
	if err := vec(m.PINeck, "neck.0.init_x", 0); err != nil {
		return err
	}
	return vec(m.PIFC, "neck.3.init_x", 0)
}
