package report

import "certmix/rundir"

// BestLast is one point of the paper's Fig. 6 (robust overfitting): how
// many epochs before the end a cell's training run reached its best
// certified accuracy, and how much better that was than the last epoch, in
// points, on the images that chose best.safetensors: the validation split
// (certmix train --val) when the run has one, else the evaluation images of
// the test set (--eval).
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
			sel, ok := selection(e)
			if !ok {
				continue
			}
			c := 100 * sel
			if !found || c > b.Best {
				b.Best, b.BestEpoch = c, e.Epoch
			}
			b.Last, b.LastEpoch, found = c, e.Epoch, true
		}
		if !found {
			continue
		}
		b.Cell, b.Generated = r.Name, r.Amount
		b.EpochsAfterBest, b.Diff = b.LastEpoch-b.BestEpoch, b.Best-b.Last
		out = append(out, b)
	}
	return out
}

// selection is the accuracy that chose the run's best checkpoint: on the
// validation split when measured, else on the test images (as
// trainer.Selection, without importing the trainer).
func selection(e rundir.Epoch) (float64, bool) {
	switch {
	case e.ValCertified != nil:
		return *e.ValCertified, true
	case e.TestCertified != nil:
		return *e.TestCertified, true
	}
	return 0, false
}
