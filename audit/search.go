// Package audit finds near-copies of test images in other datasets:
// generated images that reproduce a test image (a diffusion model trained
// on the training set can reproduce test images that have near-duplicates
// there), or training images that duplicate one. Training on them inflates
// certified test accuracy without any robustness.
//
// For every test image and every dataset, Search finds the nearest rows by
// l2 distance on the (optionally normalised) pixels, comparing the test
// image, its horizontal mirror image and, with Shifts 1, both moved by one
// pixel. A fast filter projects every image onto a coarse grid of cells (a
// projection whose distances never exceed the true ones) and searches with
// matrix products (blas32 Sgemm on OpenBLAS), keeping the closest
// candidates of each record batch per test image; an exact comparison on
// the full images ranks them. The datasets stream record batch by record
// batch, so memory does not grow with their size; the test set is held in
// memory. Report turns a Result into flags, a table, a grid of pairs, a
// histogram and JSON.
package audit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"certmix/shards"
)

// Options control a search. Zero fields take the defaults.
type Options struct {
	Normalize  string // NormNone (default), NormMean or NormUnit
	Shifts     int    // 0: the image and its mirror image; 1: also each moved by one pixel
	Cells      int    // the filter's grid: about Cells × Cells cells (default 8)
	Candidates int    // filter candidates per test image and record batch, ranked exactly (default 8)
	Neighbours int    // nearest rows kept per test image and dataset (default 3)
	Pairs      int    // closest pairs whose pixels are kept for the grid, per dataset (default 64)
	Part       Part   // the share of every dataset's rows to search (default all)
	Workers    int    // goroutines (default GOMAXPROCS)
	// Progress, if not nil, is called after each record batch with the
	// rows searched and the rows to search, over all datasets.
	Progress func(done, total int64)
}

// Check reports whether the options are valid, before any data is read.
func (o Options) Check() error { return o.defaults() }

func (o *Options) defaults() error {
	if o.Normalize == "" {
		o.Normalize = NormNone
	}
	if o.Cells == 0 {
		o.Cells = 8
	}
	if o.Candidates == 0 {
		o.Candidates = 32
	}
	if o.Neighbours == 0 {
		o.Neighbours = 3
	}
	if o.Pairs == 0 {
		o.Pairs = 64
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	switch {
	case o.Normalize != NormNone && o.Normalize != NormMean && o.Normalize != NormUnit:
		return fmt.Errorf("normalisation %q: want %s, %s or %s", o.Normalize, NormNone, NormMean, NormUnit)
	case o.Shifts != 0 && o.Shifts != 1:
		return fmt.Errorf("shifts %d: want 0 or 1", o.Shifts)
	case o.Cells < 1 || o.Cells > 64:
		return fmt.Errorf("cells %d: want 1..64", o.Cells)
	case o.Candidates < 1 || o.Candidates > 1024:
		return fmt.Errorf("candidates %d: want 1..1024", o.Candidates)
	case o.Neighbours < 1 || o.Neighbours > 1024:
		return fmt.Errorf("neighbours %d: want 1..1024", o.Neighbours)
	case o.Pairs < 0:
		return fmt.Errorf("pairs %d: want at least 0", o.Pairs)
	case o.Part.Count < 0 || o.Part.Index < 0 || o.Part.Index >= max(o.Part.Count, 1):
		return fmt.Errorf("part %d of %d: want 0 ≤ index < count", o.Part.Index, o.Part.Count)
	}
	return nil
}

// tileTests is the number of test images one worker takes at a time: their
// filter distances to a record batch are one matrix product.
const tileTests = 64

// Slack of the filter's pruning: a candidate is ranked exactly unless its
// filter distance exceeds the test image's current worst kept distance by
// this factor. Without shifts the filter's distance is a lower bound (the
// slack only covers float32 rounding); with shifts the filter compares a
// moved image whose new edge repeats the old one while the exact distance
// skips that edge, so the bound holds only approximately.
const (
	slackPlain  = 1e-3
	slackShifts = 0.1
)

// Search audits the test set against each dataset; see the package doc.
func Search(ctx context.Context, test *shards.Dataset, datasets []*shards.Dataset, opts Options) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if len(datasets) == 0 {
		return nil, errors.New("no datasets to audit against")
	}
	shape := test.Manifest.Shape
	for _, d := range datasets {
		s := d.Manifest.Shape
		if s.Height != shape.Height || s.Width != shape.Width || s.Channels != shape.Channels {
			return nil, fmt.Errorf("%s holds %dx%dx%d images, the test set %s holds %dx%dx%d: nothing to compare",
				d, s.Height, s.Width, s.Channels, test, shape.Height, shape.Width, shape.Channels)
		}
	}
	s, err := newSearcher(ctx, test, opts)
	if err != nil {
		return nil, err
	}
	res := &Result{Version: ResultVersion, Test: s.testSet,
		Settings: Settings{Normalize: opts.Normalize, Shifts: opts.Shifts, Cells: opts.Cells,
			Candidates: opts.Candidates, Neighbours: opts.Neighbours, Pairs: opts.Pairs}}
	var total, done int64
	plans := make([][]batchRef, len(datasets))
	for k, d := range datasets {
		plans[k] = opts.Part.batches(d.Manifest)
		for _, b := range plans[k] {
			total += b.rows
		}
	}
	progress := func(n int64) {
		done += n
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	progress(0)
	for k, d := range datasets {
		dr, err := s.dataset(ctx, d, plans[k], progress)
		if err != nil {
			return nil, err
		}
		res.Datasets = append(res.Datasets, *dr)
	}
	return res, nil
}

// searcher holds the test set, ready to compare: normalised pixels and the
// filter's projections of every variant.
type searcher struct {
	opts    Options
	shape   shards.Shape
	n       int // values per image
	testSet TestSet
	pixels  []byte    // test images, uint8
	norm    []float32 // test images, normalised
	mirror  []float32 // their mirror images
	vars    []variant
	proj    *projection
	// q holds a row of width proj.dim+2 per test image i and variant v
	// (row i*len(vars)+v): the projection, the residual's norm r and 1;
	// a dataset row's is the projection, its residual's norm and −|b|²/2.
	// Their product is ⟨Pa, Pb⟩ + ra·rb − |b|²/2, so that |a|² − 2·product
	// is the filter's distance |Pa − Pb|² + (ra − rb)² (see
	// projection.apply), with one matrix product and no other work per pair.
	q     []float32
	qa    []float32 // |a|² of each row of q
	slack float64
}

func newSearcher(ctx context.Context, test *shards.Dataset, opts Options) (*searcher, error) {
	m := test.Manifest
	s := &searcher{opts: opts, shape: m.Shape, n: m.ImageBytes(), vars: variants(opts.Shifts),
		proj: newProjection(m.Shape, opts.Cells), slack: slackPlain}
	if opts.Shifts > 0 {
		s.slack = slackShifts
	}
	var rows shards.Rows
	for i := range m.Shards {
		var part shards.Rows
		if err := test.ReadShard(ctx, i, &part); err != nil {
			return nil, fmt.Errorf("test set: %w", err)
		}
		rows.IDs = append(rows.IDs, part.IDs...)
		rows.Labels = append(rows.Labels, part.Labels...)
		rows.Images = append(rows.Images, part.Images...)
	}
	s.testSet = TestSet{URL: test.String(), Name: m.Name, Shape: m.Shape, IDs: rows.IDs, Labels: rows.Labels}
	s.pixels = rows.Images
	t, nv, dim := rows.Len(), len(s.vars), s.proj.dim
	s.norm = make([]float32, t*s.n)
	s.mirror = make([]float32, t*s.n)
	s.q = make([]float32, t*nv*(dim+2))
	s.qa = make([]float32, t*nv)
	parallel(opts.Workers, t, func(lo, hi int) {
		buf := make([]float32, s.n)
		for i := lo; i < hi; i++ {
			img := s.norm[i*s.n : (i+1)*s.n]
			normalize(img, s.pixels[i*s.n:(i+1)*s.n], opts.Normalize)
			variant{flip: true}.apply(s.mirror[i*s.n:(i+1)*s.n], img, s.shape)
			for v, vr := range s.vars {
				vr.apply(buf, img, s.shape)
				r := i*nv + v
				row := s.q[r*(dim+2) : (r+1)*(dim+2)]
				n2, res := s.proj.apply(row[:dim], buf)
				row[dim], row[dim+1] = res, 1
				s.qa[r] = n2 + res*res
			}
		}
	})
	return s, nil
}

// parallel runs f over [0, n) split into one contiguous range per worker.
func parallel(workers, n int, f func(lo, hi int)) {
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		if lo < hi {
			wg.Add(1)
			go func() { defer wg.Done(); f(lo, hi) }()
		}
	}
	wg.Wait()
}

// kept is one neighbour found so far: the squared distance scaled to the
// whole image, the row and the variant.
type kept struct {
	d2    float64
	id    int64
	label int16
	v     int
}

// datasetState is what a search keeps per test image for one dataset.
type datasetState struct {
	near [][]kept // per test image, closest first (ties by id)
	pix  []byte   // pixels of each test image's nearest row so far
}

// worst is the squared distance a new neighbour of test i must beat to be
// kept: infinite while the list is not full.
func (st *datasetState) worst(i, k int) float64 {
	if len(st.near[i]) < k {
		return math.Inf(1)
	}
	return st.near[i][k-1].d2
}

// insert keeps c among the k nearest of test i; it returns whether c is
// now the nearest.
func (st *datasetState) insert(i, k int, c kept) bool {
	ns := st.near[i]
	pos, _ := slices.BinarySearchFunc(ns, c, func(a, b kept) int {
		if a.d2 != b.d2 {
			if a.d2 < b.d2 {
				return -1
			}
			return 1
		}
		return int(a.id - b.id)
	})
	if pos >= k {
		return false
	}
	ns = slices.Insert(ns, pos, c)
	st.near[i] = ns[:min(len(ns), k)]
	return pos == 0
}

// batch is one record batch read from a dataset.
type batch struct {
	rows shards.Rows
	err  error
}

// dataset searches one dataset's batches of this part.
func (s *searcher) dataset(ctx context.Context, d *shards.Dataset, plan []batchRef, progress func(int64)) (*DatasetResult, error) {
	t := len(s.testSet.IDs)
	st := &datasetState{near: make([][]kept, t), pix: make([]byte, t*s.n)}
	g, gctx := errgroup.WithContext(ctx)
	batches := make(chan *shards.Rows, 1) // one read ahead while one is searched
	g.Go(func() error {
		defer close(batches)
		for _, b := range plan {
			r := new(shards.Rows) // ReadBatch may share the fetched bytes: a fresh Rows per batch
			if err := d.ReadBatch(gctx, b.shard, b.batch, r); err != nil {
				return fmt.Errorf("shard %d: %w", b.shard, err)
			}
			select {
			case batches <- r:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	g.Go(func() error {
		w := s.newWork()
		for r := range batches {
			if err := gctx.Err(); err != nil {
				return err
			}
			s.searchBatch(r, st, w)
			progress(int64(r.Len()))
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("audit against %s: %w", d, err)
	}
	p := s.opts.Part
	dr := &DatasetResult{URL: d.String(), Name: d.Manifest.Name, Kind: d.Manifest.Kind, Rows: d.Manifest.Rows,
		PartCount: max(p.Count, 1), Parts: []int{p.Index}, Neighbours: make([][]Neighbour, t)}
	for _, b := range plan {
		dr.Scanned += b.rows
	}
	var pairs []Pair
	for i, ns := range st.near {
		dr.Neighbours[i] = make([]Neighbour, len(ns))
		for j, c := range ns {
			dr.Neighbours[i][j] = Neighbour{ID: c.id, Label: c.label, Dist: math.Sqrt(c.d2 / float64(s.n)), Variant: s.vars[c.v].String()}
		}
		if len(ns) > 0 {
			pairs = append(pairs, Pair{Test: i, ID: ns[0].id})
		}
	}
	dr.Pairs = closestPairs(pairs, dr.Neighbours, s.opts.Pairs)
	for k := range dr.Pairs {
		i := dr.Pairs[k].Test
		dr.Pairs[k].TestPixels = slices.Clone(s.pixels[i*s.n : (i+1)*s.n])
		dr.Pairs[k].MatchPixels = slices.Clone(st.pix[i*s.n : (i+1)*s.n])
	}
	return dr, nil
}

// work holds the buffers of a batch's search, reused across batches.
type work struct {
	x     []float32   // the batch's rows as q's counterparts: projection, residual norm, −|b|²/2
	xmax  float32     // the largest |b|² of the batch
	xnorm []float32   // the batch's rows, normalised, for the exact comparisons
	tiles []*tileWork // one per worker
}

// tileWork is one worker's buffers.
type tileWork struct {
	g    []float32 // tile × batch products
	f    []float32 // one test image's filter distances to the batch
	cand []int32
	cval []float32
}

func (s *searcher) newWork() *work {
	w := &work{}
	for range s.opts.Workers {
		w.tiles = append(w.tiles, &tileWork{
			cand: make([]int32, 0, s.opts.Candidates), cval: make([]float32, 0, s.opts.Candidates)})
	}
	return w
}

// searchBatch compares every test image with the rows of one batch and
// updates the neighbours kept. Test images are split into tiles, one tile
// per worker at a time; each test image is touched by one worker only, and
// the result does not depend on the number of workers.
func (s *searcher) searchBatch(r *shards.Rows, st *datasetState, w *work) {
	b, dim := r.Len(), s.proj.dim
	w.x = slices.Grow(w.x[:0], b*(dim+2))[:b*(dim+2)]
	w.xnorm = slices.Grow(w.xnorm[:0], b*s.n)[:b*s.n]
	var mu sync.Mutex
	w.xmax = 0
	parallel(s.opts.Workers, b, func(lo, hi int) {
		var xmax float32
		for j := lo; j < hi; j++ {
			buf := w.xnorm[j*s.n : (j+1)*s.n]
			normalize(buf, r.Image(j, s.n), s.opts.Normalize)
			row := w.x[j*(dim+2) : (j+1)*(dim+2)]
			n2, res := s.proj.apply(row[:dim], buf)
			row[dim], row[dim+1] = res, -(n2+res*res)/2
			xmax = max(xmax, n2+res*res)
		}
		mu.Lock()
		w.xmax = max(w.xmax, xmax)
		mu.Unlock()
	})
	t := len(s.testSet.IDs)
	tiles := (t + tileTests - 1) / tileTests
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, tw := range w.tiles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= tiles {
					return
				}
				s.searchTile(r, st, w, tw, k*tileTests, min((k+1)*tileTests, t))
			}
		}()
	}
	wg.Wait()
}

// searchTile handles test images [lo, hi) against the batch.
func (s *searcher) searchTile(r *shards.Rows, st *datasetState, w *work, tw *tileWork, lo, hi int) {
	b, dim, nv := r.Len(), s.proj.dim+2, len(s.vars)
	m := (hi - lo) * nv
	tw.g = slices.Grow(tw.g[:0], m*b)[:m*b]
	tw.f = slices.Grow(tw.f[:0], b)[:b]
	// G = Q_tile · Xᵀ: row i*nv+v holds test i, variant v against every row.
	blas32.Gemm(blas.NoTrans, blas.Trans, 1,
		blas32.General{Rows: m, Cols: dim, Stride: dim, Data: s.q[lo*nv*dim : hi*nv*dim]},
		blas32.General{Rows: b, Cols: dim, Stride: dim, Data: w.x},
		0, blas32.General{Rows: m, Cols: b, Stride: b, Data: tw.g})
	k, kc := s.opts.Neighbours, s.opts.Candidates
	for i := lo; i < hi; i++ {
		// f[j]: the filter's squared distance, least over variants.
		f := tw.f
		var amax float32
		for v := range nv {
			row := (i-lo)*nv + v
			a := s.qa[i*nv+v]
			amax = max(amax, a)
			g := tw.g[row*b : (row+1)*b]
			if v == 0 {
				for j, gj := range g {
					f[j] = a - 2*gj
				}
				continue
			}
			for j, gj := range g {
				if d := a - 2*gj; d < f[j] {
					f[j] = d
				}
			}
		}
		// A margin for float32 rounding in the product keeps the filter's
		// distance, less the margin, a lower bound.
		margin := 1e-5 * (amax + w.xmax)
		worst := st.worst(i, k)
		limit := float32(min(worst*(1+s.slack), math.MaxFloat32)) + margin
		// The kc rows of smallest filter distance under the limit, in order.
		cand, cval := tw.cand[:0], tw.cval[:0]
		for j, d := range f {
			if d > limit {
				continue
			}
			pos := len(cval)
			for pos > 0 && cval[pos-1] > d {
				pos--
			}
			if pos >= kc {
				continue
			}
			if len(cval) < kc {
				cand, cval = append(cand, 0), append(cval, 0)
			}
			copy(cand[pos+1:], cand[pos:])
			copy(cval[pos+1:], cval[pos:])
			cand[pos], cval[pos] = int32(j), d
			if len(cval) == kc {
				limit = min(limit, cval[kc-1])
			}
		}
		tw.cand, tw.cval = cand, cval
		for c, j := range cand {
			if float64(cval[c]-margin) > worst*(1+s.slack) {
				break
			}
			s.rank(r, st, w, i, int(j), worst)
			worst = st.worst(i, k)
		}
	}
}

// rank computes the exact distance between test image i and row j of the
// batch, over every variant, and keeps the row if it is among the nearest.
func (s *searcher) rank(r *shards.Rows, st *datasetState, w *work, i, j int, worst float64) {
	t, d := s.norm[i*s.n:(i+1)*s.n], w.xnorm[j*s.n:(j+1)*s.n]
	m := s.mirror[i*s.n : (i+1)*s.n]
	best, bestV := math.Inf(1), -1
	for v, vr := range s.vars {
		t := t
		if vr.flip {
			t = m
		}
		// A distance above min(best, worst) is of no use: exactD2 may stop early.
		if d := exactD2(t, d, vr, s.shape, min(best, worst)); d < best {
			best, bestV = d, v
		}
	}
	if bestV < 0 || best > worst {
		return
	}
	if st.insert(i, s.opts.Neighbours, kept{d2: best, id: r.IDs[j], label: r.Labels[j], v: bestV}) {
		copy(st.pix[i*s.n:(i+1)*s.n], r.Image(j, s.n))
	}
}
