package trainer

import "math"

// emma is GloroNet's training loss as the authors shipped it (the hu23 snapshot's margin_layer_v2):
// cross-entropy of the logits with every non-target logit pushed up by its
// own worst case, ỹ_j = y_j + eps·K·‖ŵ_y − ŵ_j‖, averaged over the batch.
// It returns the loss and its gradients: dLogits (n x C), dHat (C x F, the
// gradient with respect to the normalised head rows ŵ, accumulated) and dK.
// Computed in float64.
func emma(logits []float32, labels []int, hat []float32, classes, features int, k, eps float64, dLogits, dHat []float32) (loss, dK float64) {
	n := len(labels)
	dist := headDistances(hat, classes, features)
	dDist := make([]float64, classes*classes)
	z := make([]float64, classes)
	for i, y := range labels {
		row := logits[i*classes : (i+1)*classes]
		zmax := math.Inf(-1)
		for j := range z {
			z[j] = float64(row[j]) + eps*k*dist[y*classes+j]
			zmax = max(zmax, z[j])
		}
		zy := z[y] - zmax
		var sum float64
		for j := range z {
			z[j] = math.Exp(z[j] - zmax)
			sum += z[j]
		}
		loss += math.Log(sum) - zy // −log softmax_y, without underflow
		for j := range z {
			g := z[j] / sum
			if j == y {
				g--
			}
			g /= float64(n)
			dLogits[i*classes+j] = float32(g)
			dK += g * eps * dist[y*classes+j]
			dDist[y*classes+j] += g * eps * k
		}
	}
	// ‖ŵ_y − ŵ_j‖ back to ŵ.
	for y := range classes {
		for j := range classes {
			d := dist[y*classes+j]
			if d == 0 || dDist[y*classes+j] == 0 {
				continue
			}
			s := dDist[y*classes+j] / d
			a, b := hat[y*features:(y+1)*features], hat[j*features:(j+1)*features]
			da, db := dHat[y*features:(y+1)*features], dHat[j*features:(j+1)*features]
			for f := range a {
				diff := float32(s * float64(a[f]-b[f]))
				da[f] += diff
				db[f] -= diff
			}
		}
	}
	return loss / float64(n), dK
}

// headDistances returns ‖ŵ_a − ŵ_b‖ for every pair of head rows.
func headDistances(hat []float32, classes, features int) []float64 {
	d := make([]float64, classes*classes)
	for a := range classes {
		for b := a + 1; b < classes; b++ {
			var s float64
			for f := range features {
				v := float64(hat[a*features+f]) - float64(hat[b*features+f])
				s += v * v
			}
			d[a*classes+b], d[b*classes+a] = math.Sqrt(s), math.Sqrt(s)
		}
	}
	return d
}
