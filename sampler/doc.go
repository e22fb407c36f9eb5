// Package sampler streams training batches that mix several datasets in fixed
// fractions, e.g. 30% real and 70% diffusion-generated images, from sharded
// datasets on local disk or S3.
//
// # Guarantees
//
// Exact ratio. Every batch on every rank holds exactly floor(B*f) generated
// and B - floor(B*f) real images (the paper's rule: 154/358 at B=512,
// f=0.7), not only on average and not only per global batch: Batch is the
// batch of one rank. With more than two sources, largest remainder. See
// Quotas; TestExactCountsPerBatchAndRank checks B = 1..600.
//
// Deterministic. Every random choice is a hash of (seed, source, step, rank,
// slot), never a shared stream, so a batch depends on the configuration and
// its step alone: the same configuration gives byte-identical batches
// whatever the number of workers, the prefetch depth or the cache size
// (TestSameBatchesWhateverPrefetchAndWorkers), and local or S3 copies of the
// data give the same batches (TestS3AndLocalGiveTheSameBatches).
//
// Resumable. State is a small JSON value (seed, step, the sources' manifest
// checksums and fractions); New continues from it with exactly the batches
// an uninterrupted run would have produced, mid-epoch included
// (TestResumeEqualsUninterrupted). A state of other data is refused.
//
// Paired sweeps. A source's draws form one stream of positions, consumed Q
// at a time (Q its quota); the real stream does not depend on f or on the
// generated set, so changing the ratio changes only the generated part
// (TestPairedSweeps).
//
// Memory bound. Decoded record batches live in an LRU cache of CacheBytes
// (default 256 MiB); besides that the iterator holds Prefetch batches and
// one small layout per source (a few ints per record batch), whatever the
// datasets' sizes. Measured: 650 MiB peak RSS with 1M and with 5M generated
// images (see the README).
//
// # Access pattern and its statistical effect
//
// Drawing 358 images uniformly from 10M at every step would mean 358 random
// 3-KB reads per step. Instead the unit of I/O is a record batch ("block",
// 4,096 rows, one range read of about 12 MiB, checksummed). Each source's
// stream of positions runs through cycles of N positions (N its rows); each
// cycle deals the blocks in a fresh seeded order and cuts them into groups of
// GroupBlocks (default 4) blocks; a cycle walks the groups in order, each
// group taking as many positions as it has rows. A position picks a row of
// its group: without replacement through a seeded permutation of the group's
// rows (so a cycle draws every row exactly once: TestRealCoversTheSetOncePerCycle),
// with replacement uniformly (so every row has exactly one expected draw per
// cycle: TestGeneratedDrawsAreUniform). On the wire, a cycle reads every
// block once, in order, and the blocks of the next group are fetched ahead
// (Lookahead steps) while the current one is drawn from.
//
// The marginal distribution of every draw is exactly uniform over the set.
// The difference from independent uniform draws over the whole set is one of
// correlation in time: the images of a group (16,384 rows) are drawn within
// the same few dozen steps. Since shardtool build writes rows in a seeded
// random permutation, a group is itself a uniform random subset of the set,
// so no class or source order leaks into a batch; what remains is that two
// images of one block meet in nearby batches more often than by chance, the
// effect of a shuffle buffer of 16,384 images (MosaicML's py1b shuffle
// with a block of that size behaves the same way). With replacement, the
// share of distinct images among N draws per cycle is 1 - 1/e, as for
// independent draws.
//
// The real set without replacement continues its permutation across epochs
// (an epoch of the paper's length, ceil(N_real/B) steps, uses only 30% of
// the real set at f=0.7), so every real image is seen once per cycle; the
// paper's loader instead draws a fresh permutation every epoch and leaves
// the rest unseen.
package sampler
