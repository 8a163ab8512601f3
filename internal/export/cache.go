package export

import (
	"sync"
	"time"
)

// jobCache is a per-job cache bounded in size and age, with the sync.Map
// methods the service uses. A warm Lambda serves many jobs and only the
// process that finishes, cancels or purges a job forgets it, so an
// unbounded map grew for the life of the process. S sets the capacity.
type jobCache[S cacheSize] struct {
	mu      sync.Mutex
	entries map[any]cacheEntry
}

type cacheEntry struct {
	v     any
	added time.Time
}

// cacheSize is a jobCache's capacity, as a type: the Service is built as
// a struct literal, so its caches must work as zero values.
type cacheSize interface{ capacity() int }

// jobs256 caches small per-job records (plans, compiled requests, the
// records of finished jobs); jobs16 the Provenance indexes, which can be
// large.
type (
	jobs256 struct{}
	jobs16  struct{}
)

func (jobs256) capacity() int { return 256 }
func (jobs16) capacity() int  { return 16 }

// cacheMaxAge bounds how long a job's entry lives: longer than any export
// runs, shorter than the process.
const cacheMaxAge = 6 * time.Hour

// cacheNow is the cache's clock (a variable for tests).
var cacheNow = time.Now

func (c *jobCache[S]) Load(key any) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	if cacheNow().Sub(e.added) > cacheMaxAge {
		delete(c.entries, key)
		return nil, false
	}
	return e.v, true
}

func (c *jobCache[S]) Store(key, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.storeLocked(key, v)
}

func (c *jobCache[S]) LoadOrStore(key, v any) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && cacheNow().Sub(e.added) <= cacheMaxAge {
		return e.v, true
	}
	c.storeLocked(key, v)
	return v, false
}

func (c *jobCache[S]) Delete(key any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}

// CompareAndDelete deletes key's entry if it is old.
func (c *jobCache[S]) CompareAndDelete(key, old any) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && e.v == old {
		delete(c.entries, key)
		return true
	}
	return false
}

// Len returns the number of entries.
func (c *jobCache[S]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// storeLocked adds the entry, first dropping expired ones and then the
// oldest while the cache is full.
func (c *jobCache[S]) storeLocked(key, v any) {
	if c.entries == nil {
		c.entries = map[any]cacheEntry{}
	}
	now := cacheNow()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= (*new(S)).capacity() {
		var oldest any
		var oldestAt time.Time
		for k, e := range c.entries {
			if now.Sub(e.added) > cacheMaxAge {
				delete(c.entries, k)
				continue
			}
			if oldest == nil || e.added.Before(oldestAt) {
				oldest, oldestAt = k, e.added
			}
		}
		if len(c.entries) >= (*new(S)).capacity() {
			delete(c.entries, oldest)
		}
	}
	c.entries[key] = cacheEntry{v: v, added: now}
}
