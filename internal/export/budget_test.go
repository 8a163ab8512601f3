package export_test

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
)

// clock is a fake clock that moves only when told to; the local
// workflow's goroutines may read it at once.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// slowSource moves the clock on by perRow for every row its scans pass,
// as a store whose rows take time to read does. With storeSkips it serves
// CompartmentOnly scans as the DynamoDB store does: it reads every row and
// hands those in no compartment to ScanRequest.Skipped instead of the visit.
type slowSource struct {
	bulk.ResourceSource
	clock      *clock
	perRow     time.Duration
	storeSkips bool

	mu   sync.Mutex
	rows int // rows passed since the last take
}

func (s *slowSource) Scan(ctx context.Context, req bulk.ScanRequest, fn bulk.Visit) error {
	skips := req.CompartmentOnly && s.storeSkips
	inner := req
	inner.CompartmentOnly = req.CompartmentOnly && !skips
	return s.ResourceSource.Scan(ctx, inner, func(r *bulk.Resource, next bulk.Cursor) error {
		s.clock.advance(s.perRow)
		s.mu.Lock()
		s.rows++
		s.mu.Unlock()
		if skips && len(r.Patients) == 0 {
			if req.Skipped == nil {
				return nil
			}
			return req.Skipped(next)
		}
		return fn(r, next)
	})
}

// take returns the rows passed since the last take.
func (s *slowSource) take() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.rows
	s.rows = 0
	return n
}

// call is what one ExportItem call did.
type call struct {
	done    bool
	rows    int
	elapsed time.Duration // on the fake clock
}

// loopItem runs ExportItem on item until it is done, as the state
// machine's Choice loop does, each call with a context from newCtx, and
// returns the calls and the lines the item's checkpoints list.
func loopItem(t *testing.T, f *fixture, src *slowSource, clk *clock, jobID string, item int, newCtx func() (context.Context, context.CancelFunc)) ([]call, []string) {
	t.Helper()
	var calls []call
	for done := false; !done; {
		if len(calls) > 10_000 {
			t.Fatal("the item never finishes")
		}
		ctx, cancel := newCtx()
		start := clk.Now()
		out, err := f.svc.ExportItem(ctx, export.ItemInput{JobID: jobID, Item: item})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		done = out.Done
		calls = append(calls, call{done: out.Done, rows: src.take(), elapsed: clk.Now().Sub(start)})
	}
	ctx := context.Background()
	prog, err := f.svc.Jobs.ItemProgress(ctx, jobID, item)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, file := range prog.Files {
		o, err := f.objs.Open(ctx, file.Key)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(o)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		o.Close()
	}
	return calls, lines
}

// putObservations stores n Observations: status final where final(i),
// else preliminary, and in Patient p1's compartment where inCompartment(i).
// It returns the bodies of those that final and inCompartment select.
func putObservations(t *testing.T, f *fixture, n int, final, inCompartment func(int) bool) []string {
	t.Helper()
	var rs []*bulk.Resource
	var want []string
	for i := range n {
		id := fmt.Sprintf("obs-%05d", i)
		status := "preliminary"
		if final(i) {
			status = "final"
		}
		r := &bulk.Resource{Type: "Observation", ID: id, LastUpdated: f.now.Add(-time.Duration(n-i) * time.Second),
			Body: fmt.Appendf(nil, `{"resourceType":"Observation","id":%q,"status":%q}`, id, status)}
		if inCompartment(i) {
			r.Patients = []string{"p1"}
		}
		if final(i) && inCompartment(i) {
			want = append(want, string(r.Body))
		}
		rs = append(rs, r)
	}
	if err := f.res.Put(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	return want
}

// budgetFixture is a fixture whose workflow the test drives, with a clock
// starting at start and a store that moves it on by perRow a row.
func budgetFixture(t *testing.T, cfg export.Config, start time.Time, perRow time.Duration, storeSkips bool) (*fixture, *slowSource, *clock) {
	t.Helper()
	f := newFixture(t, cfg, nil)
	f.svc.Workflow = idleWorkflow{}
	clk := &clock{t: start}
	f.svc.Now = clk.Now
	src := &slowSource{ResourceSource: f.res, clock: clk, perRow: perRow, storeSkips: storeSkips}
	f.svc.Resources = src
	return f, src, clk
}

// planOne kicks off req and plans it, and returns the job id: the test's
// data make one type-scan item over both of the fixture's shards.
func planOne(t *testing.T, f *fixture, req bulk.ExportRequest) string {
	t.Helper()
	ctx := context.Background()
	j, err := f.svc.Kickoff(ctx, "c1", req)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.svc.Plan(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 1 {
		t.Fatalf("Plan() = %+v, want one item", out)
	}
	return j.ID
}

// TestExportItemBudgetNonMatching: the item budget is checked at every row
// a scan passes, not only at the rows it writes: a selective `_typeFilter`,
// or a Patient-level scan over rows in no compartment that the store
// leaves out, stops at the budget with nothing or almost nothing written,
// and the Choice loop then writes exactly the matching resources, once.
func TestExportItemBudgetNonMatching(t *testing.T) {
	const (
		rows   = 1000
		budget = 100 * time.Second
		perRow = time.Second
	)
	never := func(int) bool { return false }
	always := func(int) bool { return true }
	few := func(i int) bool { return i%250 == 7 }
	for _, tc := range []struct {
		name          string
		level         bulk.Level
		typeFilters   []string
		storeSkips    bool
		final, inComp func(int) bool
	}{
		{"TypeFilterNoneMatch", bulk.LevelSystem, []string{"Observation?status=final"}, false, never, always},
		{"TypeFilterFewMatch", bulk.LevelSystem, []string{"Observation?status=final"}, false, few, always},
		{"PatientLevelStoreSkips", bulk.LevelPatient, nil, true, always, few},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := export.DefaultConfig()
			cfg.ItemBudget = budget
			f, src, clk := budgetFixture(t, cfg, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), perRow, tc.storeSkips)
			want := putObservations(t, f, rows, tc.final, tc.inComp)
			id := planOne(t, f, bulk.ExportRequest{Level: tc.level, Types: []string{"Observation"}, TypeFilters: tc.typeFilters})

			calls, lines := loopItem(t, f, src, clk, id, 0, func() (context.Context, context.CancelFunc) {
				return context.WithCancel(context.Background())
			})
			total := 0
			for i, c := range calls {
				total += c.rows
				if i == len(calls)-1 {
					continue
				}
				// The call stops at the first row past its budget.
				if c.done || c.rows != int(budget/perRow) || c.elapsed > budget {
					t.Errorf("call %d = %+v; want not done after %d rows, within the budget %v", i, c, budget/perRow, budget)
				}
			}
			if len(calls) < rows/int(budget/perRow) {
				t.Errorf("%d calls for %d rows, want one per %d rows", len(calls), rows, budget/perRow)
			}
			if total != rows {
				t.Errorf("the calls passed %d rows, want each of the %d rows once", total, rows)
			}
			slices.Sort(lines)
			if diff := cmp.Diff(want, lines); diff != "" {
				t.Errorf("exported lines mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExportItemStops: a call stops ItemMargin (at most a quarter of its
// time) before its context's deadline, on Lambda the function timeout,
// even with budget left; at its budget only once it has passed a few dozen
// rows, so a tiny budget does not checkpoint at every row. The Choice loop
// still writes every resource once.
func TestExportItemStops(t *testing.T) {
	const (
		rows   = 1000
		perRow = time.Second
	)
	for _, tc := range []struct {
		name     string
		budget   time.Duration
		timeout  time.Duration // the context's deadline after the call starts; 0: none
		wantRows int           // rows a call passes
	}{
		{"DeadlineBeforeBudget", 12 * time.Minute, 5 * time.Minute, 270},  // 5m - 30s
		{"ShortTimeout", 12 * time.Minute, 40 * time.Second, 30},          // 40s - 40s/4
		{"BudgetAfterFloor", 10 * time.Second, 0, 64},                     // minScanRows
		{"DeadlineBeforeFloor", 10 * time.Second, 40 * time.Second, 30},   // the deadline is not held back
		{"BudgetBeforeDeadline", 100 * time.Second, 5 * time.Minute, 100}, // the budget, past the floor
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := export.DefaultConfig()
			cfg.ItemBudget = tc.budget
			cfg.ItemMargin = 30 * time.Second
			// The context's deadline is on the wall clock, so the fake
			// clock runs ahead of it: the contexts never end in the test.
			f, src, clk := budgetFixture(t, cfg, time.Now().Add(time.Hour), perRow, false)
			want := putObservations(t, f, rows, func(int) bool { return true }, func(int) bool { return true })
			id := planOne(t, f, bulk.ExportRequest{Level: bulk.LevelSystem, Types: []string{"Observation"}})

			calls, lines := loopItem(t, f, src, clk, id, 0, func() (context.Context, context.CancelFunc) {
				if tc.timeout == 0 {
					return context.WithCancel(context.Background())
				}
				return context.WithDeadline(context.Background(), clk.Now().Add(tc.timeout))
			})
			for i, c := range calls[:len(calls)-1] {
				if c.done || c.rows != tc.wantRows {
					t.Errorf("call %d = %+v; want not done after %d rows", i, c, tc.wantRows)
				}
			}
			if last := calls[len(calls)-1]; last.rows > tc.wantRows {
				t.Errorf("last call = %+v; want at most %d rows", last, tc.wantRows)
			}
			// The last call passes what is left: none when a stop fell on
			// the last row.
			if len(calls) != rows/tc.wantRows+1 {
				t.Errorf("%d calls, want %d", len(calls), rows/tc.wantRows+1)
			}
			slices.Sort(lines)
			if diff := cmp.Diff(want, lines); diff != "" {
				t.Errorf("exported lines mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
