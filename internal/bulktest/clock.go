package bulktest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// RunClockTests is the contract of bulk.Clock, the lastUpdated clock a store
// gives imports and kick-off (R12, R55). open returns a clock that has given
// out nothing yet.
// It is long because it is the contract: one t.Run per rule, each short.
func RunClockTests(t *testing.T, open func(t *testing.T) bulk.Clock) {
	ctx := context.Background()
	ms := time.Millisecond

	begin := func(t *testing.T, c bulk.Clock) bulk.ClockSession {
		t.Helper()
		s, err := c.Begin(ctx)
		if err != nil {
			t.Fatalf("Begin() = %v", err)
		}
		t.Cleanup(func() { _ = s.End(ctx) })
		return s
	}
	stamp := func(t *testing.T, s bulk.ClockSession, now time.Time) time.Time {
		t.Helper()
		st, err := s.Stamp(ctx, now)
		if err != nil {
			t.Fatalf("Stamp(%v) = %v", now, err)
		}
		return st
	}
	end := func(t *testing.T, s bulk.ClockSession) {
		t.Helper()
		if err := s.End(ctx); err != nil {
			t.Fatalf("End() = %v", err)
		}
	}
	tt := func(t *testing.T, c bulk.Clock, now time.Time) time.Time {
		t.Helper()
		got, err := c.TransactionTime(ctx, now)
		if err != nil {
			t.Fatalf("TransactionTime(%v) = %v", now, err)
		}
		if !got.Equal(got.Truncate(ms)) {
			t.Errorf("TransactionTime(%v) = %v, want milliseconds", now, got)
		}
		return got
	}

	t.Run("StampsAreNowOrLaterAndIncrease", func(t *testing.T) {
		c := open(t)
		a, b := begin(t, c), begin(t, c)
		now := t0.Add(123456789 * time.Nanosecond)
		first := stamp(t, a, now)
		if !first.Equal(now.Truncate(ms)) {
			t.Errorf("first Stamp(%v) = %v, want %v", now, first, now.Truncate(ms))
		}
		// The same now, from either session: each stamp after the last.
		got := []time.Time{first, stamp(t, b, now), stamp(t, a, now), stamp(t, b, now.Add(-time.Hour))}
		for i := 1; i < len(got); i++ {
			if !got[i].After(got[i-1]) || !got[i].Equal(got[i].Truncate(ms)) {
				t.Errorf("stamps %v: stamp %d is not a later millisecond", got, i)
			}
		}
		// A later now is taken as it is.
		if later := stamp(t, a, now.Add(time.Hour)); !later.Equal(now.Add(time.Hour).Truncate(ms)) {
			t.Errorf("Stamp(%v) = %v, want it", now.Add(time.Hour), later)
		}
	})

	t.Run("TransactionTimeStaysBelowHeldStamps", func(t *testing.T) {
		c := open(t)
		s := begin(t, c)
		held := stamp(t, s, at(10))
		// A write stamped held is in flight: an export kicked off later,
		// whatever its clock says, must end before it (R55).
		if got := tt(t, c, at(100)); !got.Before(held) {
			t.Errorf("TransactionTime with a stamp %v held = %v, want earlier", held, got)
		}
		// Stamping the next write releases the first.
		next := stamp(t, s, at(20))
		if got := tt(t, c, at(100)); !got.Before(next) || got.Before(held) {
			t.Errorf("TransactionTime with %v stored and %v held = %v, want in [%v, %v)", held, next, got, held, next)
		}
		end(t, s)
		// Nothing held: now, or the latest stamp if the clock ran ahead.
		if got := tt(t, c, at(100)); got.Before(at(100)) || got.Before(next) {
			t.Errorf("TransactionTime(%v) with nothing held = %v, want at least it and %v", at(100), got, next)
		}
	})

	t.Run("StampsComeAfterTransactionTimes", func(t *testing.T) {
		c := open(t)
		s := begin(t, c)
		kick := tt(t, c, at(50))
		// An import whose wall clock is behind still stamps after every
		// transactionTime given out: the next `_since` export gets it.
		if got := stamp(t, s, at(40)); !got.After(kick) {
			t.Errorf("Stamp(%v) after TransactionTime %v = %v, want later", at(40), kick, got)
		}
	})

	t.Run("TransactionTimeNeverGoesBack", func(t *testing.T) {
		c := open(t)
		prev := tt(t, c, at(100))
		s := begin(t, c)
		for i, now := range []time.Time{at(90), at(100), at(99)} {
			st := stamp(t, s, now)
			got := tt(t, c, now)
			if got.Before(prev) {
				t.Errorf("round %d: TransactionTime = %v after %v, want no earlier", i, got, prev)
			}
			if !got.Before(st) {
				t.Errorf("round %d: TransactionTime = %v with %v held, want earlier", i, got, st)
			}
			prev = got
		}
		end(t, s)
		if got := tt(t, c, at(1)); got.Before(prev) {
			t.Errorf("TransactionTime(%v) = %v after %v, want no earlier", at(1), got, prev)
		}
	})

	// Imports and kick-offs at once: every stamp at or before a
	// transactionTime was stored before that transactionTime was given out
	// (the heart of R55: nothing an export's range covers is still in
	// flight), and stamps are distinct.
	t.Run("Concurrent", func(t *testing.T) {
		c := open(t)
		const importers, writes = 4, 12
		var (
			mu     sync.Mutex
			stored = map[time.Time]bool{}
			all    []time.Time
			kicks  []struct {
				at     time.Time
				stored map[time.Time]bool
			}
			wg      sync.WaitGroup
			failure = make(chan error, importers+1)
		)
		for i := range importers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := c.Begin(ctx)
				if err != nil {
					failure <- err
					return
				}
				for w := range writes {
					st, err := s.Stamp(ctx, at(i+w))
					if err != nil {
						failure <- err
						return
					}
					mu.Lock()
					stored[st] = true // the write is stored before the next Stamp
					all = append(all, st)
					mu.Unlock()
				}
				if err := s.End(ctx); err != nil {
					failure <- err
				}
			}()
		}
		done := make(chan struct{})
		go func() {
			wg.Wait()
			close(done)
		}()
		for stop := false; !stop; {
			select {
			case <-done:
				stop = true // one more after the imports
			default:
			}
			got, err := c.TransactionTime(ctx, at(importers+writes/2))
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			snap := make(map[time.Time]bool, len(stored))
			for st := range stored {
				snap[st] = true
			}
			mu.Unlock()
			kicks = append(kicks, struct {
				at     time.Time
				stored map[time.Time]bool
			}{got, snap})
		}
		close(failure)
		for err := range failure {
			t.Fatal(err)
		}
		slices.SortFunc(all, time.Time.Compare)
		if len(slices.CompactFunc(slices.Clone(all), time.Time.Equal)) != len(all) {
			t.Errorf("stamps are not distinct: %v", all)
		}
		for i, k := range kicks {
			if i > 0 && k.at.Before(kicks[i-1].at) {
				t.Errorf("transactionTime %d = %v went back from %v", i, k.at, kicks[i-1].at)
			}
			for _, st := range all {
				if !st.After(k.at) && !k.stored[st] {
					t.Errorf("transactionTime %v covers stamp %v, which was not stored yet", k.at, st)
				}
			}
		}
		last := kicks[len(kicks)-1].at
		if want := all[len(all)-1]; last.Before(want) {
			t.Errorf("transactionTime after every import ended = %v, want at least the last stamp %v", last, want)
		}
	})
}
