package workflow_test

import (
	"context"
	"encoding/json"
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

// TestGetObject: the local ItemReader reads item lists from the store the
// service writes them to, and nothing outside its bucket and prefix.
func TestGetObject(t *testing.T) {
	ctx := context.Background()
	store := mem.NewObjectStore()
	w, err := store.Create(ctx, "job-1/plan/items.json")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("[0,1,2]\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	get := workflow.GetObject(export.ItemLists{Store: store, Bucket: "b", Prefix: "exports/"})
	for _, tc := range []struct {
		name, bucket, key, want, wantErr string
	}{
		{name: "OK", bucket: "b", key: "exports/job-1/plan/items.json", want: "[0,1,2]\n"},
		{name: "OtherBucket", bucket: "c", key: "exports/job-1/plan/items.json", wantErr: "NoSuchKey"},
		{name: "OutsidePrefix", bucket: "b", key: "job-1/plan/items.json", wantErr: "NoSuchKey"},
		{name: "Missing", bucket: "b", key: "exports/job-2/plan/items.json", wantErr: "job-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, _ := json.Marshal(workflow.GetObjectInput{Bucket: tc.bucket, Key: tc.key})
			out, err := get(ctx, in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("GetObject() = %s, %v; want error containing %q", out, err, tc.wantErr)
				}
				return
			}
			if err != nil || string(out) != tc.want {
				t.Errorf("GetObject() = %q, %v; want %q", out, err, tc.want)
			}
		})
	}
}

// gatedJobs holds every Transition (the first thing Plan does) until gate
// is closed, so an execution is caught running.
type gatedJobs struct {
	bulk.JobStore
	gate chan struct{}
}

func (g gatedJobs) Transition(ctx context.Context, id string, from []bulk.Status, to bulk.Status, mutate func(*bulk.Job)) (*bulk.Job, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.JobStore.Transition(ctx, id, from, to, mutate)
}

// TestLocal_Running: an execution runs from Start until it ends, on its
// own or by Stop; an unknown one is not running.
func TestLocal_Running(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	jobs := gatedJobs{JobStore: mem.NewJobStore(), gate: make(chan struct{})}
	svc := export.NewService(jobs, mem.NewResourceStore(1), mem.NewObjectStore(), export.Config{}, logger)
	wf, err := workflow.NewLocal(workflow.Steps{Svc: svc}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wf.Close)
	svc.Workflow = wf
	running := func(id string) bool {
		t.Helper()
		ok, err := wf.Running(ctx, id)
		if err != nil {
			t.Fatalf("Running(%q): %v", id, err)
		}
		return ok
	}
	if running("unknown") {
		t.Error("Running(unknown) = true")
	}
	// An export of an empty store, which completes at once when let go.
	err = jobs.CreateJob(ctx, &bulk.Job{ID: "ends", ClientID: "c1", Status: bulk.StatusAccepted,
		Request: bulk.ExportRequest{Level: bulk.LevelSystem, OutputFormat: "application/fhir+ndjson"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"stopped", "ends"} {
		if err := wf.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		if !running(id) {
			t.Errorf("Running(%q) after Start = false", id)
		}
	}
	if err := wf.Stop(ctx, "stopped"); err != nil {
		t.Fatal(err)
	}
	if running("stopped") {
		t.Error("Running(stopped) after Stop = true")
	}
	close(jobs.gate)
	for deadline := time.Now().Add(10 * time.Second); running("ends"); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the execution never ended")
		}
	}
	if j, err := jobs.GetJob(ctx, "ends"); err != nil || j.Status != bulk.StatusCompleted {
		t.Errorf("job after its execution = %+v, %v; want completed", j, err)
	}
}

// flakyJobs fails every GetJob with err.
type flakyJobs struct {
	bulk.JobStore
	err error
}

func (f flakyJobs) GetJob(context.Context, string) (*bulk.Job, error) { return nil, f.err }

// TestStepErrorName: a step's transient store error is "Transient", which
// the definition retries; any other failure is "ExportError" (not
// States.TaskFailed: the States. prefix is Step Functions' own), which
// Catch [States.ALL] sends to MarkFailed.
func TestStepErrorName(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"Transient", bulk.Errorf(bulk.ETRANSIENT, "throttled"), "Transient"},
		{"NotFound", bulk.Errorf(bulk.ENOTFOUND, "no such job"), "ExportError"},
		{"Internal", errors.New("disk on fire"), "ExportError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := export.NewService(flakyJobs{mem.NewJobStore(), tc.err}, mem.NewResourceStore(1), mem.NewObjectStore(), export.DefaultConfig(), logger)
			_, err := workflow.Steps{Svc: svc}.ExportItem(context.Background(), export.ItemInput{JobID: "j1"})
			var named interface{ ErrorName() string }
			if !errors.As(err, &named) {
				t.Fatalf("ExportItem error = %v, want a named step error", err)
			}
			if got := named.ErrorName(); got != tc.want {
				t.Errorf("ErrorName() = %q, want %q", got, tc.want)
			}
			if !errors.Is(err, tc.err) && bulk.ErrorCode(err) != bulk.ErrorCode(tc.err) {
				t.Errorf("error = %v, want it to wrap %v", err, tc.err)
			}
		})
	}
	// A cancelled context is not a step failure: left unnamed.
	svc := export.NewService(flakyJobs{mem.NewJobStore(), context.Canceled}, mem.NewResourceStore(1), mem.NewObjectStore(), export.DefaultConfig(), logger)
	_, err := workflow.Steps{Svc: svc}.ExportItem(context.Background(), export.ItemInput{JobID: "j1"})
	var named interface{ ErrorName() string }
	if errors.As(err, &named) {
		t.Errorf("cancelled ExportItem error is named %q, want unnamed", named.ErrorName())
	}
}

// TestRegistry_ErrorNames: the local runner's steps fail under the names
// their Lambdas do (internal/aws/handler.Task): a step's own name, and
// "Transient" for one stopped by a cancelled context, which the steps
// leave unnamed (TestStepErrorName) and which the asl runner alone would
// call States.TaskFailed.
func TestRegistry_ErrorNames(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"Cancelled", context.Canceled, "Transient"},
		{"WrappedCancelled", fmt.Errorf("GetJob: %w", context.Canceled), "Transient"},
		{"Transient", bulk.Errorf(bulk.ETRANSIENT, "throttled"), "Transient"},
		{"Permanent", bulk.Errorf(bulk.ENOTFOUND, "no such job"), "ExportError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := export.NewService(flakyJobs{mem.NewJobStore(), tc.err}, mem.NewResourceStore(1), mem.NewObjectStore(), export.DefaultConfig(), logger)
			step := workflow.Steps{Svc: svc}.Registry()["ExportItemFunctionArn"]
			_, err := step(context.Background(), json.RawMessage(`{"jobId":"j1"}`))
			var named interface{ ErrorName() string }
			if !errors.As(err, &named) || named.ErrorName() != tc.want {
				t.Fatalf("ExportItemFunctionArn step error = %v, want one named %q", err, tc.want)
			}
			if got := workflow.ErrorName(err); got != tc.want {
				t.Errorf("ErrorName(%v) = %q, want %q", err, got, tc.want)
			}
			if !errors.Is(err, tc.err) && bulk.ErrorCode(err) != bulk.ErrorCode(tc.err) {
				t.Errorf("error = %v, want it to wrap %v", err, tc.err)
			}
		})
	}
	if got := workflow.ErrorName(errors.New("plain")); got != "Error" {
		t.Errorf(`ErrorName(plain error) = %q, want "Error" (Lambda's errorType for an unnamed error)`, got)
	}
}
