package rundir

import (
	"fmt"
	"slices"
	"strings"

	"certmix/certifier"
)

// Run is a named certification summary, a row of [Table].
type Run struct {
	Name    string
	Summary Summary
}

// Table writes runs as a Markdown table in percent: clean accuracy, the
// certified accuracy at every radius any run reports (a column per norm
// and radius, so that l2 and l_inf runs never share a column; "–" where a
// run has no such radius) and the generalization gap.
func Table(runs []Run) string {
	type col struct {
		norm   string
		radius float64
	}
	var cols []col
	norms := map[string]bool{}
	for _, r := range runs {
		norms[r.Summary.Norm] = true
		for _, e := range r.Summary.Radii {
			if c := (col{r.Summary.Norm, e}); !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
		}
	}
	slices.SortStableFunc(cols, func(a, b col) int {
		if a.norm != b.norm {
			return strings.Compare(a.norm, b.norm)
		}
		switch {
		case a.radius < b.radius:
			return -1
		case a.radius > b.radius:
			return 1
		}
		return 0
	})
	head := []string{"run", "clean"}
	for _, c := range cols {
		h := "cert. " + certifier.RadiusLabel(c.radius)
		if len(norms) > 1 {
			h += " (" + c.norm + ")"
		}
		head = append(head, h)
	}
	head = append(head, "gen. gap")
	var b strings.Builder
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, r := range runs {
		s := r.Summary
		line := []string{r.Name, fmt.Sprintf("%.2f", 100*s.Clean)}
		for _, c := range cols {
			v := "–"
			if i := slices.Index(s.Radii, c.radius); i >= 0 && s.Norm == c.norm {
				v = fmt.Sprintf("%.2f", 100*s.Certified[i])
			}
			line = append(line, v)
		}
		line = append(line, fmt.Sprintf("%.2f", 100*s.GeneralizationGap))
		fmt.Fprintf(&b, "| %s |\n", strings.Join(line, " | "))
	}
	return b.String()
}
