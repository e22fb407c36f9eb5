package sampler

import (
	"math/bits"
	"slices"
	"sync"

	"certmix/shards"
)

// A source's draws form one endless stream of positions p = 0, 1, 2, ...;
// the draws of step s on rank r are positions (s*R + r)*Q ... (s*R + r)*Q + Q-1
// for the source's quota Q and R ranks. The stream runs through cycles of N
// positions (N = the source's rows). Each cycle deals the source's record
// batches ("blocks", about 4,096 rows) in a fresh seeded order and cuts them
// into groups of G consecutive blocks; the positions of a cycle walk the
// groups in that order, each group taking as many positions as it has rows.
// A position inside its group picks a row of the group:
//
//   - without replacement, through a seeded permutation of the group's rows,
//     so each cycle draws every row exactly once;
//   - with replacement, uniformly at random (seeded by the position), so each
//     row has exactly one expected draw per cycle.
//
// So every draw is uniform over the whole set, yet the rows in use at any
// time are those of one group (G blocks, fetched with G range reads), and a
// cycle reads each block once, in order.

// block is one record batch of a dataset.
type block struct {
	shard, batch int
	// rows counts the rows drawn from: all of the record batch's, or those
	// keep lists when some are held out.
	rows  int64
	start int64 // index of its first row in the dataset, in shard order
	// keep lists the record batch's rows that may be drawn, in order, when
	// some of its rows are excluded (Source.Exclude); nil: all.
	keep []int32
}

// layout is how one cycle deals a source's blocks into groups.
type layout struct {
	groupStart []int64 // first position (within the cycle) of each group
	groupEnd   []int64
	blocks     [][]int // block indices of each group
	blockStart [][]int64
}

// order computes the draws of one source. Rows a source excludes are not
// in its blocks: the cycle runs over the rows left, so a cycle without
// replacement still draws each of them exactly once.
type order struct {
	seed uint64
	src  uint64
	// rows counts the rows drawn from (the cycle's length), total the
	// dataset's rows, excluded ones included.
	rows, total  int64
	blocks       []block
	maxBlockRows int64
	group        int
	replacement  bool

	mu      sync.Mutex
	layouts map[int64]*layout // by cycle; a few recent ones
	perms   map[[2]int64][]int32
}

// newOrder lays out the draws of a source of manifest m; exclude holds the
// rows (in shard order, sorted, distinct, in range) never drawn.
func newOrder(seed uint64, src int, m *shards.Manifest, group int, replacement bool, exclude []int64) *order {
	o := &order{seed: seed, src: uint64(src), total: m.Rows, group: group, replacement: replacement,
		layouts: map[int64]*layout{}, perms: map[[2]int64][]int32{}}
	var start int64
	for i, s := range m.Shards {
		for j, b := range s.Batches {
			blk := block{shard: i, batch: j, rows: b.Rows, start: start}
			o.maxBlockRows = max(o.maxBlockRows, b.Rows)
			if len(exclude) > 0 && exclude[0] < start+b.Rows {
				for r := range int32(b.Rows) {
					if len(exclude) > 0 && exclude[0] == start+int64(r) {
						exclude = exclude[1:]
						continue
					}
					blk.keep = append(blk.keep, r)
				}
				blk.rows = int64(len(blk.keep))
			}
			start += b.Rows
			if blk.rows > 0 {
				o.blocks = append(o.blocks, blk)
				o.rows += blk.rows
			}
		}
	}
	return o
}

// draw is one image drawn from a source: block index and row within its
// record batch.
type draw struct {
	block int
	row   int
}

// at returns the draw at stream position p.
func (o *order) at(p int64) draw {
	cycle, q := p/o.rows, p%o.rows
	l := o.layout(cycle)
	g, _ := slices.BinarySearch(l.groupEnd, q+1)
	r := q - l.groupStart[g]
	size := l.groupEnd[g] - l.groupStart[g]
	if o.replacement {
		r = int64(lemire(mix(o.seed, o.src, 0x7265706c /* "repl" */, uint64(p)), uint64(size)))
	} else {
		r = int64(o.perm(cycle, g, int(size))[r])
	}
	k, _ := slices.BinarySearch(l.blockStart[g], r+1)
	k--
	b := l.blocks[g][k]
	row := int(r - l.blockStart[g][k])
	if keep := o.blocks[b].keep; keep != nil {
		row = int(keep[row])
	}
	return draw{block: b, row: row}
}

// groupBlocks returns the blocks of the group that holds position p.
func (o *order) groupBlocks(p int64) []int {
	cycle, q := p/o.rows, p%o.rows
	l := o.layout(cycle)
	g, _ := slices.BinarySearch(l.groupEnd, q+1)
	return l.blocks[g]
}

func (o *order) layout(cycle int64) *layout {
	o.mu.Lock()
	defer o.mu.Unlock()
	if l, ok := o.layouts[cycle]; ok {
		return l
	}
	if len(o.layouts) >= 4 {
		clear(o.layouts)
	}
	idx := make([]int, len(o.blocks))
	for i := range idx {
		idx[i] = i
	}
	shuffle(idx, mix(o.seed, o.src, 0x626c6f63 /* "bloc" */, uint64(cycle)))
	l := &layout{}
	var pos int64
	for lo := 0; lo < len(idx); lo += o.group {
		g := idx[lo:min(lo+o.group, len(idx))]
		starts := make([]int64, len(g))
		var n int64
		for k, b := range g {
			starts[k] = n
			n += o.blocks[b].rows
		}
		l.groupStart = append(l.groupStart, pos)
		pos += n
		l.groupEnd = append(l.groupEnd, pos)
		l.blocks = append(l.blocks, g)
		l.blockStart = append(l.blockStart, starts)
	}
	o.layouts[cycle] = l
	return l
}

// perm returns the seeded permutation of group g's rows in a cycle.
func (o *order) perm(cycle int64, g, size int) []int32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	key := [2]int64{cycle, int64(g)}
	if p, ok := o.perms[key]; ok {
		return p
	}
	if len(o.perms) >= 16 {
		clear(o.perms)
	}
	p := make([]int32, size)
	for i := range p {
		p[i] = int32(i)
	}
	shuffle(p, mix(o.seed, o.src, 0x7065726d /* "perm" */, uint64(cycle)<<20^uint64(g)))
	o.perms[key] = p
	return p
}

// shuffle is a Fisher-Yates shuffle driven by a splitmix64 stream from seed.
func shuffle[T any](s []T, seed uint64) {
	x := seed
	for i := len(s) - 1; i > 0; i-- {
		x += golden
		j := lemire(mix64(x), uint64(i+1))
		s[i], s[j] = s[j], s[i]
	}
}

const golden = 0x9e3779b97f4a7c15

// mix64 is splitmix64's output function, a bijection with good avalanche.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// mix hashes a tuple of words: every random choice of the sampler is one
// such hash of (seed, what, step, rank, ...), never a shared stream, so any
// batch can be computed alone, in any order, on any worker.
func mix(vals ...uint64) uint64 {
	h := uint64(0x63657274)
	for _, v := range vals {
		h = mix64(h ^ mix64(v+golden))
	}
	return h
}

// lemire maps a uniform 64-bit word to [0, n) (bias at most n/2^64).
func lemire(x, n uint64) uint64 {
	hi, _ := bits.Mul64(x, n)
	return hi
}
