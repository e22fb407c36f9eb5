package trainer

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"certmix/certifier"
)

// TestModelContract checks the Model contract (model.go) once for every
// architecture: evaluation of more images than the batch size, row
// independence, InputGradient leaving the parameters' gradients alone,
// and the shape refusals of every method.
func TestModelContract(t *testing.T) {
	archs := map[string]func(t *testing.T) *Trainer{
		ArchGloro: func(t *testing.T) *Trainer {
			tr, err := New(tinyConfig())
			if err != nil {
				t.Fatal(err)
			}
			return tr
		},
		ArchLOT: func(t *testing.T) *Trainer {
			tr, err := New(tinyLOT(5, false))
			if err != nil {
				t.Fatal(err)
			}
			return tr
		},
		ArchLinfDist: func(t *testing.T) *Trainer { tr, _ := tinyDist(t, ArchLinfDist, 20); return tr },
		ArchSortNet:  func(t *testing.T) *Trainer { tr, _ := tinyDist(t, ArchSortNet, 20); return tr },
	}
	for _, arch := range []string{ArchGloro, ArchLOT, ArchLinfDist, ArchSortNet} {
		t.Run(arch, func(t *testing.T) {
			tr := archs[arch](t)
			m, B := tr.Model, tr.Cfg.Batch
			d, C := m.InputSize(), m.Classes()
			rng := rand.New(rand.NewPCG(11, 12))
			n := B + 3 // more than one chunk
			x := make([]float32, n*d)
			for i := range x {
				x[i] = rng.Float32()
			}
			labels := make([]int, n)
			for i := range labels {
				labels[i] = rng.IntN(C)
			}

			// Any n, and rows independent: all at once equals one by one.
			all := make([]float32, n*C)
			if err := m.Logits(all, x, n); err != nil {
				t.Fatal(err)
			}
			one := make([]float32, C)
			for _, i := range []int{0, B - 1, B, n - 1} {
				if err := m.Logits(one, x[i*d:(i+1)*d], 1); err != nil {
					t.Fatal(err)
				}
				for j := range C {
					if a, b := float64(all[i*C+j]), float64(one[j]); math.Abs(a-b) > 1e-4*(1+math.Abs(b)) {
						t.Fatalf("image %d logit %d: %v in a batch of %d, %v alone", i, j, a, n, b)
					}
				}
			}

			// InputGradient leaves the parameters' gradients as they were.
			for _, p := range m.Params() {
				for i := range p.G {
					p.G[i] = float32(i%7) - 3
				}
			}
			var before [][]float32
			for _, p := range m.Params() {
				before = append(before, slices.Clone(p.G))
			}
			dlog := make([]float32, n*C)
			for i := range dlog {
				dlog[i] = float32(rng.NormFloat64())
			}
			dx := make([]float32, n*d)
			if err := m.InputGradient(dx, x, dlog, n); err != nil {
				t.Fatal(err)
			}
			for i, p := range m.Params() {
				if !slices.Equal(p.G, before[i]) {
					t.Fatalf("InputGradient changed the gradient of %s", p.Name)
				}
			}
			if !slices.ContainsFunc(dx, func(v float32) bool { return v != 0 }) {
				t.Error("InputGradient wrote no gradient")
			}

			// Certify takes any number of images.
			for i := 0; i < n; i += 2 { // every other label the prediction
				labels[i] = slices.Index(all[i*C:(i+1)*C], slices.Max(all[i*C:(i+1)*C]))
			}
			cert, err := m.Certify(x, labels, tr.Cfg.Eps)
			if err != nil || len(cert.Results) != n {
				t.Fatalf("certify %d images: %d results, %v", n, len(cert.Results), err)
			}
			// The training side of the generalization gap, from Logits
			// alone, is the certificate's clean accuracy.
			acc, err := cleanAccuracy(m, x, labels)
			if want := certifier.CleanAccuracy(cert.Results); err != nil || acc != want || acc < 0.5 {
				t.Fatalf("clean accuracy from logits %v (%v), from the certificate %v, want equal and at least 0.5", acc, err, want)
			}

			// Shape refusals, before anything is computed.
			bad := map[string]error{
				"logits: short output":        m.Logits(all[:n*C-1], x, n),
				"logits: short input":         m.Logits(all, x[:n*d-1], n),
				"gradient: short cotangent":   m.InputGradient(dx, x, dlog[:n*C-1], n),
				"gradient: short output":      m.InputGradient(dx[:n*d-1], x, dlog, n),
				"certify: inputs and labels":  func() error { _, err := m.Certify(x[:n*d-d], labels, tr.Cfg.Eps); return err }(),
				"certify: label out of range": func() error { _, err := m.Certify(x[:d], []int{C}, tr.Cfg.Eps); return err }(),
				"loss: more than the batch": func() error {
					_, err := m.Loss(x, labels, n, Progress{Step: 1, Total: 10, StepsPerEpoch: 10})
					return err
				}(),
				"loss: labels and n disagree": func() error {
					_, err := m.Loss(x, labels[:2], 3, Progress{Step: 1, Total: 10, StepsPerEpoch: 10})
					return err
				}(),
			}
			for name, err := range bad {
				if !errors.Is(err, certifier.ErrShape) {
					t.Errorf("%s: %v, want an error wrapping ErrShape", name, err)
				}
			}
		})
	}
}
