package report

// BestLast is one point of the paper's Fig. 6 (robust overfitting): how
// many epochs before the end a cell's training run reached its best
// certified accuracy, and how much better that was than the last epoch, in
// points, on the run's evaluation images (certmix train --eval).
type BestLast struct {
	Cell      string
	Generated string // empty: the base model
	// BestEpoch and LastEpoch count from 0; EpochsAfterBest is their
	// difference.
	BestEpoch, LastEpoch, EpochsAfterBest int64
	Best, Last, Diff                      float64
}

// BestVsLast gives a point for every finished cell whose metrics hold a
// certified accuracy. The best epoch is the first of the highest.
func BestVsLast(results []Result) []BestLast {
	var out []BestLast
	for _, r := range results {
		if !r.Done {
			continue
		}
		var b BestLast
		found := false
		for _, e := range r.History {
			if e.TestCertified == nil {
				continue
			}
			c := 100 * *e.TestCertified
			if !found || c > b.Best {
				b.Best, b.BestEpoch = c, e.Epoch
			}
			b.Last, b.LastEpoch, found = c, e.Epoch, true
		}
		if !found {
			continue
		}
		b.Cell, b.Generated = r.Name, r.Generated
		b.EpochsAfterBest, b.Diff = b.LastEpoch-b.BestEpoch, b.Best-b.Last
		out = append(out, b)
	}
	return out
}
