package sampler

// Stats accounts for the images of one epoch, as the consumer receives them.
type Stats struct {
	Epoch int64
	Steps int64
	// Per source: images drawn, and distinct images among them (an image
	// drawn twice counts once).
	Drawn  []int64
	Unique []int64

	seen [][]uint64 // per source, a bitmap of rows drawn this epoch
}

// Fraction returns the achieved share of source i among the images drawn.
func (s *Stats) Fraction(i int) float64 {
	var all int64
	for _, d := range s.Drawn {
		all += d
	}
	if all == 0 {
		return 0
	}
	return float64(s.Drawn[i]) / float64(all)
}

func (it *Iterator) newStats(epoch int64) *Stats {
	s := &Stats{Epoch: epoch, Drawn: make([]int64, len(it.orders)), Unique: make([]int64, len(it.orders))}
	for _, o := range it.orders {
		s.seen = append(s.seen, make([]uint64, (o.total+63)/64))
	}
	return s
}

// Stats returns the accounting of the epoch of the last batch returned, so far.
func (it *Iterator) Stats() Stats { return it.stats.copy() }

// LastEpoch returns the accounting of the last completed epoch (complete as
// soon as its last batch is returned), or nil.
func (it *Iterator) LastEpoch() *Stats { return it.lastEpoch }

func (s *Stats) copy() Stats {
	c := *s
	c.Drawn, c.Unique, c.seen = append([]int64(nil), s.Drawn...), append([]int64(nil), s.Unique...), nil
	return c
}

// account adds the draws of the batch of one step to the epoch's stats.
func (it *Iterator) account(b *Batch) {
	it.countStep(b.Step)
}

// countStep adds the draws of step to the stats, starting a new epoch when
// the step is the first of one. The draws are recomputed from the order (no
// image is read), so that a resumed iterator can replay its epoch.
func (it *Iterator) countStep(step int64) {
	if e := step / it.stepsPer; e != it.stats.Epoch {
		it.stats = it.newStats(e)
	}
	s := it.stats
	s.Steps++
	for src, q := range it.quotas {
		o := it.orders[src]
		base := (step*int64(it.cfg.WorldSize) + int64(it.cfg.Rank)) * int64(q)
		for j := range int64(q) {
			d := o.at(base + j)
			row := o.blocks[d.block].start + int64(d.row)
			w, bit := row/64, uint64(1)<<(row%64)
			if s.seen[src][w]&bit == 0 {
				s.seen[src][w] |= bit
				s.Unique[src]++
			}
			s.Drawn[src]++
		}
	}
	if (step+1)%it.stepsPer == 0 {
		last := s.copy()
		it.lastEpoch = &last
	}
}

// replayStats counts, after a resume, the steps before step of the epoch of
// the last batch consumed, so that Stats reads as if there had been no stop.
func (it *Iterator) replayStats(step int64) {
	if step == 0 {
		return
	}
	epoch := (step - 1) / it.stepsPer
	it.stats = it.newStats(epoch)
	for s := epoch * it.stepsPer; s < step; s++ {
		it.countStep(s)
	}
}

// IOStats counts what an iterator read, for monitoring.
type IOStats struct {
	CacheHits    int64 // record batches found in the cache
	CacheMisses  int64 // record batches fetched from the store
	FetchedBytes int64 // decoded bytes of the record batches fetched
	Refetches    int64 // record batches fetched again after a checksum mismatch
	Queued       int   // batches made ahead, waiting for Next
}

// IOStats returns the iterator's I/O counters so far.
func (it *Iterator) IOStats() IOStats {
	c := it.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	return IOStats{CacheHits: c.hits, CacheMisses: c.misses, FetchedBytes: c.fetchedBytes, Refetches: c.refetches, Queued: len(it.pending)}
}
