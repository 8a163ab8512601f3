package mock

import (
	"context"

	"github.com/tranchehq/tranche/internal/bulk"
)

var (
	_ bulk.JobWriter     = (*JobWriter)(nil)
	_ bulk.JobReader     = (*JobReader)(nil)
	_ bulk.PlanStore     = (*PlanStore)(nil)
	_ bulk.ProgressStore = (*ProgressStore)(nil)
)

// JobWriter is a bulk.JobWriter whose methods call its fields.
type JobWriter struct {
	CreateJobFn       func(ctx context.Context, j *bulk.Job) error
	CreateJobWithinFn func(ctx context.Context, j *bulk.Job, limit int) error
	TransitionFn      func(ctx context.Context, id string, from []bulk.Status, to bulk.Status, mutate func(*bulk.Job)) (*bulk.Job, error)
	DeleteJobFn       func(ctx context.Context, id string) error
}

// CreateJob calls CreateJobFn.
func (m *JobWriter) CreateJob(ctx context.Context, j *bulk.Job) error {
	if m.CreateJobFn == nil {
		notSet("JobWriter.CreateJob")
	}
	return m.CreateJobFn(ctx, j)
}

// CreateJobWithin calls CreateJobWithinFn.
func (m *JobWriter) CreateJobWithin(ctx context.Context, j *bulk.Job, limit int) error {
	if m.CreateJobWithinFn == nil {
		notSet("JobWriter.CreateJobWithin")
	}
	return m.CreateJobWithinFn(ctx, j, limit)
}

// Transition calls TransitionFn.
func (m *JobWriter) Transition(ctx context.Context, id string, from []bulk.Status, to bulk.Status, mutate func(*bulk.Job)) (*bulk.Job, error) {
	if m.TransitionFn == nil {
		notSet("JobWriter.Transition")
	}
	return m.TransitionFn(ctx, id, from, to, mutate)
}

// DeleteJob calls DeleteJobFn.
func (m *JobWriter) DeleteJob(ctx context.Context, id string) error {
	if m.DeleteJobFn == nil {
		notSet("JobWriter.DeleteJob")
	}
	return m.DeleteJobFn(ctx, id)
}

// JobReader is a bulk.JobReader whose methods call its fields.
type JobReader struct {
	GetJobFn     func(ctx context.Context, id string) (*bulk.Job, error)
	ListJobsFn   func(ctx context.Context, fn func(*bulk.Job) error) error
	ActiveJobsFn func(ctx context.Context, clientID string) (int, error)
}

// GetJob calls GetJobFn.
func (m *JobReader) GetJob(ctx context.Context, id string) (*bulk.Job, error) {
	if m.GetJobFn == nil {
		notSet("JobReader.GetJob")
	}
	return m.GetJobFn(ctx, id)
}

// ListJobs calls ListJobsFn.
func (m *JobReader) ListJobs(ctx context.Context, fn func(*bulk.Job) error) error {
	if m.ListJobsFn == nil {
		notSet("JobReader.ListJobs")
	}
	return m.ListJobsFn(ctx, fn)
}

// ActiveJobs calls ActiveJobsFn.
func (m *JobReader) ActiveJobs(ctx context.Context, clientID string) (int, error) {
	if m.ActiveJobsFn == nil {
		notSet("JobReader.ActiveJobs")
	}
	return m.ActiveJobsFn(ctx, clientID)
}

// PlanStore is a bulk.PlanStore whose methods call its fields.
type PlanStore struct {
	SavePlanFn func(ctx context.Context, id string, p *bulk.Plan) (*bulk.Plan, error)
	GetPlanFn  func(ctx context.Context, id string) (*bulk.Plan, error)
}

// SavePlan calls SavePlanFn.
func (m *PlanStore) SavePlan(ctx context.Context, id string, p *bulk.Plan) (*bulk.Plan, error) {
	if m.SavePlanFn == nil {
		notSet("PlanStore.SavePlan")
	}
	return m.SavePlanFn(ctx, id, p)
}

// GetPlan calls GetPlanFn.
func (m *PlanStore) GetPlan(ctx context.Context, id string) (*bulk.Plan, error) {
	if m.GetPlanFn == nil {
		notSet("PlanStore.GetPlan")
	}
	return m.GetPlanFn(ctx, id)
}

// ProgressStore is a bulk.ProgressStore whose methods call its fields.
type ProgressStore struct {
	SaveProgressFn func(ctx context.Context, id string, p *bulk.ItemProgress) error
	ItemProgressFn func(ctx context.Context, id string, index int) (*bulk.ItemProgress, error)
	ProgressFn     func(ctx context.Context, id string) ([]*bulk.ItemProgress, error)
}

// SaveProgress calls SaveProgressFn.
func (m *ProgressStore) SaveProgress(ctx context.Context, id string, p *bulk.ItemProgress) error {
	if m.SaveProgressFn == nil {
		notSet("ProgressStore.SaveProgress")
	}
	return m.SaveProgressFn(ctx, id, p)
}

// ItemProgress calls ItemProgressFn.
func (m *ProgressStore) ItemProgress(ctx context.Context, id string, index int) (*bulk.ItemProgress, error) {
	if m.ItemProgressFn == nil {
		notSet("ProgressStore.ItemProgress")
	}
	return m.ItemProgressFn(ctx, id, index)
}

// Progress calls ProgressFn.
func (m *ProgressStore) Progress(ctx context.Context, id string) ([]*bulk.ItemProgress, error) {
	if m.ProgressFn == nil {
		notSet("ProgressStore.Progress")
	}
	return m.ProgressFn(ctx, id)
}
