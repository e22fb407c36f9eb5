package trainer

import "math"

// The l_inf-dist Net and SortNet losses and schedules (the authors' main.py).
// They see the logits g = -distance and the worst-case margins under the
// network's l_inf Lipschitz bound: each logit moves by at most eps (in
// normalised units) within the eps-ball, so for every class j
//
//	m_j = (g_j - g_y + 2·eps) / (2·eps),  m_y = 0,
//
// and m_j > 0 means class j may overtake the label y somewhere in the ball.
// Losses are averaged over the batch in float64; the gradients they return
// are dL/dg (n x C).

// linfMargins writes the worst-case margins m (n x C) of the logits g.
func linfMargins(m, g []float32, labels []int, classes int, eps float64) {
	for b, y := range labels {
		row := g[b*classes : (b+1)*classes]
		for j, v := range row {
			mj := 0.0
			if j != y {
				mj = (float64(v) - float64(row[y]) + 2*eps) / (2 * eps)
			}
			m[b*classes+j] = float32(mj)
		}
	}
}

// marginGrad adds w·dm_j/dg to dg for one image: +w/(2eps) at j, -w/(2eps)
// at the label y.
func marginGrad(dg []float32, j, y int, w, eps float64) {
	dg[j] += float32(w / (2 * eps))
	dg[y] -= float32(w / (2 * eps))
}

// linfHinge is the baseline hinge loss (Config A): (1 - mix)·mean_b
// max_j relu(m_j) + mix·mean_{b,j} relu(m_j), the second mean over all C
// columns (the label's zero included). It writes dL/dg into dg.
func linfHinge(g []float32, labels []int, classes int, eps, mix float64, dg []float32) float64 {
	n := len(labels)
	clear(dg[:n*classes])
	var loss float64
	for b, y := range labels {
		row, drow := g[b*classes:(b+1)*classes], dg[b*classes:(b+1)*classes]
		best, at := 0.0, -1
		for j, v := range row {
			if j == y {
				continue
			}
			mj := (float64(v) - float64(row[y]) + 2*eps) / (2 * eps)
			if mj > 0 {
				loss += mix * mj / float64(n*classes)
				marginGrad(drow, j, y, mix/float64(n*classes), eps)
				if mj > best {
					best, at = mj, j
				}
			}
		}
		if at >= 0 {
			loss += (1 - mix) * best / float64(n)
			marginGrad(drow, at, y, (1-mix)/float64(n), eps)
		}
	}
	return loss
}

// linfMixture is the ICLR 2022 loss (SortNet, Config B): mean_b max_j
// clip(m_j, 0, 1), the clipped hinge with threshold 2·eps, plus
// lambda·CE(s·g, y). It writes dL/dg into dg and returns the loss and
// dL/ds.
func linfMixture(g []float32, labels []int, classes int, eps, lambda, s float64, dg []float32) (loss, ds float64) {
	n := len(labels)
	clear(dg[:n*classes])
	z := make([]float64, classes)
	for b, y := range labels {
		row, drow := g[b*classes:(b+1)*classes], dg[b*classes:(b+1)*classes]
		best, at := 0.0, -1
		for j, v := range row {
			if j == y {
				continue
			}
			if mj := min(1, (float64(v)-float64(row[y])+2*eps)/(2*eps)); mj > best {
				best, at = mj, j
			}
		}
		if at >= 0 {
			loss += best / float64(n)
			if best < 1 {
				marginGrad(drow, at, y, 1/float64(n), eps)
			}
		}
		// Cross-entropy of the scaled logits, without overflow.
		zmax := math.Inf(-1)
		for j, v := range row {
			z[j] = s * float64(v)
			zmax = max(zmax, z[j])
		}
		var sum float64
		for j := range z {
			sum += math.Exp(z[j] - zmax)
		}
		loss += lambda * (math.Log(sum) - (z[y] - zmax)) / float64(n)
		for j, v := range row {
			p := math.Exp(z[j]-zmax) / sum
			if j == y {
				p--
			}
			w := lambda * p / float64(n)
			drow[j] += float32(w * s)
			ds += w * float64(v)
		}
	}
	return loss, ds
}

// pSchedule is p and the schedule's progress r at step at.Step (the authors' create_schedule):
// r rises linearly from 0 at the fraction start of the run to 1 at end, per
// iteration; p = pStart·(pEnd/pStart)^r, and once r reaches 1 with
// pEnd >= 100, p = inf exactly.
func pSchedule(at Progress, pStart, pEnd, start, end float64) (p, r float64) {
	t := float64(at.Step - 1)
	total := float64(max(at.Total, 1))
	r = min(max((t-start*total)/max((end-start)*total, 1), 0), 1)
	if r >= 1 && pEnd >= 100 {
		return math.Inf(1), 1
	}
	return pStart * math.Pow(pEnd/pStart, r), r
}

// lambdaSchedule is the mixture loss's weight at progress r:
// lambda0·(lambdaEnd/lambda0)^r.
func lambdaSchedule(lambda0, lambdaEnd, r float64) float64 {
	return lambda0 * math.Pow(lambdaEnd/lambda0, r)
}
