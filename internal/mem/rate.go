package mem

import (
	"context"
	"sync"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.RateCounter = (*RateCounter)(nil)

// RateCounter is the in-process bulk.RateCounter: one window per key.
type RateCounter struct {
	now func() time.Time

	mu      sync.Mutex
	windows map[string]*rateWindow
}

type rateWindow struct {
	start time.Time
	end   time.Time
	n     int
}

// NewRateCounter returns an empty counter reading the time from now
// (time.Now if nil).
func NewRateCounter(now func() time.Time) *RateCounter {
	if now == nil {
		now = time.Now
	}
	return &RateCounter{now: now, windows: map[string]*rateWindow{}}
}

// Take counts one event for key; see bulk.RateCounter.
func (c *RateCounter) Take(_ context.Context, key string, limit int, window time.Duration) (time.Duration, error) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.windows[key]
	if w == nil || !now.Before(w.end) {
		if len(c.windows) > 10_000 { // forget closed windows
			for k, v := range c.windows {
				if !now.Before(v.end) {
					delete(c.windows, k)
				}
			}
		}
		w = &rateWindow{start: now, end: now.Add(window)}
		c.windows[key] = w
	}
	if w.n >= limit {
		return w.end.Sub(now), nil
	}
	w.n++
	return 0, nil
}
