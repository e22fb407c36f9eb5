package rundir

import "testing"

// TestTableKeepsNormsApart: an l2 and an l_inf run in one table each fill
// only the columns of their own radii.
func TestTableKeepsNormsApart(t *testing.T) {
	got := Table([]Run{
		{"gloro", Summary{Norm: "l2", Clean: 0.8, Radii: []float64{18.0 / 255, 36.0 / 255}, Certified: []float64{0.6, 0.5}, GeneralizationGap: 0.02}},
		{"linf", Summary{Norm: "linf", Clean: 0.7, Radii: []float64{8.0 / 255}, Certified: []float64{0.4}, GeneralizationGap: 0.01}},
	})
	want := "| run | clean | cert. 18/255 (l2) | cert. 36/255 (l2) | cert. 8/255 (linf) | gen. gap |\n" +
		"|---|---|---|---|---|---|\n" +
		"| gloro | 80.00 | 60.00 | 50.00 | – | 2.00 |\n" +
		"| linf | 70.00 | – | – | 40.00 | 1.00 |\n"
	if got != want {
		t.Errorf("table\n%s\nwant\n%s", got, want)
	}
	one := Table([]Run{{"a", Summary{Norm: "l2", Clean: 0.5, Radii: []float64{36.0 / 255}, Certified: []float64{0.25}}}})
	if want := "| run | clean | cert. 36/255 | gen. gap |\n|---|---|---|---|\n| a | 50.00 | 25.00 | 0.00 |\n"; one != want {
		t.Errorf("one-norm table\n%s\nwant\n%s", one, want)
	}
}
