package export_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
)

// cancellingJobs cancels the job, and then the ExportItem call's context,
// as the call saves its checkpoint: what a DELETE does locally when it
// comes while an item closes its files (Cancel, then Workflow.Stop).
type cancellingJobs struct {
	bulk.JobStore
	cancel context.CancelFunc
}

func (j cancellingJobs) SaveProgress(_ context.Context, id string, p *bulk.ItemProgress) error {
	ctx := context.Background()
	if _, err := j.Transition(ctx, id, []bulk.Status{bulk.StatusAccepted, bulk.StatusInProgress}, bulk.StatusCancelled, nil); err != nil {
		return err
	}
	err := j.JobStore.SaveProgress(ctx, id, p)
	j.cancel()
	return err
}

// TestExportItemCancelledWhileSaving: an item whose job is cancelled as it
// checkpoints deletes the files it wrote, though its context is cancelled
// by then, and logs no warning.
func TestExportItemCancelledWhileSaving(t *testing.T) {
	f := newFixture(t, export.Config{}, nil)
	f.svc.Workflow = idleWorkflow{}
	var logs bytes.Buffer
	f.svc.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	f.put(t, "Observation", 10)
	id := planOne(t, f, bulk.ExportRequest{Level: bulk.LevelSystem})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.svc.Jobs = cancellingJobs{JobStore: f.svc.Jobs, cancel: cancel}
	if _, err := f.svc.ExportItem(ctx, export.ItemInput{JobID: id, Item: 0}); err != nil {
		t.Fatalf("ExportItem() = %v, want no error: the job was cancelled", err)
	}
	if ctx.Err() == nil {
		t.Fatal("the call's context was not cancelled: the test did not run as meant")
	}
	keys, err := f.objs.List(context.Background(), id+"/")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		t.Errorf("files left after the cancelled item: %v", keys)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("log:\n%s\nwant no warning", logs.String())
	}
}
