package bulktest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/bulk"
)

// newCohort returns a cohort with every field set, so a store that drops a
// field fails the round trip.
func newCohort(owner, id string) *bulk.Cohort {
	return &bulk.Cohort{
		ID:           id,
		Owner:        owner,
		Group:        json.RawMessage(`{"resourceType":"Group","type":"person","name":"Cohort ` + id + `"}`),
		Name:         "Cohort " + id,
		Filters:      []string{"Condition?code=http://snomed.info/sct|44054006", "Patient?gender=female"},
		Patients:     []string{"p1"},
		Groups:       []string{"g1"},
		Restrictions: map[string][]string{"Condition": {"clinical-status=active"}, "Patient": {}},
		RefreshEvery: 24 * time.Hour,
		Status:       bulk.CohortReady,
		Failure:      "",
		Generation:   3,
		Bounded:      true,
		Bound:        []string{"g1", "g2"},
		Members:      42,
		CreatedAt:    t0,
		RequestedAt:  t0.Add(time.Minute),
		RefreshedAt:  t0.Add(2 * time.Minute),
	}
}

// RunCohortStoreTests runs the bulk.CohortStore contract against stores made
// by open, which must return a new, empty store for each call and arrange
// its cleanup with t.Cleanup.
// It is long because it is the contract: one t.Run per rule, each short.
func RunCohortStoreTests(t *testing.T, open func(t *testing.T) bulk.CohortStore) {
	ctx := context.Background()
	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		c := newCohort("client-a", "c1")
		if err := s.CreateCohort(ctx, c); err != nil {
			t.Fatalf("CreateCohort: %v", err)
		}
		if c.Revision != 1 {
			t.Errorf("CreateCohort set Revision %d, want 1", c.Revision)
		}
		got, err := s.GetCohort(ctx, "client-a", "c1")
		if err != nil {
			t.Fatalf("GetCohort: %v", err)
		}
		if diff := gocmp.Diff(c, got, clientOpts); diff != "" {
			t.Errorf("GetCohort mismatch (-put +got):\n%s", diff)
		}
	})
	t.Run("ErrConflictOnCreate", func(t *testing.T) {
		s := open(t)
		if err := s.CreateCohort(ctx, newCohort("client-a", "c1")); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateCohort(ctx, newCohort("client-a", "c1")); bulk.ErrorCode(err) != bulk.ECONFLICT {
			t.Errorf("CreateCohort again = %v, want %s", err, bulk.ECONFLICT)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		s := open(t)
		for _, c := range []*bulk.Cohort{newCohort("", "c1"), newCohort("client-a", "")} {
			if err := s.CreateCohort(ctx, c); bulk.ErrorCode(err) != bulk.EINVALID {
				t.Errorf("CreateCohort(owner %q, id %q) = %v, want %s", c.Owner, c.ID, err, bulk.EINVALID)
			}
		}
	})
	t.Run("OtherOwnersCohortIsNotFound", func(t *testing.T) {
		s := open(t)
		if err := s.CreateCohort(ctx, newCohort("client-a", "c1")); err != nil {
			t.Fatal(err)
		}
		// A client id that prefixes or extends the owner's must not
		// reach its cohort: the store may key by a concatenation.
		for _, owner := range []string{"client-b", "client", "client-a#c1", "client-a#", ""} {
			if c, err := s.GetCohort(ctx, owner, "c1"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
				t.Errorf("GetCohort(%q, c1) = %v, %v; want %s", owner, c, err, bulk.ENOTFOUND)
			}
			if err := s.DeleteCohort(ctx, owner, "c1"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
				t.Errorf("DeleteCohort(%q, c1) = %v; want %s", owner, err, bulk.ENOTFOUND)
			}
			if owner == "" {
				continue
			}
			var n int
			_ = s.ListCohorts(ctx, owner, func(*bulk.Cohort) error { n++; return nil })
			if n != 0 {
				t.Errorf("ListCohorts(%q) visited %d cohorts of client-a", owner, n)
			}
		}
		if err := s.CreateCohort(ctx, newCohort("client-b", "c1")); err != nil {
			t.Errorf("CreateCohort(client-b, c1) beside client-a's c1: %v", err)
		}
	})
	t.Run("UpdateRevisions", func(t *testing.T) {
		s := open(t)
		c := newCohort("client-a", "c1")
		if err := s.CreateCohort(ctx, c); err != nil {
			t.Fatal(err)
		}
		stale, _ := s.GetCohort(ctx, "client-a", "c1")
		c.Status, c.Members, c.Generation = bulk.CohortPending, 7, 4
		if err := s.UpdateCohort(ctx, c); err != nil {
			t.Fatalf("UpdateCohort: %v", err)
		}
		if c.Revision != 2 {
			t.Errorf("UpdateCohort set Revision %d, want 2", c.Revision)
		}
		got, err := s.GetCohort(ctx, "client-a", "c1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(c, got, clientOpts); diff != "" {
			t.Errorf("GetCohort after UpdateCohort mismatch (-want +got):\n%s", diff)
		}
		stale.Members = 99
		if err := s.UpdateCohort(ctx, stale); bulk.ErrorCode(err) != bulk.ECONFLICT {
			t.Errorf("UpdateCohort at a stale revision = %v, want %s", err, bulk.ECONFLICT)
		}
		if got, _ := s.GetCohort(ctx, "client-a", "c1"); got.Members != 7 {
			t.Errorf("a refused update changed the cohort: Members = %d", got.Members)
		}
		gone := newCohort("client-a", "c2")
		gone.Revision = 1
		if err := s.UpdateCohort(ctx, gone); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("UpdateCohort of an absent cohort = %v, want %s", err, bulk.ENOTFOUND)
		}
	})
	t.Run("ConcurrentUpdatesOneWins", func(t *testing.T) {
		s := open(t)
		if err := s.CreateCohort(ctx, newCohort("client-a", "c1")); err != nil {
			t.Fatal(err)
		}
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		read := make([]*bulk.Cohort, n) // all at the same revision
		for i := range n {
			c, err := s.GetCohort(ctx, "client-a", "c1")
			if err != nil {
				t.Fatal(err)
			}
			read[i] = c
		}
		for i, c := range read {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Members = i
				errs[i] = s.UpdateCohort(ctx, c)
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch bulk.ErrorCode(err) {
			case "":
				won++
			case bulk.ECONFLICT:
			default:
				t.Errorf("UpdateCohort: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d of %d updates at the same revision succeeded, want 1", won, n)
		}
	})
	t.Run("DeleteAndList", func(t *testing.T) {
		s := open(t)
		for _, k := range [][2]string{{"client-b", "c2"}, {"client-a", "c3"}, {"client-a", "c1"}, {"client-b", "c1"}} {
			if err := s.CreateCohort(ctx, newCohort(k[0], k[1])); err != nil {
				t.Fatal(err)
			}
		}
		list := func(owner string) []string {
			var got []string
			if err := s.ListCohorts(ctx, owner, func(c *bulk.Cohort) error {
				got = append(got, c.Owner+"/"+c.ID)
				// Visits come after the read: fn may call the store.
				_, err := s.GetCohort(ctx, c.Owner, c.ID)
				return err
			}); err != nil {
				t.Fatalf("ListCohorts(%q): %v", owner, err)
			}
			return got
		}
		if diff := gocmp.Diff([]string{"client-a/c1", "client-a/c3"}, list("client-a")); diff != "" {
			t.Errorf("ListCohorts(client-a) (-want +got):\n%s", diff)
		}
		if diff := gocmp.Diff([]string{"client-a/c1", "client-a/c3", "client-b/c1", "client-b/c2"}, list("")); diff != "" {
			t.Errorf("ListCohorts(\"\") (-want +got):\n%s", diff)
		}
		if err := s.DeleteCohort(ctx, "client-a", "c1"); err != nil {
			t.Fatalf("DeleteCohort: %v", err)
		}
		if _, err := s.GetCohort(ctx, "client-a", "c1"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("GetCohort after DeleteCohort = %v, want %s", err, bulk.ENOTFOUND)
		}
		if err := s.DeleteCohort(ctx, "client-a", "c1"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("DeleteCohort again = %v, want %s", err, bulk.ENOTFOUND)
		}
		if diff := gocmp.Diff([]string{"client-a/c3"}, list("client-a")); diff != "" {
			t.Errorf("ListCohorts(client-a) after delete (-want +got):\n%s", diff)
		}
	})
}
