package auth

import (
	"container/list"
	"time"
)

// cacheKey is HMAC-SHA256 under the Verifier's secret of the user name,
// password, credential version and stored hash. Without the secret it
// cannot be used to test password guesses, and it never contains the
// password itself.
type cacheKey [32]byte

// verifyCache remembers successful verifications for a while. It holds at
// most max entries and evicts the least recently used one when full, so a
// storm of distinct credentials costs bounded memory: about 150 bytes per
// entry (an estimate: key, list element and map slot on amd64).
//
// It is not safe for concurrent use; the Verifier guards it with its mutex.
type verifyCache struct {
	max     int
	ttl     time.Duration
	order   *list.List // of *cacheEntry, most recently used first
	entries map[cacheKey]*list.Element
}

type cacheEntry struct {
	key     cacheKey
	expires time.Time
}

func newVerifyCache(max int, ttl time.Duration) *verifyCache {
	return &verifyCache{max: max, ttl: ttl, order: list.New(), entries: make(map[cacheKey]*list.Element)}
}

// get reports whether key holds an unexpired entry, removing an expired one.
func (c *verifyCache) get(key cacheKey, now time.Time) bool {
	e, ok := c.entries[key]
	if !ok {
		return false
	}
	if !now.Before(e.Value.(*cacheEntry).expires) {
		c.order.Remove(e)
		delete(c.entries, key)
		return false
	}
	c.order.MoveToFront(e)
	return true
}

// add stores key until now plus the TTL, evicting the least recently used
// entry when the cache is full.
func (c *verifyCache) add(key cacheKey, now time.Time) {
	if c.max <= 0 || c.ttl <= 0 {
		return
	}
	expires := now.Add(c.ttl)
	if e, ok := c.entries[key]; ok {
		e.Value.(*cacheEntry).expires = expires
		c.order.MoveToFront(e)
		return
	}
	for c.order.Len() >= c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
	c.entries[key] = c.order.PushFront(&cacheEntry{key: key, expires: expires})
}

func (c *verifyCache) len() int { return c.order.Len() }
