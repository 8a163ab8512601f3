package bulk

import (
	"context"
	"sync"
	"time"
)

// Clock is a store's clock for meta.lastUpdated (architecture.md,
// "Invariants"): imports stamp what they store with it, and kick-off takes
// transactionTime from it, so that a chain of exports, each `_since` the
// previous transactionTime, returns every stored version exactly once,
// imports in flight or not (R12, R55).
//
// The rule: an import holds the clock from the stamp of a write until the
// write is stored, and transactionTime stays below every held stamp (a low
// watermark), while every later stamp lies above every transactionTime
// given out. A version therefore lands on exactly one side of a
// transactionTime T: stored and visible with lastUpdated ≤ T, or stamped
// later than T. Stamps have millisecond precision, as FHIR instants in the
// manifest do; ties between writes are harmless.
type Clock interface {
	// Begin starts an import's session. Callers End it, also after a
	// failure.
	Begin(ctx context.Context) (ClockSession, error)
	// TransactionTime returns the transactionTime of an export kicked off
	// at now: at most now or the latest stamp handed out (whichever is
	// later), earlier than every stamp still held, not earlier than any
	// transactionTime returned before, and below every stamp handed out
	// from now on. Milliseconds.
	TransactionTime(ctx context.Context, now time.Time) (time.Time, error)
}

// ClockSession is one import's hold on a Clock.
type ClockSession interface {
	// Stamp returns the lastUpdated of the session's next write (a batch
	// of resources, or a deletion): now or later, in milliseconds, and
	// after every stamp and transactionTime the clock gave out before. It
	// releases the session's previous stamp, so call it only once that
	// write is stored; the new one is held until the next Stamp or End.
	Stamp(ctx context.Context, now time.Time) (time.Time, error)
	// End releases the session's stamp: call it once its last write is
	// stored (or failed).
	End(ctx context.Context) error
}

// LocalClock is the Clock of a store written by one process (the embedded
// store holds its file locked, the in-memory one lives in the process):
// stamps and holds under a mutex. The zero value is usable.
type LocalClock struct {
	// Persist, if set, records a new high-water mark (a stamp or a
	// transactionTime) before it is used, so that a later process, started
	// with NewLocalClock(that mark), keeps stamping after it even if the
	// wall clock went back. It may be called concurrently, and must keep
	// the largest value it was given.
	Persist func(t time.Time) error

	mu        sync.Mutex
	last      time.Time // the latest stamp or transactionTime given out
	persisted time.Time
	holds     map[*localSession]time.Time
}

var _ Clock = (*LocalClock)(nil)

// NewLocalClock returns a clock whose stamps come after last (a high-water
// mark its Persist recorded), persisting new marks with persist (may be
// nil).
func NewLocalClock(last time.Time, persist func(time.Time) error) *LocalClock {
	return &LocalClock{Persist: persist, last: last, persisted: last}
}

var _ ClockSession = (*localSession)(nil)

type localSession struct{ c *LocalClock }

// Begin starts a session; it holds nothing until its first Stamp.
func (c *LocalClock) Begin(ctx context.Context) (ClockSession, error) {
	return &localSession{c: c}, nil
}

// TransactionTime implements Clock.
func (c *LocalClock) TransactionTime(ctx context.Context, now time.Time) (time.Time, error) {
	c.mu.Lock()
	t := Latest(now.UTC().Truncate(time.Millisecond), c.last)
	for _, h := range c.holds {
		if h := h.Add(-time.Millisecond); h.Before(t) {
			t = h
		}
	}
	c.last = Latest(c.last, t) // later stamps come after t
	c.mu.Unlock()
	return t, c.persist(t)
}

// Stamp implements ClockSession.
func (s *localSession) Stamp(ctx context.Context, now time.Time) (time.Time, error) {
	c := s.c
	c.mu.Lock()
	t := Latest(now.UTC().Truncate(time.Millisecond), c.last.Add(time.Millisecond))
	c.last = t
	if c.holds == nil {
		c.holds = map[*localSession]time.Time{}
	}
	c.holds[s] = t
	c.mu.Unlock()
	return t, c.persist(t)
}

// End implements ClockSession.
func (s *localSession) End(ctx context.Context) error {
	s.c.mu.Lock()
	delete(s.c.holds, s)
	s.c.mu.Unlock()
	return nil
}

// persist records t unless a mark as late is recorded already.
func (c *LocalClock) persist(t time.Time) error {
	if c.Persist == nil {
		return nil
	}
	c.mu.Lock()
	done := !t.After(c.persisted)
	c.mu.Unlock()
	if done {
		return nil
	}
	if err := c.Persist(t); err != nil {
		return err
	}
	c.mu.Lock()
	c.persisted = Latest(c.persisted, t)
	c.mu.Unlock()
	return nil
}

// Latest returns the later of a and b.
func Latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
