package pipeline

import "math"

// The order of a build is one seeded permutation of the source: every row id
// gets a 64-bit key, rows are written in ascending key order, and a take of
// N rows keeps the N smallest keys. So with one seed a smaller take is
// exactly the first rows of a larger one (1M inside 5M inside 10M), and
// which rows are taken is decided by ids alone, before any pixel is read.
//
// The key is the splitmix64 output function of a seeded Weyl sequence: a
// bijection of the id, so keys never tie, and a mixer that passes BigCrush,
// so the order is a uniform random permutation for all practical purposes.

const golden = 0x9e3779b97f4a7c15

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// order maps row ids to sort keys.
type order struct {
	shuffle bool
	base    uint64
}

func newOrder(shuffle bool, seed uint64) order {
	return order{shuffle: shuffle, base: mix64(seed ^ 0x63657274 /* "cert" */)}
}

func (o order) key(id int64) uint64 {
	if !o.shuffle {
		return uint64(id)
	}
	return mix64(o.base + uint64(id+1)*golden)
}

// threshold returns the n-th smallest key among ids 0..m-1, so that exactly n
// ids have key <= threshold. It selects by radix, 16 bits per pass over the
// ids, in constant memory whatever m.
func (o order) threshold(m, n int64) uint64 {
	if n >= m {
		return math.MaxUint64
	}
	if !o.shuffle {
		return uint64(n - 1)
	}
	var prefix, fixed uint64
	rank := n // 1-based rank of the key sought among those matching prefix
	hist := make([]int64, 1<<16)
	for shift := 48; shift >= 0; shift -= 16 {
		clear(hist)
		for id := range m {
			if k := o.key(id); k&fixed == prefix {
				hist[(k>>shift)&0xffff]++
			}
		}
		var d uint64
		for ; rank > hist[d]; d++ {
			rank -= hist[d]
		}
		prefix |= d << shift
		fixed |= 0xffff << shift
	}
	return prefix
}
