package certifier

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// ReportRadii are the radii (pixel units) at which a model certified under
// norm is reported, whatever reports it (certmix certify, table, report):
//   - "linf": 2/255, 8/255 (the paper's), 16/255, 0.1, and eps;
//   - otherwise (l2): eps/2, eps, 2 eps and 3 eps (36/255 is the paper's).
//
// Radii are ascending and eps is always among them.
func ReportRadii(norm string, eps float64) []float64 {
	if norm != "linf" {
		return []float64{eps / 2, eps, 2 * eps, 3 * eps}
	}
	r := []float64{2.0 / 255, 8.0 / 255, 16.0 / 255, 0.1}
	if !slices.ContainsFunc(r, func(v float64) bool { return math.Abs(v-eps) < 1e-12 }) {
		r = append(r, eps)
	}
	slices.Sort(r)
	return r
}

// RadiusLabel writes a radius as k/255 when it is one (36/255, 8/255), else
// in the shortest of four significant digits (0.1): the one way radii are
// named in tables, plots and logs.
func RadiusLabel(r float64) string {
	if k := r * 255; math.Abs(k-math.Round(k)) < 1e-6 {
		return fmt.Sprintf("%.0f/255", k)
	}
	return strconv.FormatFloat(r, 'g', 4, 64)
}
