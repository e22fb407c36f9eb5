package audit

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"certmix/shards"
)

// Test set and thresholds of the planted-copy tests: fixed here, before
// any copy is planted, and not tuned to what the search finds.
const (
	plantTests = 1000  // test images audited: the first of Fashion-MNIST's test split
	plantTrain = 20000 // real training images the copies hide among
	plantBase  = 1 << 20
)

var plantThresholds = DefaultThresholds

// plantedSet returns the test set, and a dataset of real training images
// with near-copies of known test images planted at known ids.
func plantedSet(t *testing.T, tests, rows, batchRows int) (test, ds *shards.Dataset, plants []plant) {
	t.Helper()
	ib := fmShape.ImageBytes()
	testRows := head(fashionRows(t, "test"), tests, ib)
	train := head(fashionRows(t, "train"), rows, ib)
	rng := rand.New(rand.NewPCG(17, 1))
	// 40 copies of 30 test images (some copied more than once, in
	// different ways), at random places among the training rows.
	for j := range 40 {
		ti := rng.IntN(tests)
		if j >= 30 {
			ti = plants[j-30].test
		}
		p := plant{test: ti, id: plantBase + int64(j), how: copyKinds[j%len(copyKinds)]}
		img := nearCopy(testRows.Image(ti, ib), fmShape, p.how, rng)
		at := rng.IntN(train.Len() + 1)
		train.IDs = slices.Insert(train.IDs, at, p.id)
		train.Labels = slices.Insert(train.Labels, at, testRows.Labels[ti])
		train.Images = slices.Insert(train.Images, at*ib, img...)
		plants = append(plants, p)
	}
	test = writeDataset(t, testRows, fmShape, shards.KindReal, 1000, 500)
	ds = writeDataset(t, train, fmShape, shards.KindGenerated, 8192, batchRows)
	return test, ds, plants
}

// Every planted copy is found and flagged, whichever way it was made; the
// rate at which real training images are flagged is logged.
func TestPlantedCopiesAreFound(t *testing.T) {
	test, ds, plants := plantedSet(t, plantTests, plantTrain, 4096)
	res, err := Search(context.Background(), test, []*shards.Dataset{ds}, Options{Shifts: 1})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Judge(res, plantThresholds)
	if err != nil {
		t.Fatal(err)
	}
	d := rep.Datasets[0]
	flagged := map[[2]int64]Flag{}
	for _, f := range d.Flagged {
		flagged[[2]int64{int64(f.Test), f.Match.ID}] = f
	}
	for _, p := range plants {
		f, ok := flagged[[2]int64{int64(p.test), p.id}]
		if !ok {
			var near []Neighbour
			if ns := d.Nearest[p.test]; len(ns) > 0 {
				near = ns
			}
			t.Errorf("copy %d (%s) of test image %d not flagged; its nearest: %+v", p.id, p.how, p.test, near)
			continue
		}
		t.Logf("copy %d (%-16s) of test %4d: dist %.4f ratio %.3f variant %s", p.id, p.how, p.test, f.Match.Dist, f.Ratio, f.Match.Variant)
	}
	var other int
	otherTests := map[int]bool{}
	for _, f := range d.Flagged {
		if f.Match.ID < plantBase {
			other++
			otherTests[f.Test] = true
		}
	}
	t.Logf("besides the %d planted copies, %d pairs with real training images flagged: %d of %d test images (%.2f%%); median nearest distance %.4f",
		len(plants), other, len(otherTests), plantTests, 100*float64(len(otherTests))/plantTests, d.MedianNearest)
	if len(otherTests) > plantTests/20 {
		t.Errorf("%d of %d test images flagged against real training images: the thresholds flag far more than near-copies", len(otherTests), plantTests)
	}
}

// The filter finds the exact nearest neighbour, by brute force over every
// pair, for at least 99% of a sample of test images.
func TestFilterRecall(t *testing.T) {
	const tests, rows = 200, 8000
	ib := fmShape.ImageBytes()
	testRows := head(fashionRows(t, "test"), tests, ib)
	train := head(fashionRows(t, "train"), rows, ib)
	test := writeDataset(t, testRows, fmShape, shards.KindReal, 1000, 500)
	ds := writeDataset(t, train, fmShape, shards.KindReal, 4096, 2048)
	for _, norm := range []string{NormNone, NormUnit} {
		res, err := Search(context.Background(), test, []*shards.Dataset{ds}, Options{Normalize: norm, Neighbours: 1})
		if err != nil {
			t.Fatal(err)
		}
		// Brute force: every test image and its mirror image against every row.
		dn := make([]float32, rows*ib)
		for j := range rows {
			normalize(dn[j*ib:(j+1)*ib], train.Image(j, ib), norm)
		}
		tn, tv := make([]float32, ib), make([][]float32, 2)
		hits := 0
		for i := range tests {
			normalize(tn, testRows.Image(i, ib), norm)
			for v, vr := range variants(0) {
				tv[v] = make([]float32, ib)
				vr.apply(tv[v], tn, fmShape)
			}
			best, bestID := float32(math.Inf(1)), int64(-1)
			for j := range rows {
				row := dn[j*ib : (j+1)*ib]
				for _, q := range tv {
					var s float32
					for k, x := range row {
						e := q[k] - x
						s += e * e
					}
					if s < best {
						best, bestID = s, train.IDs[j]
					}
				}
			}
			got := res.Datasets[0].Neighbours[i]
			// The same row, or one exactly as far (float32 sums differ in the last bits).
			if len(got) > 0 && (got[0].ID == bestID || math.Abs(got[0].Dist-math.Sqrt(float64(best)/float64(ib))) < 1e-6) {
				hits++
			}
		}
		recall := float64(hits) / tests
		t.Logf("normalize %s: filter recall of the exact nearest neighbour %.3f (%d of %d)", norm, recall, hits, tests)
		if recall < 0.99 {
			t.Errorf("normalize %s: recall %.3f < 0.99", norm, recall)
		}
	}
}

// Parts searched apart and merged give the result of the unsplit search,
// in whatever order the part files come.
func TestPartsMergeToTheWhole(t *testing.T) {
	test, ds, _ := plantedSet(t, 200, 4000, 500)
	ctx := context.Background()
	for _, shifts := range []int{0, 1} {
		whole, err := Search(ctx, test, []*shards.Dataset{ds, ds}, Options{Shifts: shifts, Pairs: 16})
		if err != nil {
			t.Fatal(err)
		}
		var parts []*Result
		for i := range 3 {
			p, err := Search(ctx, test, []*shards.Dataset{ds, ds}, Options{Shifts: shifts, Pairs: 16, Part: Part{Index: 2 - i, Count: 3}})
			if err != nil {
				t.Fatal(err)
			}
			if p.Datasets[0].Scanned == 0 || p.Datasets[0].Scanned == ds.Manifest.Rows {
				t.Fatalf("part %d scanned %d of %d rows", 2-i, p.Datasets[0].Scanned, ds.Manifest.Rows)
			}
			// Through the part file, as between machines.
			path := t.TempDir() + "/part.json"
			if err := p.WriteFile(path); err != nil {
				t.Fatal(err)
			}
			if parts = append(parts, nil); true {
				if parts[i], err = ReadResult(path); err != nil {
					t.Fatal(err)
				}
			}
		}
		merged, err := Merge(parts)
		if err != nil {
			t.Fatal(err)
		}
		for k := range whole.Datasets {
			w, m := whole.Datasets[k], merged.Datasets[k]
			if m.Scanned != w.Scanned || !slices.Equal(m.Parts, []int{0, 1, 2}) {
				t.Errorf("shifts %d dataset %d: merged scanned %d rows in parts %v, want %d in [0 1 2]", shifts, k, m.Scanned, m.Parts, w.Scanned)
			}
			if !reflect.DeepEqual(m.Neighbours, w.Neighbours) {
				t.Errorf("shifts %d dataset %d: merged neighbours differ from the unsplit search", shifts, k)
			}
			if !reflect.DeepEqual(m.Pairs, w.Pairs) {
				t.Errorf("shifts %d dataset %d: merged pairs differ from the unsplit search", shifts, k)
			}
		}
		a, err := Judge(whole, DefaultThresholds)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Judge(merged, DefaultThresholds)
		if err != nil {
			t.Fatal(err)
		}
		for k := range a.Datasets {
			da, db := a.Datasets[k], b.Datasets[k]
			if len(da.Flagged) == 0 {
				t.Errorf("shifts %d dataset %d: nothing flagged; the comparison of flags checks nothing", shifts, k)
			}
			if da.MedianNearest != db.MedianNearest || !reflect.DeepEqual(da.Flagged, db.Flagged) || !slices.Equal(da.FlaggedIDs, db.FlaggedIDs) {
				t.Errorf("shifts %d dataset %d: the merged parts' verdict differs from the unsplit one: median %v vs %v, %d vs %d flags",
					shifts, k, db.MedianNearest, da.MedianNearest, len(db.Flagged), len(da.Flagged))
			}
		}
		if _, err := Judge(parts[0], DefaultThresholds); err == nil {
			t.Errorf("judging one part of three: no error, want a refusal (the median needs every row)")
		}
		if _, err := Merge([]*Result{parts[0], parts[0]}); err == nil {
			t.Errorf("merging one part twice: no error")
		}
	}
}
