package report

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// ErrFit marks data a line cannot be fitted to: fewer than two points, or
// all at one x.
var ErrFit = errors.New("no line")

// ErrNoInterval marks a prediction interval that cannot be given: a line
// through two points (no error estimate) or a level outside (0, 1).
var ErrNoInterval = errors.New("no prediction interval")

// Line is an ordinary least-squares line y = Intercept + Slope·x with the
// standard errors of its coefficients, as the paper fits the certified
// accuracy gain against the base model's generalization gap (Fig. 3).
type Line struct {
	N                int
	Slope, Intercept float64
	// SlopeSE and InterceptSE are the standard errors; with two points
	// (no residual degrees of freedom) they are NaN.
	SlopeSE, InterceptSE float64
	// S is the residual standard error sqrt(SSR / (N-2)) (NaN for N = 2).
	S float64
	// MeanX and Sxx (the sum of squared deviations of x) give the
	// prediction's standard error.
	MeanX, Sxx float64
}

// FitLine fits y = a + b·x by least squares, in two passes over centred
// data (float64):
//
//	b = Sxy/Sxx, a = ȳ - b·x̄, s² = Σ(y - a - b·x)²/(n-2),
//	SE(b) = s/√Sxx, SE(a) = s·√(1/n + x̄²/Sxx).
func FitLine(x, y []float64) (Line, error) {
	n := len(x)
	if n != len(y) {
		return Line{}, fmt.Errorf("%w: %d x and %d y", ErrFit, n, len(y))
	}
	if n < 2 {
		return Line{}, fmt.Errorf("%w: %d point(s), need at least 2", ErrFit, n)
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(n)
	my /= float64(n)
	var sxx, sxy float64
	for i := range x {
		dx := x[i] - mx
		sxx += dx * dx
		sxy += dx * (y[i] - my)
	}
	if sxx == 0 {
		return Line{}, fmt.Errorf("%w: all %d points at x = %.4g", ErrFit, n, mx)
	}
	l := Line{N: n, Slope: sxy / sxx, MeanX: mx, Sxx: sxx}
	l.Intercept = my - l.Slope*mx
	l.S, l.SlopeSE, l.InterceptSE = math.NaN(), math.NaN(), math.NaN()
	if n > 2 {
		var ssr float64
		for i := range x {
			e := y[i] - l.Intercept - l.Slope*x[i]
			ssr += e * e
		}
		l.S = math.Sqrt(ssr / float64(n-2))
		l.SlopeSE = l.S / math.Sqrt(sxx)
		l.InterceptSE = l.S * math.Sqrt(1/float64(n)+mx*mx/sxx)
	}
	return l, nil
}

// At is the line's value at x.
func (l Line) At(x float64) float64 { return l.Intercept + l.Slope*x }

// PredictionInterval is the interval that holds a new observation at x
// with probability level (0.95: 95%), under the line's model (independent
// normal errors of one variance):
//
//	a + b·x ± t(1 - (1-level)/2; n-2) · s · √(1 + 1/n + (x - x̄)²/Sxx).
//
// With two points there is no error estimate and no interval.
func (l Line) PredictionInterval(x, level float64) (lo, hi float64, err error) {
	if !(level > 0 && level < 1) {
		return 0, 0, fmt.Errorf("%w: level %v, want between 0 and 1", ErrNoInterval, level)
	}
	if l.N <= 2 {
		return 0, 0, fmt.Errorf("%w: a line through %d points has no error estimate", ErrNoInterval, l.N)
	}
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(l.N - 2)}.Quantile(1 - (1-level)/2)
	d := x - l.MeanX
	half := t * l.S * math.Sqrt(1+1/float64(l.N)+d*d/l.Sxx)
	y := l.At(x)
	return y - half, y + half, nil
}

// Equation writes the line as "gain = a (± se) + b (± se) · gap".
func (l Line) Equation() string {
	if math.IsNaN(l.SlopeSE) {
		return fmt.Sprintf("gain = %.3g + %.3g·gap (n = %d)", l.Intercept, l.Slope, l.N)
	}
	return fmt.Sprintf("gain = %.3g (± %.2g) + %.3g (± %.2g)·gap (n = %d)", l.Intercept, l.InterceptSE, l.Slope, l.SlopeSE, l.N)
}

// Equation writes the line as "gain = a (± se) + b (± se)·gap (G base
// models, P settings)": its n counts the base models it was fitted on.
func (l ClusterLine) Equation() string {
	what := fmt.Sprintf("%d base models, %d settings", l.N, l.Points)
	if math.IsNaN(l.SlopeSE) {
		return fmt.Sprintf("gain = %.3g + %.3g·gap (%s)", l.Intercept, l.Slope, what)
	}
	return fmt.Sprintf("gain = %.3g (± %.2g) + %.3g (± %.2g)·gap (%s)", l.Intercept, l.InterceptSE, l.Slope, l.SlopeSE, what)
}
