package nn

import (
	"math"
	"math/big"
	"testing"
)

// pi200 is π to 70 decimal digits.
const pi200 = "3.1415926535897932384626433832795028841971693993751058209749445923078164"

// sinCos200 returns sin and cos of x to about 200 bits (Taylor series; x in
// [0, 2π)).
func sinCos200(x *big.Float) (s, c *big.Float) {
	const prec = 240
	s, c = new(big.Float).SetPrec(prec), new(big.Float).SetPrec(prec).SetInt64(1)
	term := new(big.Float).SetPrec(prec).SetInt64(1) // x^k/k!
	for k := 1; k < 120; k++ {
		term.Mul(term, x)
		term.Quo(term, new(big.Float).SetPrec(prec).SetInt64(int64(k)))
		switch k % 4 {
		case 0:
			c.Add(c, term)
		case 1:
			s.Add(s, term)
		case 2:
			c.Sub(c, term)
		case 3:
			s.Sub(s, term)
		}
	}
	return s, c
}

// TestTwiddleError: every cos and sin of 2π·m/n that unitRoot returns for
// n <= maxLen64 is within rootErr of the exact value (LOT64's τ).
func TestTwiddleError(t *testing.T) {
	pi, _, err := big.ParseFloat(pi200, 10, 240, big.ToNearestEven)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for n := 1; n <= maxLen64; n++ {
		for m := range n {
			x := new(big.Float).SetPrec(240).Mul(pi, big.NewFloat(float64(2*m)))
			x.Quo(x, new(big.Float).SetPrec(240).SetInt64(int64(n)))
			s, c := sinCos200(x)
			gc, gs := unitRoot(m, n)
			for _, p := range [][2]any{{gc, c}, {gs, s}} {
				d := new(big.Float).SetPrec(240).Sub(new(big.Float).SetPrec(240).SetFloat64(p[0].(float64)), p[1].(*big.Float))
				e, _ := d.Float64()
				worst = max(worst, math.Abs(e))
			}
		}
	}
	if worst > rootErr {
		t.Fatalf("largest twiddle error %g = %.2f u, over the bound τ = %.0f u", worst, worst/u64, rootErr/u64)
	}
	t.Logf("largest twiddle error %.2f u (bound %.0f u)", worst/u64, rootErr/u64)
}
