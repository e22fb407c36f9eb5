package trainer

import "math"

// lotLossReport is what LOTLoss computes: the loss and its two terms.
type lotLossReport struct {
	Loss, CrossEntropy float64
	Certificate        float64 // mean over the batch of relu(certificate at the label)
}

// lotLoss is LOT's training loss (the authors' train_robust.py, the authors' train_robust.py):
// the mean cross-entropy of the logits minus gamma times the mean of
// relu(cert), where cert is the l2 certificate computed for the label y (not
// the prediction) with Lipschitz constant lip:
//   - orthogonal last layer (hat nil): (f_y − max_{j≠y} f_j) / (√2·lip);
//   - LLN (hat the normalised rows ŵ, Classes × F): min_{j≠y} (f_y − f_j) /
//     (‖ŵ_y − ŵ_j‖·lip), differentiated through ŵ too (into dHat, accumulated).
//
// It WRITES dLogits (n × classes). Computed in float64.
func lotLoss(logits []float32, labels []int, classes int, gamma, lip float64, hat []float32, dLogits, dHat []float32) lotLossReport {
	n := len(labels)
	var r lotLossReport
	var dist []float64
	features := 0
	if hat != nil {
		features = len(hat) / classes
		dist = headDistances(hat, classes, features)
	}
	p := make([]float64, classes)
	for i, y := range labels {
		row := logits[i*classes : (i+1)*classes]
		d := dLogits[i*classes : (i+1)*classes]
		zmax := math.Inf(-1)
		for _, v := range row {
			zmax = max(zmax, float64(v))
		}
		var sum float64
		for j, v := range row {
			p[j] = math.Exp(float64(v) - zmax)
			sum += p[j]
		}
		r.CrossEntropy += math.Log(sum) - (float64(row[y]) - zmax)
		for j := range row {
			g := p[j] / sum
			if j == y {
				g--
			}
			d[j] = float32(g / float64(n))
		}
		// The certificate at the label and the class it is taken against.
		cert, other := math.Inf(1), -1
		for j, v := range row {
			if j == y {
				continue
			}
			var c float64
			if hat == nil {
				c = (float64(row[y]) - float64(v)) / (math.Sqrt2 * lip)
			} else {
				c = (float64(row[y]) - float64(v)) / (dist[y*classes+j] * lip)
			}
			if c < cert {
				cert, other = c, j
			}
		}
		if !(cert > 0) {
			continue
		}
		r.Certificate += cert
		if gamma == 0 {
			continue
		}
		scale := -gamma / float64(n) // ∂loss/∂cert
		den := math.Sqrt2 * lip
		if hat != nil {
			den = dist[y*classes+other] * lip
		}
		d[y] += float32(scale / den)
		d[other] -= float32(scale / den)
		if hat != nil { // cert = Δf/(D·lip), D = ‖ŵ_y − ŵ_o‖: ∂cert/∂D = −cert/D
			dD := scale * -cert / dist[y*classes+other]
			a, b := hat[y*features:(y+1)*features], hat[other*features:(other+1)*features]
			da, db := dHat[y*features:(y+1)*features], dHat[other*features:(other+1)*features]
			for f := range a {
				g := float32(dD * float64(a[f]-b[f]) / dist[y*classes+other])
				da[f] += g
				db[f] -= g
			}
		}
	}
	r.CrossEntropy /= float64(n)
	r.Certificate /= float64(n)
	r.Loss = r.CrossEntropy - gamma*r.Certificate
	return r
}
