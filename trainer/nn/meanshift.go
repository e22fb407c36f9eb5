package nn

// MeanShift is the l_inf-dist Net's normalisation (the authors' norm_dist.py): z = d - mu per
// unit, with mu the batch mean in training and the running mean at
// evaluation; no scaling and no affine part, so at evaluation it is a
// constant shift and keeps the unit 1-Lipschitz. The running mean follows
// running <- (1 - Momentum)·running + Momentum·mean after every training
// forward, in float32 as PyTorch does.
type MeanShift struct {
	Units int
	// Running is the running mean (the authors' running_mean buffer).
	Running []float32
	// Momentum is the running mean's update weight (0.1; the recalibration
	// pass before evaluation sets 1/(k+1) for its k-th batch, the authors' update_bn).
	Momentum float64
	mean     []float32 // the last training forward's batch mean
}

// NewMeanShift returns a mean shift over units units, running mean 0.
func NewMeanShift(units int) *MeanShift {
	return &MeanShift{Units: units, Running: make([]float32, units), Momentum: 0.1, mean: make([]float32, units)}
}

// Forward writes z = d - mu for n rows (z may alias d). In training mu is
// the batch mean (summed in float64) and the running mean is updated;
// otherwise mu is the running mean.
func (s *MeanShift) Forward(z, d []float32, n int, train bool) {
	u := s.Units
	if len(z) < n*u || len(d) < n*u || n < 1 {
		panic("nn: MeanShift: bad sizes")
	}
	mu := s.Running
	if train {
		for j := range u {
			var sum float64
			for b := range n {
				sum += float64(d[b*u+j])
			}
			s.mean[j] = float32(sum / float64(n))
		}
		m := float32(s.Momentum)
		for j, v := range s.mean {
			s.Running[j] = float32((1-m)*s.Running[j]) + float32(m*v)
		}
		mu = s.mean
	}
	for b := range n {
		zr, dr := z[b*u:(b+1)*u], d[b*u:(b+1)*u]
		for j, v := range dr {
			zr[j] = v - mu[j]
		}
	}
}

// Backward writes dd = dz - mean_b(dz), the gradient through a training
// Forward's batch mean (dd may alias dz).
func (s *MeanShift) Backward(dd, dz []float32, n int) {
	u := s.Units
	for j := range u {
		var sum float64
		for b := range n {
			sum += float64(dz[b*u+j])
		}
		s.mean[j] = float32(sum / float64(n))
	}
	for b := range n {
		dr, zr := dd[b*u:(b+1)*u], dz[b*u:(b+1)*u]
		for j, v := range zr {
			dr[j] = v - s.mean[j]
		}
	}
}
