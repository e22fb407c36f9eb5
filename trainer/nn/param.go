package nn

// A Param is one trainable tensor: its values W and the gradient G that Backward
// accumulates into, both flat in row-major order of Shape (PyTorch's layout).
type Param struct {
	Name  string
	Shape []int
	W, G  []float32
	// NoDecay exempts the tensor from weight decay (e.g. SortNet decays only its scalar).
	NoDecay bool
}

// NewParam allocates a zero Param of the given shape.
func NewParam(name string, shape ...int) *Param {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return &Param{Name: name, Shape: append([]int(nil), shape...), W: make([]float32, n), G: make([]float32, n)}
}

// ZeroGrads clears the gradients of ps, as a step must before Backward accumulates.
func ZeroGrads(ps []*Param) {
	for _, p := range ps {
		clear(p.G)
	}
}

// Buffer is a named piece of persistent state that is not trained: a
// model's power-iteration vectors or running means, an optimiser's
// moments. Checkpoints store buffers by name, so that a resumed run
// restores them exactly.
type Buffer struct {
	Name string
	Data []float32
}
