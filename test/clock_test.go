package test

import (
	"sync"
	"time"
)

// clock is a server clock (app.WithClock) a test moves forward instead of
// waiting for the wall clock: it runs with the wall clock, jumped ahead by
// Advance and AdvancePast, and never goes back. It stays with the wall
// clock otherwise, as the export service, which compares its clock with
// context deadlines, needs.
type clock struct {
	mu    sync.Mutex
	ahead time.Duration
}

// Now is the wall clock plus every jump so far.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.ahead)
}

// Advance jumps the clock d ahead.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ahead += max(d, 0)
}

// AdvancePast jumps the clock, if it is not already there, to after t:
// every Now from here on is later than t.
func (c *clock) AdvancePast(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ahead = max(c.ahead, t.Sub(time.Now())+time.Millisecond)
}
