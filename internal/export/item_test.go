package export_test

import (
	"context"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
)

// endJobOnSave ends the job just before the item's checkpoint, as a cancel
// (or a cancel then a purge) racing a running Lambda would: end runs once,
// then SaveProgress reaches the store.
type endJobOnSave struct {
	bulk.JobStore
	end   func(ctx context.Context, id string) error
	ended bool
}

func (s *endJobOnSave) SaveProgress(ctx context.Context, id string, p *bulk.ItemProgress) error {
	if !s.ended {
		s.ended = true
		if err := s.end(ctx, id); err != nil {
			return err
		}
	}
	return s.JobStore.SaveProgress(ctx, id, p)
}

// TestExportItemJobEnded: when the checkpoint finds the job cancelled
// (ECONFLICT) or deleted (ENOTFOUND), ExportItem succeeds without a
// checkpoint and removes the files it wrote, which nothing else would.
func TestExportItemJobEnded(t *testing.T) {
	for _, tc := range []struct {
		name string
		code string
		end  func(jobs bulk.JobStore) func(ctx context.Context, id string) error
	}{
		{"Cancelled", bulk.ECONFLICT, func(jobs bulk.JobStore) func(context.Context, string) error {
			return func(ctx context.Context, id string) error {
				_, err := jobs.Transition(ctx, id, []bulk.Status{bulk.StatusAccepted, bulk.StatusInProgress}, bulk.StatusCancelled, nil)
				return err
			}
		}},
		{"Deleted", bulk.ENOTFOUND, func(jobs bulk.JobStore) func(context.Context, string) error {
			return jobs.DeleteJob
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, export.DefaultConfig(), nil)
			f.svc.Workflow = idleWorkflow{}
			f.put(t, "Patient", 10)
			ctx := context.Background()
			j, err := f.svc.Kickoff(ctx, "c1", bulk.ExportRequest{Level: bulk.LevelSystem, Types: []string{"Patient"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Plan(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			inner := f.svc.Jobs
			jobs := &endJobOnSave{JobStore: inner, end: tc.end(inner)}
			f.svc.Jobs = jobs

			out, err := f.svc.ExportItem(ctx, export.ItemInput{JobID: j.ID, Item: 0})
			if err != nil {
				t.Fatalf("ExportItem = %v, want nil", err)
			}
			if !jobs.ended {
				t.Fatal("ExportItem never saved its progress")
			}
			if !out.Done {
				t.Errorf("ExportItem Done = false, want true: nothing more to do")
			}
			if err := inner.SaveProgress(ctx, j.ID, &bulk.ItemProgress{}); bulk.ErrorCode(err) != tc.code {
				t.Fatalf("the store's SaveProgress = %v, want %s", err, tc.code)
			}
			if keys, err := f.objs.List(ctx, j.ID+"/"); err != nil || len(keys) != 0 {
				t.Errorf("files left after the job ended = %v, %v; want none", keys, err)
			}
		})
	}
}
