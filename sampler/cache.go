package sampler

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"

	"certmix/shards"
)

// cache holds decoded blocks (record batches) up to a byte budget, least
// recently used out first. Concurrent requests for one block share one
// fetch. A block whose bytes fail their checksum is fetched once more, then
// the error names the shard.
type cache struct {
	budget int64

	mu      sync.Mutex
	used    int64
	entries map[blockKey]*entry
	lru     *list.List // of blockKey, most recent at the front

	hits, misses, fetchedBytes, refetches int64
}

type blockKey struct{ src, block int }

type entry struct {
	ready chan struct{} // closed when rows or err is set
	rows  *shards.Rows
	err   error
	size  int64
	elem  *list.Element
}

func newCache(budget int64) *cache {
	return &cache{budget: budget, entries: map[blockKey]*entry{}, lru: list.New()}
}

// fetcher reads one block of a source.
type fetcher func(ctx context.Context, key blockKey, dst *shards.Rows) error

// get returns the block's rows, fetching them if needed.
func (c *cache) get(ctx context.Context, key blockKey, fetch fetcher) (*shards.Rows, error) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		if e.elem != nil {
			c.lru.MoveToFront(e.elem)
		}
		c.hits++
		c.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err != nil {
			return nil, e.err
		}
		return e.rows, nil
	}
	e := &entry{ready: make(chan struct{})}
	c.entries[key] = e
	c.misses++
	c.mu.Unlock()

	rows := &shards.Rows{}
	err := fetch(ctx, key, rows)
	if errors.Is(err, shards.ErrChecksum) {
		c.mu.Lock()
		c.refetches++
		c.mu.Unlock()
		rows.Reset()
		err = fetch(ctx, key, rows) // once more: a flipped bit in transit
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		e.err = err
		delete(c.entries, key)
		close(e.ready)
		if errors.Is(err, shards.ErrChecksum) {
			return nil, fmt.Errorf("checksum failed twice: %w", err)
		}
		return nil, err
	}
	e.rows = rows
	e.size = int64(len(rows.Images) + 10*len(rows.IDs))
	e.elem = c.lru.PushFront(key)
	c.used += e.size
	c.fetchedBytes += e.size
	close(e.ready)
	for c.used > c.budget && c.lru.Len() > 1 {
		old := c.lru.Remove(c.lru.Back()).(blockKey)
		c.used -= c.entries[old].size
		delete(c.entries, old)
	}
	return rows, nil
}

// has reports whether the block is cached or being fetched.
func (c *cache) has(key blockKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[key]
	return ok
}
