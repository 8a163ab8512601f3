package mem

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

var (
	_ bulk.ClientStore = (*ClientStore)(nil)
	_ bulk.ReplayCache = (*ReplayCache)(nil)
)

// ClientStore is an in-memory bulk.ClientStore. It stores and returns copies,
// so callers never share a client with the store.
type ClientStore struct {
	mu      sync.Mutex
	clients map[string]*bulk.Client
}

// NewClientStore returns an empty store.
func NewClientStore() *ClientStore {
	return &ClientStore{clients: make(map[string]*bulk.Client)}
}

// CreateClient stores a copy of c. Returns ECONFLICT if the id exists and
// EINVALID if it is empty.
func (s *ClientStore) CreateClient(ctx context.Context, c *bulk.Client) error {
	if c.ID == "" {
		return bulk.Errorf(bulk.EINVALID, "A client needs an id.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[c.ID]; ok {
		return bulk.Errorf(bulk.ECONFLICT, "Client %s already exists.", c.ID)
	}
	s.clients[c.ID] = deepCopy(c)
	return nil
}

// GetClient returns a copy of a client. Returns ENOTFOUND if it does not
// exist.
func (s *ClientStore) GetClient(ctx context.Context, id string) (*bulk.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, errClientNotFound(id)
	}
	return deepCopy(c), nil
}

// UpdateClient replaces a stored client with a copy of c. Returns ENOTFOUND
// if it does not exist.
func (s *ClientStore) UpdateClient(ctx context.Context, c *bulk.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[c.ID]; !ok {
		return errClientNotFound(c.ID)
	}
	s.clients[c.ID] = deepCopy(c)
	return nil
}

// DeleteClient removes a client. Returns ENOTFOUND if it does not exist.
func (s *ClientStore) DeleteClient(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[id]; !ok {
		return errClientNotFound(id)
	}
	delete(s.clients, id)
	return nil
}

// ListClients visits copies of every client in id order. The copies are
// taken first, so fn may call the store.
func (s *ClientStore) ListClients(ctx context.Context, fn func(*bulk.Client) error) error {
	s.mu.Lock()
	ids := make([]string, 0, len(s.clients))
	for id := range s.clients {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	cs := make([]*bulk.Client, len(ids))
	for i, id := range ids {
		cs[i] = deepCopy(s.clients[id])
	}
	s.mu.Unlock()
	return visitEach(ctx, cs, fn)
}

func errClientNotFound(id string) error {
	return bulk.Errorf(bulk.ENOTFOUND, "Client %s not found.", id)
}

// replaySweepEvery is how many MarkUsed calls pass between sweeps of expired
// records: often enough to bound memory to about that many dead entries plus
// the live ones, rarely enough that the O(n) sweep costs O(1) per call.
const replaySweepEvery = 1024

// ReplayCache is an in-memory bulk.ReplayCache. Expired records are swept
// every replaySweepEvery calls, so memory stays proportional to the records
// that are live plus those that expired since the last sweep.
type ReplayCache struct {
	now   func() time.Time
	mu    sync.Mutex
	until map[string]time.Time
	calls int
}

// NewReplayCache returns an empty cache that reads the time from now
// (time.Now if nil).
func NewReplayCache(now func() time.Time) *ReplayCache {
	if now == nil {
		now = time.Now
	}
	return &ReplayCache{now: now, until: make(map[string]time.Time)}
}

// MarkUsed records key until expires. Returns ECONFLICT if key is recorded
// and has not expired; a record expires at its expiry time.
func (c *ReplayCache) MarkUsed(ctx context.Context, key string, expires time.Time) error {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if until, ok := c.until[key]; ok && now.Before(until) {
		return bulk.Errorf(bulk.ECONFLICT, "This value has already been used.")
	}
	c.until[key] = expires
	if c.calls++; c.calls >= replaySweepEvery {
		c.calls = 0
		for k, until := range c.until {
			if !now.Before(until) {
				delete(c.until, k)
			}
		}
	}
	return nil
}

// Len returns the number of records held, live or expired but not yet
// swept. For tests and metrics.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.until)
}
