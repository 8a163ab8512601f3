package export_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
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
	cfg.ItemBudget = time.Nanosecond // checkpoint at every check
	cfg.MaxFileResources = 3000
	f := newFixture(t, cfg, nil)
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
