package trainer

import (
	"testing"

	"certmix/certifier"
)

// attackHasTeeth runs the attack that found no broken certificate again at
// factor times each certified radius (images certified correct at a radius
// above zero) and fails unless it flips most of those predictions: an
// attack too weak to flip anything would pass any certificate.
func attackHasTeeth(t *testing.T, m certifier.Classifier, x []float32, res []certifier.Result, factor float64, opts certifier.PGDOptions) {
	t.Helper()
	radii := make([]float64, len(res))
	attacked := 0
	for i, r := range res {
		if r.Correct() && r.Radius > 0 {
			radii[i] = factor * r.Radius
			attacked++
		}
	}
	att, err := certifier.PGD(m, x, radii, opts)
	if err != nil {
		t.Fatal(err)
	}
	flips := 0
	for i, a := range att {
		if radii[i] > 0 && a.Success {
			flips++
		}
	}
	t.Logf("the attack flips %d of %d certified predictions at %g times the certified radius", flips, attacked, factor)
	if 2*flips <= attacked {
		t.Errorf("the attack flips only %d of %d certified predictions at %g times the certified radius: too weak to test the certificates", flips, attacked, factor)
	}
}
