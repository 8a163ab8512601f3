package export_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/mem"
)

// fakeWorkflow answers Running from a set of running job ids; it records
// the jobs asked about and starts and stops nothing.
type fakeWorkflow struct {
	mu      sync.Mutex
	running map[string]bool
	errs    map[string]error
	asked   []string
}

var _ bulk.Workflow = (*fakeWorkflow)(nil)

func (w *fakeWorkflow) Start(context.Context, string) error { return nil }
func (w *fakeWorkflow) Stop(context.Context, string) error  { return nil }

func (w *fakeWorkflow) Running(_ context.Context, id string) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.asked = append(w.asked, id)
	return w.running[id], w.errs[id]
}

func TestService_Watchdog(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := t0.Add(time.Hour)
	grace := 15 * time.Minute
	jobs := mem.NewJobStore()
	objs := mem.NewObjectStore()
	cfg := export.DefaultConfig()
	cfg.WatchdogGrace = grace
	svc := export.NewService(jobs, mem.NewResourceStore(1), objs, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.Now = func() time.Time { return now }
	wf := &fakeWorkflow{
		running: map[string]bool{"running-old": true},
		errs:    map[string]error{"describe-fails": bulk.Errorf(bulk.ETRANSIENT, "throttled")},
	}
	svc.Workflow = wf

	put := func(id string, st bulk.Status, created time.Time) {
		t.Helper()
		j := &bulk.Job{ID: id, ClientID: "c1", Status: st, CreatedAt: created, UpdatedAt: created,
			TransactionTime: created, ExpiresAt: created.Add(24 * time.Hour)}
		if err := jobs.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		w, err := objs.Create(ctx, id+"/Patient.000.ndjson")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, `{"resourceType":"Patient","id":"p1"}`+"\n")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// id → the status the watchdog must leave the job in.
	want := map[string]bulk.Status{}
	for _, tc := range []struct {
		id      string
		status  bulk.Status
		created time.Time
		want    bulk.Status
	}{
		// Its execution ended without making it terminal: failed.
		{"stuck-in-progress", bulk.StatusInProgress, t0, bulk.StatusFailed},
		{"stuck-accepted", bulk.StatusAccepted, now.Add(-grace - time.Second), bulk.StatusFailed},
		// Its execution runs: never touched, however old.
		{"running-old", bulk.StatusInProgress, t0, bulk.StatusInProgress},
		// Kicked off within the grace period: its execution may not
		// have started yet.
		{"young", bulk.StatusAccepted, now.Add(-grace + time.Second), bulk.StatusAccepted},
		// Terminal jobs are not the watchdog's.
		{"completed", bulk.StatusCompleted, t0, bulk.StatusCompleted},
		{"failed", bulk.StatusFailed, t0, bulk.StatusFailed},
		// The workflow cannot answer now: left for the next pass.
		{"describe-fails", bulk.StatusInProgress, t0, bulk.StatusInProgress},
	} {
		put(tc.id, tc.status, tc.created)
		want[tc.id] = tc.want
	}

	n, err := svc.Watchdog(ctx)
	if bulk.ErrorCode(err) != bulk.ETRANSIENT {
		t.Errorf("Watchdog error = %v, want the ETRANSIENT of describe-fails", err)
	}
	if n != 2 {
		t.Errorf("Watchdog failed %d jobs, want 2", n)
	}
	for id, st := range want {
		j, err := jobs.GetJob(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status != st {
			t.Errorf("%s: status = %s, want %s", id, j.Status, st)
		}
		keys, _ := objs.List(ctx, id+"/")
		if failedByWatchdog := st == bulk.StatusFailed && strings.HasPrefix(id, "stuck"); failedByWatchdog {
			// Failed as MarkFailed fails: files removed, a client-safe
			// reason, and kept for the retention period from now.
			if len(keys) != 0 {
				t.Errorf("%s: files left after failing: %v", id, keys)
			}
			if j.Failure == "" || strings.Contains(j.Failure, "execution") || strings.Contains(j.Failure, "watchdog") {
				t.Errorf("%s: Failure = %q, want the client-safe reason", id, j.Failure)
			}
			if !j.ExpiresAt.Equal(now.Add(cfg.Retention)) {
				t.Errorf("%s: ExpiresAt = %v, want %v", id, j.ExpiresAt, now.Add(cfg.Retention))
			}
		} else if len(keys) != 1 {
			t.Errorf("%s: files = %v, want its file untouched", id, keys)
		}
	}
	// Only the old unfinished jobs are asked about.
	asked := map[string]bool{}
	for _, id := range wf.asked {
		asked[id] = true
	}
	for _, id := range []string{"young", "completed", "failed"} {
		if asked[id] {
			t.Errorf("the workflow was asked about %s", id)
		}
	}

	// A second pass finds nothing more to fail.
	wf.errs = nil
	if n, err := svc.Watchdog(ctx); n != 1 || err != nil {
		t.Errorf("second Watchdog = %d, %v; want 1 (describe-fails, now answered), nil", n, err)
	}
	if n, err := svc.Watchdog(ctx); n != 0 || err != nil {
		t.Errorf("third Watchdog = %d, %v; want 0, nil", n, err)
	}
}

// TestService_WatchdogFinishedMeanwhile: a job that its execution finishes
// between the listing and the workflow's answer is not failed.
func TestService_WatchdogFinishedMeanwhile(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	jobs := mem.NewJobStore()
	svc := export.NewService(jobs, mem.NewResourceStore(1), mem.NewObjectStore(), export.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.Now = func() time.Time { return t0.Add(time.Hour) }
	if err := jobs.CreateJob(ctx, &bulk.Job{ID: "j1", ClientID: "c1", Status: bulk.StatusInProgress, CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	svc.Workflow = finishingWorkflow{func() {
		if _, err := jobs.Transition(ctx, "j1", []bulk.Status{bulk.StatusInProgress}, bulk.StatusCompleted, nil); err != nil {
			t.Error(err)
		}
	}}
	if n, err := svc.Watchdog(ctx); n != 0 || err != nil {
		t.Errorf("Watchdog = %d, %v; want 0, nil", n, err)
	}
	if j, _ := jobs.GetJob(ctx, "j1"); j.Status != bulk.StatusCompleted {
		t.Errorf("status = %s, want completed", j.Status)
	}
}

// finishingWorkflow's execution finishes its job as Running is asked.
type finishingWorkflow struct{ finish func() }

func (finishingWorkflow) Start(context.Context, string) error { return nil }
func (finishingWorkflow) Stop(context.Context, string) error  { return nil }
func (w finishingWorkflow) Running(context.Context, string) (bool, error) {
	w.finish()
	return false, nil
}
