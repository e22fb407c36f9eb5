package sampler

import (
	"math"
	"math/big"
	"slices"
	"strconv"
	"testing"
)

// exactQuotas is the quota rule computed independently of Quotas, in exact
// rational arithmetic on the fractions as written in decimal (0.29 is 29/100,
// not the float64 nearest it): with two sources the second gets floor(b·f)
// and the first the rest; with more, each gets floor(b·f_i) and the images
// left go to the largest remainders, ties to the earlier source. ok is false
// when a source with a non-zero fraction gets no image.
func exactQuotas(b int, fractions []string) (q []int, ok bool) {
	r := make([]*big.Rat, len(fractions))
	q = make([]int, len(fractions))
	floor := func(x *big.Rat) int { return int(new(big.Int).Quo(x.Num(), x.Denom()).Int64()) } // x >= 0
	left := b
	for i, s := range fractions {
		f, good := new(big.Rat).SetString(s)
		if !good {
			panic(s)
		}
		r[i] = f.Mul(f, big.NewRat(int64(b), 1))
		q[i] = floor(r[i])
		left -= q[i]
	}
	if len(fractions) == 2 {
		q[0] = b - q[1]
	} else {
		idx := make([]int, len(fractions))
		for i := range idx {
			idx[i] = i
		}
		rem := func(i int) *big.Rat { return new(big.Rat).Sub(r[i], big.NewRat(int64(q[i]), 1)) }
		slices.SortStableFunc(idx, func(a, c int) int { return -rem(a).Cmp(rem(c)) })
		for _, i := range idx[:left] {
			q[i]++
		}
	}
	for i, s := range fractions {
		if f, _ := new(big.Rat).SetString(s); f.Sign() > 0 && q[i] == 0 {
			return q, false
		}
	}
	return q, true
}

// TestQuotasAreExact compares Quotas with exactQuotas for every batch size
// up to 600 and every two-source fraction of two decimals (0.29 among them:
// 0.29·100 is 28.999999999999996 in float64), and for three sources on a
// grid of two-decimal fractions.
func TestQuotasAreExact(t *testing.T) {
	check := func(b int, dec []string) {
		t.Helper()
		fr := make([]float64, len(dec))
		for i, s := range dec {
			fr[i], _ = strconv.ParseFloat(s, 64)
		}
		want, ok := exactQuotas(b, dec)
		q, err := Quotas(b, fr)
		switch {
		case !ok && err == nil:
			t.Fatalf("b=%d fractions %v: %v, want an error (a source gets no image: %v)", b, dec, q, want)
		case ok && err != nil:
			t.Fatalf("b=%d fractions %v: %v, want %v", b, dec, err, want)
		case ok && !slices.Equal(q, want):
			t.Fatalf("b=%d fractions %v: %v, want %v", b, dec, q, want)
		}
	}
	dec := func(k int) string { return strconv.FormatFloat(float64(k)/100, 'f', 2, 64) }
	for b := 1; b <= 600; b++ {
		for k := 0; k <= 100; k++ {
			check(b, []string{dec(100 - k), dec(k)})
		}
	}
	for _, b := range []int{1, 2, 3, 7, 10, 29, 64, 100, 128, 512} {
		for i := 0; i <= 100; i += 3 {
			for j := 0; i+j <= 100; j += 1 {
				check(b, []string{dec(i), dec(j), dec(100 - i - j)})
			}
		}
	}
	for _, tc := range []struct{ b, real, gen int }{{512, 154, 358}, {256, 77, 179}, {100, 71, 29}} {
		q, _ := Quotas(tc.b, []float64{1 - float64(tc.gen)/float64(tc.b), float64(tc.gen) / float64(tc.b)})
		if q[0] != tc.real || q[1] != tc.gen {
			t.Errorf("b=%d: %v, want %d/%d", tc.b, q, tc.real, tc.gen)
		}
	}
	for _, tc := range []struct{ b, real, gen int }{{512, 154, 358}, {256, 77, 179}} {
		q, _ := Quotas(tc.b, []float64{0.3, 0.7})
		if q[0] != tc.real || q[1] != tc.gen {
			t.Errorf("b=%d: %v, want %d/%d as in the paper", tc.b, q, tc.real, tc.gen)
		}
	}
}

func TestQuotasLargestRemainder(t *testing.T) {
	q, err := Quotas(10, []float64{0.25, 0.25, 0.5})
	if err != nil || q[0]+q[1]+q[2] != 10 || q[2] != 5 || q[0] != 3 || q[1] != 2 {
		t.Errorf("got %v %v, want [3 2 5]", q, err)
	}
}

func TestQuotasRefuse(t *testing.T) {
	for _, tc := range []struct {
		b int
		f []float64
	}{
		{512, []float64{1.2, -0.2}}, {512, []float64{0.5, 0.6}}, {0, []float64{0.3, 0.7}},
		{3, []float64{0.9, 0.1}}, // no room for one generated image
		{512, []float64{math.NaN(), 1}},
	} {
		if _, err := Quotas(tc.b, tc.f); err == nil {
			t.Errorf("Quotas(%d, %v): no error", tc.b, tc.f)
		}
	}
}
