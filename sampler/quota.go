package sampler

import (
	"fmt"
	"math"
)

// Quotas splits a batch of b images among sources with the given fractions
// (which sum to 1), exactly, in every batch. With two sources it is the
// paper's rule: the second (generated) source gets floor(b*f) images and the
// first (real) the rest, so b=512, f=0.7 gives 154 real and 358 generated.
// With more sources each gets floor(b*f_i) and the images left over go to
// the largest remainders (ties to the earlier source). A source with a
// non-zero fraction that would get no image is an error.
func Quotas(b int, fractions []float64) ([]int, error) {
	if b < 1 {
		return nil, fmt.Errorf("batch size %d, want at least 1", b)
	}
	if len(fractions) == 0 {
		return nil, fmt.Errorf("no sources")
	}
	var sum float64
	for i, f := range fractions {
		if !(f >= 0 && f <= 1) {
			return nil, fmt.Errorf("source %d: fraction %v outside [0,1]", i, f)
		}
		sum += f
	}
	if math.Abs(sum-1) > 1e-9 {
		return nil, fmt.Errorf("fractions %v sum to %v, want 1", fractions, sum)
	}
	q := make([]int, len(fractions))
	// floor with a tolerance: 0.29*100 is 28.999999999999996 in binary.
	floor := func(f float64) int { return int(math.Floor(float64(b)*f + 1e-9)) }
	if len(fractions) == 2 {
		q[1] = floor(fractions[1])
		q[0] = b - q[1]
	} else {
		left := b
		for i, f := range fractions {
			q[i] = floor(f)
			left -= q[i]
		}
		for ; left > 0; left-- {
			best, bestRem := -1, -1.0
			for i, f := range fractions {
				if rem := float64(b)*f - float64(q[i]); rem > bestRem+1e-12 {
					best, bestRem = i, rem
				}
			}
			q[best]++
		}
	}
	for i, f := range fractions {
		if f > 0 && q[i] == 0 {
			return nil, fmt.Errorf("batch of %d holds no image of source %d (fraction %v): use a larger batch", b, i, f)
		}
	}
	return q, nil
}
