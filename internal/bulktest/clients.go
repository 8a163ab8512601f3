package bulktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tranchehq/tranche/internal/bulk"
)

// newClient returns a client with every field set, so a store that drops a
// field fails the round trip.
func newClient(id string) *bulk.Client {
	return &bulk.Client{
		ID:                   id,
		Name:                 "Client " + id,
		JWKS:                 json.RawMessage(`{"keys":[{"kty":"EC","kid":"k1","crv":"P-384","x":"AA","y":"BB"}]}`),
		Scopes:               []string{"system/*.rs", "system/Observation.read"},
		Groups:               []string{"g1", "g2"},
		Types:                []string{"Patient", "Observation"},
		MaxLookback:          30 * 24 * time.Hour,
		MaxConcurrentExports: 2,
		MaxPollsPerMinute:    30,
		Metadata:             json.RawMessage(`{"client_name":"Client ` + id + `","scope":"system/*.rs"}`),
		CreatedAt:            t0,
	}
}

// clientOpts compares clients as stored: nil and empty lists are the same,
// and JSON members compare by value, not by spacing.
var clientOpts = gocmp.Options{
	gocmp.FilterValues(func(a, b []string) bool { return true }, cmpopts.EquateEmpty()),
	gocmp.Comparer(func(a, b json.RawMessage) bool {
		if len(a) == 0 || len(b) == 0 {
			return len(a) == len(b)
		}
		var x, y any
		return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && gocmp.Equal(x, y)
	}),
}

// RunClientStoreTests runs the bulk.ClientStore contract against stores made
// by open, which must return a new, empty store for each call and arrange its
// cleanup with t.Cleanup.
// It is long because it is the contract: one t.Run per rule, each short.
func RunClientStoreTests(t *testing.T, open func(t *testing.T) bulk.ClientStore) {
	ctx := context.Background()
	create := func(t *testing.T, ids ...string) bulk.ClientStore {
		t.Helper()
		s := open(t)
		for _, id := range ids {
			if err := s.CreateClient(ctx, newClient(id)); err != nil {
				t.Fatalf("CreateClient(%s): %v", id, err)
			}
		}
		return s
	}
	check := func(t *testing.T, s bulk.ClientStore, want *bulk.Client) {
		t.Helper()
		got, err := s.GetClient(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetClient(%s): %v", want.ID, err)
		}
		if diff := gocmp.Diff(want, got, clientOpts); diff != "" {
			t.Errorf("GetClient(%s) mismatch (-want +got):\n%s", want.ID, diff)
		}
	}

	t.Run("CreateGet", func(t *testing.T) {
		s := create(t, "c1")
		check(t, s, newClient("c1"))
		// The caller's copies are its own, in both directions.
		got, _ := s.GetClient(ctx, "c1")
		got.Scopes[0], got.Groups[0], got.Name = "x", "x", "x"
		check(t, s, newClient("c1"))
		c := newClient("c2")
		if err := s.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		c.Scopes[0] = "changed after create"
		check(t, s, newClient("c2"))

		dup := newClient("c1")
		dup.Name = "other"
		if err := s.CreateClient(ctx, dup); bulk.ErrorCode(err) != bulk.ECONFLICT {
			t.Errorf("CreateClient(c1) again error = %v, want %s", err, bulk.ECONFLICT)
		}
		check(t, s, newClient("c1"))
		if _, err := s.GetClient(ctx, "nope"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("GetClient(nope) error = %v, want %s", err, bulk.ENOTFOUND)
		}
		if err := s.CreateClient(ctx, &bulk.Client{}); err == nil {
			t.Errorf("CreateClient with an empty id succeeded, want an error")
		}
	})

	t.Run("Update", func(t *testing.T) {
		s := create(t, "c1")
		c := newClient("c1")
		c.Scopes, c.Groups, c.JWKS, c.JWKSURI = []string{"system/Patient.rs"}, []string{"*"}, nil, "https://example.org/jwks.json"
		if err := s.UpdateClient(ctx, c); err != nil {
			t.Fatalf("UpdateClient(c1): %v", err)
		}
		check(t, s, c)
		if err := s.UpdateClient(ctx, newClient("nope")); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("UpdateClient(nope) error = %v, want %s", err, bulk.ENOTFOUND)
		}
		if _, err := s.GetClient(ctx, "nope"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("GetClient(nope) after a failed update error = %v, want %s", err, bulk.ENOTFOUND)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s := create(t, "c1", "c2")
		if err := s.DeleteClient(ctx, "c1"); err != nil {
			t.Fatalf("DeleteClient(c1): %v", err)
		}
		if _, err := s.GetClient(ctx, "c1"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("GetClient(c1) after delete error = %v, want %s", err, bulk.ENOTFOUND)
		}
		if err := s.DeleteClient(ctx, "c1"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("DeleteClient(c1) again error = %v, want %s", err, bulk.ENOTFOUND)
		}
		check(t, s, newClient("c2"))
		// A deleted id can be registered again.
		if err := s.CreateClient(ctx, newClient("c1")); err != nil {
			t.Errorf("CreateClient(c1) after delete: %v", err)
		}
	})

	t.Run("List", func(t *testing.T) {
		s := create(t, "c3", "c1", "c2")
		var ids []string
		err := s.ListClients(ctx, func(c *bulk.Client) error {
			ids = append(ids, c.ID)
			// fn may call the store.
			if _, err := s.GetClient(ctx, c.ID); err != nil {
				return err
			}
			if diff := gocmp.Diff(newClient(c.ID), c, clientOpts); diff != "" {
				t.Errorf("ListClients visited %s mismatch (-want +got):\n%s", c.ID, diff)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ListClients: %v", err)
		}
		if diff := gocmp.Diff([]string{"c1", "c2", "c3"}, ids); diff != "" {
			t.Errorf("ListClients order mismatch (-want +got):\n%s", diff)
		}
		stop := errors.New("stop")
		n := 0
		err = s.ListClients(ctx, func(*bulk.Client) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("ListClients with fn failing = %v after %d calls, want stop after 1", err, n)
		}
		if err := open(t).ListClients(ctx, func(c *bulk.Client) error {
			return fmt.Errorf("visited %s in an empty store", c.ID)
		}); err != nil {
			t.Errorf("ListClients on an empty store: %v", err)
		}
	})
}

// RunReplayCacheTests runs the bulk.ReplayCache contract against caches made
// by open, which must return a new, empty cache reading the time from now
// and arrange its cleanup with t.Cleanup.
// It is long because it is the contract: one t.Run per rule, each short.
func RunReplayCacheTests(t *testing.T, open func(t *testing.T, now func() time.Time) bulk.ReplayCache) {
	ctx := context.Background()
	t.Run("Replay", func(t *testing.T) {
		clock := newReplayClock()
		c := open(t, clock.Now)
		exp := t0.Add(5 * time.Minute)
		if err := c.MarkUsed(ctx, "client-1#jti-1", exp); err != nil {
			t.Fatalf("MarkUsed(jti-1): %v", err)
		}
		clock.Set(exp.Add(-time.Nanosecond))
		if err := c.MarkUsed(ctx, "client-1#jti-1", exp.Add(time.Hour)); bulk.ErrorCode(err) != bulk.ECONFLICT {
			t.Errorf("MarkUsed(jti-1) again before expiry error = %v, want %s", err, bulk.ECONFLICT)
		}
		// Keys are independent.
		for _, key := range []string{"client-2#jti-1", "client-1#jti-2"} {
			if err := c.MarkUsed(ctx, key, exp); err != nil {
				t.Errorf("MarkUsed(%s): %v", key, err)
			}
		}
		// A record lives until its expiry, not until the later one that
		// the failed call asked for.
		clock.Set(exp)
		if err := c.MarkUsed(ctx, "client-1#jti-1", exp.Add(time.Minute)); err != nil {
			t.Errorf("MarkUsed(jti-1) at its expiry: %v", err)
		}
		// The replacement record has its own expiry.
		if err := c.MarkUsed(ctx, "client-1#jti-1", exp.Add(time.Minute)); bulk.ErrorCode(err) != bulk.ECONFLICT {
			t.Errorf("MarkUsed(jti-1) after re-recording error = %v, want %s", err, bulk.ECONFLICT)
		}
	})

	t.Run("ManyExpire", func(t *testing.T) {
		// Enough keys for a store that sweeps expired records to sweep.
		clock := newReplayClock()
		c := open(t, clock.Now)
		const n = 300
		for i := range n {
			if err := c.MarkUsed(ctx, fmt.Sprintf("c#%d", i), t0.Add(time.Minute)); err != nil {
				t.Fatalf("MarkUsed(c#%d): %v", i, err)
			}
		}
		clock.Set(t0.Add(2 * time.Minute))
		for i := range n {
			if i%2 == 0 {
				// Recorded again, until much later.
				if err := c.MarkUsed(ctx, fmt.Sprintf("c#%d", i), t0.Add(time.Hour)); err != nil {
					t.Fatalf("MarkUsed(c#%d) after expiry: %v", i, err)
				}
			}
		}
		// Fresh keys whose writes may sweep the expired ones.
		for i := range n {
			if err := c.MarkUsed(ctx, fmt.Sprintf("d#%d", i), t0.Add(time.Hour)); err != nil {
				t.Fatalf("MarkUsed(d#%d): %v", i, err)
			}
		}
		for i := range n {
			err := c.MarkUsed(ctx, fmt.Sprintf("c#%d", i), t0.Add(time.Hour))
			if i%2 == 0 && bulk.ErrorCode(err) != bulk.ECONFLICT {
				t.Fatalf("MarkUsed(c#%d) re-recorded key error = %v, want %s", i, err, bulk.ECONFLICT)
			} else if i%2 == 1 && err != nil {
				t.Fatalf("MarkUsed(c#%d) expired key: %v", i, err)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		clock := newReplayClock()
		c := open(t, clock.Now)
		const n = 16
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins int
			errs []error
		)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.MarkUsed(ctx, "client-1#same", t0.Add(time.Minute))
				mu.Lock()
				defer mu.Unlock()
				switch bulk.ErrorCode(err) {
				case "":
					wins++
				case bulk.ECONFLICT:
				default:
					errs = append(errs, err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 || len(errs) > 0 {
			t.Errorf("%d concurrent MarkUsed of one key: %d won, errors %v; want exactly 1 winner and the rest %s", n, wins, errs, bulk.ECONFLICT)
		}
	})
}

// replayClock is a settable time source for replay-cache tests.
type replayClock struct {
	mu  sync.Mutex
	now time.Time
}

func newReplayClock() *replayClock { return &replayClock{now: t0} }

func (c *replayClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *replayClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// RunRateCounterTests runs the bulk.RateCounter contract against counters
// made by open, which must return a new, empty counter reading the time
// from now and arrange its cleanup with t.Cleanup.
// It is long because it is the contract: one t.Run per rule, each short.
func RunRateCounterTests(t *testing.T, open func(t *testing.T, now func() time.Time) bulk.RateCounter) {
	ctx := context.Background()
	t.Run("Window", func(t *testing.T) {
		clock := newReplayClock()
		c := open(t, clock.Now)
		take := func(key string) time.Duration {
			t.Helper()
			wait, err := c.Take(ctx, key, 3, time.Minute)
			if err != nil {
				t.Fatalf("Take(%s): %v", key, err)
			}
			return wait
		}
		for i := 1; i <= 3; i++ {
			if wait := take("client-1"); wait != 0 {
				t.Errorf("event %d of 3 = wait %v, want allowed", i, wait)
			}
			clock.Set(clock.Now().Add(10 * time.Second))
		}
		// 30 s into the window: the 4th waits for the rest of it.
		if wait := take("client-1"); wait != 30*time.Second {
			t.Errorf("event 4 of 3 = wait %v, want 30s (until the window closes)", wait)
		}
		// Refused events count nothing; keys are independent.
		if wait := take("client-2"); wait != 0 {
			t.Errorf("another key's first event = wait %v, want allowed", wait)
		}
		// The window closes a minute after its first event; the next
		// event opens a new one.
		clock.Set(t0.Add(time.Minute))
		for i := 1; i <= 3; i++ {
			if wait := take("client-1"); wait != 0 {
				t.Errorf("new window event %d = wait %v, want allowed", i, wait)
			}
		}
		if wait := take("client-1"); wait != time.Minute {
			t.Errorf("new window event 4 = wait %v, want 1m", wait)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		// Takes from many callers at once (many Lambda instances): exactly
		// limit are allowed.
		clock := newReplayClock()
		c := open(t, clock.Now)
		var mu sync.Mutex
		allowed := 0
		var wg sync.WaitGroup
		for range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				wait, err := c.Take(ctx, "client-1", 5, time.Minute)
				if err != nil {
					t.Errorf("Take: %v", err)
					return
				}
				if wait == 0 {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if allowed != 5 {
			t.Errorf("%d of 12 concurrent events allowed, want the limit, 5", allowed)
		}
	})
}
