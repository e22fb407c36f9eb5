package certifier

import (
	"slices"
	"testing"
)

func TestReportRadii(t *testing.T) {
	for _, tc := range []struct {
		norm string
		eps  float64
		want []float64
	}{
		{"l2", 36.0 / 255, []float64{18.0 / 255, 36.0 / 255, 72.0 / 255, 108.0 / 255}},
		{"linf", 8.0 / 255, []float64{2.0 / 255, 8.0 / 255, 16.0 / 255, 0.1}},
		{"linf", 0.05, []float64{2.0 / 255, 8.0 / 255, 0.05, 16.0 / 255, 0.1}},
	} {
		if got := ReportRadii(tc.norm, tc.eps); !slices.Equal(got, tc.want) {
			t.Errorf("ReportRadii(%s, %v) = %v, want %v", tc.norm, tc.eps, got, tc.want)
		}
	}
}

func TestRadiusLabel(t *testing.T) {
	for r, want := range map[float64]string{36.0 / 255: "36/255", 8.0 / 255: "8/255", 0.1: "0.1", 0.123456: "0.1235", 0: "0/255"} {
		if got := RadiusLabel(r); got != want {
			t.Errorf("RadiusLabel(%v) = %q, want %q", r, got, want)
		}
	}
}
