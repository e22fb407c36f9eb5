package sampler

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"certmix/internal/testsets"
	"certmix/shards"
)

// TestMixOpen: a mix opens its datasets by URL into the sources of a
// Config, real first; at fraction 0 the generated set is left out; bad
// mixes are refused naming what is wrong.
func TestMixOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	url := func(name string, rows int, base int64) string {
		p := filepath.Join(dir, name)
		st, err := shards.NewLocal(p)
		if err != nil {
			t.Fatal(err)
		}
		testsets.Write(t, st, rows, small, 40, 16, base)
		return p
	}
	real, gen := url("real", 100, 0), url("gen", 300, 1_000_000)
	absent := filepath.Join(dir, "absent")

	srcs, err := Mix{Real: real, Generated: gen, Fraction: 0.7, ReplacementGenerated: true}.Open(ctx, shards.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 2 || srcs[0].Dataset.Manifest.Rows != 100 || srcs[1].Dataset.Manifest.Rows != 300 ||
		math.Abs(srcs[0].Fraction-0.3) > 1e-12 || srcs[1].Fraction != 0.7 || srcs[0].Replacement || !srcs[1].Replacement {
		t.Errorf("sources %+v", srcs)
	}
	it, err := New(ctx, Config{Sources: srcs, Batch: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q := it.Quotas(); len(q) != 2 || q[0] != 3 || q[1] != 7 {
		t.Errorf("quotas %v, want [3 7]", q)
	}
	it.Close()

	// At fraction 0 the generated URL is not even opened.
	srcs, err = Mix{Real: real, Generated: absent, ReplacementReal: true}.Open(ctx, shards.S3Config{})
	if err != nil || len(srcs) != 1 || srcs[0].Fraction != 1 || !srcs[0].Replacement {
		t.Errorf("fraction 0: %+v, %v", srcs, err)
	}

	for _, tc := range []struct {
		name string
		mix  Mix
		want []string
	}{
		{"share above 1", Mix{Real: real, Generated: gen, Fraction: 1.5}, []string{"generated share 1.5 outside [0, 1]"}},
		{"share NaN", Mix{Real: real, Generated: gen, Fraction: math.NaN()}, []string{"generated share NaN"}},
		{"no real set", Mix{Generated: gen, Fraction: 0.5}, []string{"needs a real dataset"}},
		{"no generated set", Mix{Real: real, Fraction: 0.5}, []string{"share of 0.5 needs a generated dataset"}},
		{"real set missing", Mix{Real: absent}, []string{"real dataset", absent, "not a dataset"}},
		{"generated set missing", Mix{Real: real, Generated: absent, Fraction: 0.5}, []string{"generated dataset", absent, "not a dataset"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.mix.Open(ctx, shards.S3Config{})
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
