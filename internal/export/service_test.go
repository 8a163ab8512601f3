package export_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/local/fsobj"
	"github.com/tranchehq/tranche/internal/mem"
	"github.com/tranchehq/tranche/internal/workflow"
)

// fixture is the engine over in-memory adapters with a controllable clock.
type fixture struct {
	svc  *export.Service
	res  *mem.ResourceStore
	objs bulk.ObjectStore
	now  time.Time
}

func newFixture(t *testing.T, cfg export.Config, objs bulk.ObjectStore) *fixture {
	t.Helper()
	f := &fixture{res: mem.NewResourceStore(2), objs: objs, now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	if f.objs == nil {
		f.objs = mem.NewObjectStore()
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.svc = export.NewService(mem.NewJobStore(), f.res, f.objs, cfg, logger)
	f.svc.Now = func() time.Time { return f.now }
	n := 0
	f.svc.NewID = func() string { n++; return fmt.Sprintf("job-%d", n) }
	wf, err := workflow.NewLocal(workflow.Steps{Svc: f.svc}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wf.Close)
	f.svc.Workflow = wf
	return f
}

func (f *fixture) put(t *testing.T, typ string, n int) {
	t.Helper()
	var rs []*bulk.Resource
	for i := range n {
		id := fmt.Sprintf("%s-%05d", typ, i)
		rs = append(rs, &bulk.Resource{Type: typ, ID: id, LastUpdated: f.now.Add(-time.Duration(n-i) * time.Second),
			Body: fmt.Appendf(nil, `{"resourceType":%q,"id":%q}`, typ, id)})
	}
	if err := f.res.Put(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

// wait polls the job until it is terminal.
func (f *fixture) wait(t *testing.T, id string) *bulk.Job {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		j, err := f.svc.Jobs.GetJob(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status.Terminal() {
			return j
		}
		time.Sleep(time.Millisecond) // poll interval
	}
	t.Fatalf("job %s did not finish", id)
	return nil
}

// TestCursorLoop: an item that runs out of budget checkpoints and resumes
// through the state machine's Choice loop; every resource lands once.
func TestCursorLoop(t *testing.T) {
	cfg := export.DefaultConfig()
	cfg.ItemBudget = 3000 * time.Second // 3,000 rows a call on the clock below
	cfg.MaxFileResources = 3000
	f := newFixture(t, cfg, nil)
	clk := &clock{t: f.now}
	f.svc.Now = clk.Now
	f.svc.Resources = &slowSource{ResourceSource: f.res, clock: clk, perRow: time.Second}
	f.put(t, "Observation", 10_000)
	j, err := f.svc.Kickoff(context.Background(), "c1", bulk.ExportRequest{Level: bulk.LevelSystem, OutputFormat: "application/fhir+ndjson"})
	if err != nil {
		t.Fatal(err)
	}
	if j = f.wait(t, j.ID); j.Status != bulk.StatusCompleted {
		t.Fatalf("status = %s (%s), want completed", j.Status, j.Failure)
	}
	progress, _ := f.svc.Jobs.Progress(context.Background(), j.ID)
	parts, seen := 0, map[string]bool{}
	for _, p := range progress {
		parts += p.Part
		for _, file := range p.Files {
			o, err := f.objs.Open(context.Background(), file.Key)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(o)
			for sc.Scan() {
				if seen[sc.Text()] {
					t.Fatalf("duplicate line %s", sc.Text())
				}
				seen[sc.Text()] = true
			}
			o.Close()
		}
	}
	if len(seen) != 10_000 {
		t.Errorf("exported %d resources, want 10000", len(seen))
	}
	if parts <= len(progress) {
		t.Errorf("%d checkpoints over %d items: the cursor loop never ran", parts, len(progress))
	}
}

// failingObjects refuses every write, as a full disk would.
type failingObjects struct{ bulk.ObjectStore }

func (failingObjects) Create(context.Context, string) (bulk.ObjectWriter, error) {
	return nil, errors.New("disk full: /var/lib/secret/path")
}

// TestFailedJob: an unrecoverable error ends in a failed job whose message
// says nothing internal (R49).
func TestFailedJob(t *testing.T) {
	f := newFixture(t, export.DefaultConfig(), failingObjects{mem.NewObjectStore()})
	f.put(t, "Patient", 10)
	j, err := f.svc.Kickoff(context.Background(), "c1", bulk.ExportRequest{Level: bulk.LevelSystem})
	if err != nil {
		t.Fatal(err)
	}
	j = f.wait(t, j.ID)
	if j.Status != bulk.StatusFailed {
		t.Fatalf("status = %s, want failed", j.Status)
	}
	if j.Failure == "" || containsAny(j.Failure, "disk", "/var") {
		t.Errorf("failure message %q must explain without internal detail", j.Failure)
	}
}

// TestPurge: finished jobs past their expiry disappear with their files;
// before that they are served (R53, R82).
func TestPurge(t *testing.T) {
	cfg := export.DefaultConfig()
	cfg.Retention = time.Hour
	f := newFixture(t, cfg, nil)
	f.put(t, "Patient", 5)
	j, err := f.svc.Kickoff(context.Background(), "c1", bulk.ExportRequest{Level: bulk.LevelSystem})
	if err != nil {
		t.Fatal(err)
	}
	f.wait(t, j.ID)
	ctx := context.Background()
	if n, err := f.svc.Purge(ctx); err != nil || n != 0 {
		t.Fatalf("Purge() before expiry = %d, %v; want 0", n, err)
	}
	if _, err := f.svc.Job(ctx, "c2", j.ID); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("another client's Job() = %v, want ENOTFOUND", err)
	}
	f.now = f.now.Add(2 * time.Hour)
	if _, err := f.svc.Job(ctx, "c1", j.ID); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("expired Job() = %v, want ENOTFOUND", err)
	}
	if n, err := f.svc.Purge(ctx); err != nil || n != 1 {
		t.Fatalf("Purge() after expiry = %d, %v; want 1", n, err)
	}
	if keys, _ := f.objs.List(ctx, j.ID+"/"); len(keys) != 0 {
		t.Errorf("files left after purge: %v", keys)
	}
	if _, err := f.svc.Jobs.GetJob(ctx, j.ID); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("GetJob after purge = %v, want ENOTFOUND", err)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestDistributedPlan: a plan with more items than InlineItems goes to the
// Distributed Map through an item list in the object store: Plan returns
// where it is (the same on a re-run), every item is exported, the manifest
// does not list it, and deleting the job deletes it.
func TestDistributedPlan(t *testing.T) {
	t.Run("Memory", func(t *testing.T) { testDistributedPlan(t, mem.NewObjectStore()) })
	t.Run("Files", func(t *testing.T) {
		objs, err := fsobj.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		testDistributedPlan(t, objs)
	})
}

func testDistributedPlan(t *testing.T, objs bulk.ObjectStore) {
	cfg := export.DefaultConfig()
	cfg.ItemResources = 1 // one item per type × shard
	cfg.InlineItems = 3
	f := newFixture(t, cfg, objs)
	for _, typ := range []string{"Patient", "Observation", "Condition"} {
		f.put(t, typ, 20)
	}
	ctx := context.Background()
	j, err := f.svc.Kickoff(ctx, "c1", bulk.ExportRequest{Level: bulk.LevelSystem})
	if err != nil {
		t.Fatal(err)
	}
	if j = f.wait(t, j.ID); j.Status != bulk.StatusCompleted {
		t.Fatalf("status = %s (%s), want completed", j.Status, j.Failure)
	}
	key := export.ItemsKey(j.ID)
	o, err := f.objs.Open(ctx, key)
	if err != nil {
		t.Fatalf("item list %s: %v", key, err)
	}
	var items []int
	err = json.NewDecoder(o).Decode(&items)
	o.Close()
	if err != nil || len(items) != 6 { // 3 types × 2 shards
		t.Fatalf("item list = %v, %v; want the 6 item indexes", items, err)
	}

	out, err := f.svc.Plan(ctx, j.ID) // a retried Plan (here after the fact: no work)
	if err != nil || out.ItemsKey != "" || out.Items == nil || len(out.Items) != 0 {
		t.Errorf("Plan() of a finished job = %+v, %v; want no items", out, err)
	}

	m, err := f.svc.Manifest(ctx, j, false, func(k string) string { return k })
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(m)
	if strings.Contains(string(raw), "items.json") {
		t.Errorf("the manifest lists the item list: %s", raw)
	}
	total := 0
	progress, _ := f.svc.Jobs.Progress(ctx, j.ID)
	for _, p := range progress {
		for _, file := range p.Files {
			total += int(file.Count)
		}
	}
	if total != 60 {
		t.Errorf("exported %d resources, want 60", total)
	}

	if err := f.svc.Cancel(ctx, "c1", j.ID); err != nil {
		t.Fatal(err)
	}
	if keys, _ := f.objs.List(ctx, j.ID+"/"); len(keys) != 0 {
		t.Errorf("objects left after the delete: %v", keys)
	}
}

// TestPlanOutput: Plan hands up to InlineItems items inline and writes more
// to ItemLists; a re-run writes the same list and returns the same output.
func TestPlanOutput(t *testing.T) {
	for _, tc := range []struct {
		name        string
		inline      int
		distributed bool
	}{
		{"Inline", 4, false},
		{"Distributed", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := export.DefaultConfig()
			cfg.ItemResources = 1
			cfg.InlineItems = tc.inline
			cfg.MaxConcurrency = 7
			f := newFixture(t, cfg, nil)
			lists := mem.NewObjectStore()
			f.svc.ItemLists = export.ItemLists{Store: lists, Bucket: "b", Prefix: "exports/"}
			f.svc.Workflow = idleWorkflow{}
			f.put(t, "Patient", 20)
			f.put(t, "Observation", 20)
			ctx := context.Background()
			j, err := f.svc.Kickoff(ctx, "c1", bulk.ExportRequest{Level: bulk.LevelSystem})
			if err != nil {
				t.Fatal(err)
			}
			first, err := f.svc.Plan(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := export.PlanOutput{Items: []int{0, 1, 2, 3}, MaxConcurrency: 7}
			if tc.distributed {
				want = export.PlanOutput{ItemsBucket: "b", ItemsKey: "exports/" + export.ItemsKey(j.ID), ResultsPrefix: "exports/" + j.ID + "/plan/results/", MaxConcurrency: 7}
			}
			if diff := cmp.Diff(want, first); diff != "" {
				t.Errorf("Plan() mismatch (-want +got):\n%s", diff)
			}
			raw, _ := json.Marshal(first)
			if tc.distributed && strings.Contains(string(raw), `"items"`) {
				t.Errorf("Plan() JSON = %s, want no items", raw)
			}
			again, err := f.svc.Plan(ctx, j.ID)
			if err != nil || !cmp.Equal(first, again) {
				t.Errorf("re-run Plan() = %+v, %v; want %+v", again, err, first)
			}
			keys, _ := lists.List(ctx, "")
			if !tc.distributed {
				if len(keys) != 0 {
					t.Errorf("item lists written for an inline plan: %v", keys)
				}
				return
			}
			o, err := lists.Open(ctx, export.ItemsKey(j.ID))
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			body, _ := io.ReadAll(o)
			if got := strings.TrimSpace(string(body)); got != "[0,1,2,3]" {
				t.Errorf("item list = %s, want [0,1,2,3]", got)
			}
		})
	}
}

// idleWorkflow starts nothing, so a test drives the steps itself.
type idleWorkflow struct{}

func (idleWorkflow) Start(context.Context, string) error { return nil }
func (idleWorkflow) Stop(context.Context, string) error  { return nil }
func (idleWorkflow) Running(context.Context, string) (bool, error) {
	return true, nil
}
