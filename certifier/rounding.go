package certifier

import (
	"fmt"
	"math"
)

// MarginRounding bounds the floating-point error of the margins a model
// computes for one image x: with m_cj the margin y_c − y_j of the network in
// exact arithmetic and m̂_cj the one the program computes,
//
//	|m̂_cj(x) − m_cj(x)| ≤ at  and  |m̂_cj(x′) − m_cj(x′)| ≤ near + r·slope
//
// for every x′ with ‖x′ − x‖ ≤ r (any r ≥ 0). image indexes the images
// passed to [CertifyMarginsRounded]; c is the prediction, j another class.
type MarginRounding func(image, c, j int) (at, near, slope float64)

// CertifyMarginsRounded is [CertifyMargins] for computed logits whose
// rounding error is bounded by rounding: the radius of image x with
// prediction c is
//
//	r = min_{j≠c} (m̂_cj(x) − at_cj − near_cj) / (K_cj + slope_cj),
//
// rounded down, and 0 when a numerator is not positive.
//
// Proof. Let ‖x′ − x‖ ≤ r′ < r. Then m̂_cj(x′) ≥ m_cj(x′) − near − slope·r′
// ≥ m_cj(x) − K_cj·r′ − near − slope·r′ (m_cj is K_cj-Lipschitz) ≥ m̂_cj(x)
// − at − near − (K_cj + slope)·r′ > 0 for every j ≠ c, so the program's
// logit c is strictly the largest at x′ and its prediction is c. The float64
// evaluation of r rounds the numerator down and the denominator up by more
// than its own few roundings (m̂ is the float64 difference of two float32
// or float64 logits, one rounding). The logits are the program's, float32 or
// float64 (a certified path that computes in float64 need not round them).
func CertifyMarginsRounded[T float32 | float64](logits []T, labels []int, classes int, lip MarginLipschitz, rounding MarginRounding) ([]Result, error) {
	res, err := CertifyMargins(logits, labels, classes, lip)
	if err != nil {
		return nil, err
	}
	const u = 0x1p-53
	for i := range res {
		y := logits[i*classes : (i+1)*classes]
		c := res[i].Prediction
		r := math.Inf(1)
		for j := range classes {
			if j == c {
				continue
			}
			at, near, slope := rounding(i, c, j)
			if !(at >= 0) || !(near >= 0) || !(slope >= 0) || math.IsInf(at+near+slope, 0) {
				return nil, fmt.Errorf("certify: image %d: rounding bound (%v, %v, %v) for classes %d, %d, want finite and >= 0", i, at, near, slope, c, j)
			}
			m := float64(y[c]) - float64(y[j])
			num := m - at - near
			num -= 8 * u * (math.Abs(m) + at + near)
			if !(num > 0) {
				r = 0
				break
			}
			den := (lip(c, j) + slope) * (1 + 8*u)
			if den == 0 {
				continue
			}
			r = min(r, num/den*(1-4*u))
		}
		res[i].Radius = r
	}
	return res, nil
}
