package mock_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/mock"
)

// TestNotSet: a call whose function field is nil panics naming the method
// and the field, for every method of every fake.
func TestNotSet(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		method string
		call   func()
	}{
		{"JobWriter.CreateJob", func() { _ = (&mock.JobWriter{}).CreateJob(ctx, nil) }},
		{"JobWriter.CreateJobWithin", func() { _ = (&mock.JobWriter{}).CreateJobWithin(ctx, nil, 1) }},
		{"JobWriter.Transition", func() { _, _ = (&mock.JobWriter{}).Transition(ctx, "j", nil, bulk.StatusFailed, nil) }},
		{"JobWriter.DeleteJob", func() { _ = (&mock.JobWriter{}).DeleteJob(ctx, "j") }},
		{"JobReader.GetJob", func() { _, _ = (&mock.JobReader{}).GetJob(ctx, "j") }},
		{"JobReader.ListJobs", func() { _ = (&mock.JobReader{}).ListJobs(ctx, nil) }},
		{"JobReader.ActiveJobs", func() { _, _ = (&mock.JobReader{}).ActiveJobs(ctx, "c") }},
		{"PlanStore.SavePlan", func() { _, _ = (&mock.PlanStore{}).SavePlan(ctx, "j", nil) }},
		{"PlanStore.GetPlan", func() { _, _ = (&mock.PlanStore{}).GetPlan(ctx, "j") }},
		{"ProgressStore.SaveProgress", func() { _ = (&mock.ProgressStore{}).SaveProgress(ctx, "j", nil) }},
		{"ProgressStore.ItemProgress", func() { _, _ = (&mock.ProgressStore{}).ItemProgress(ctx, "j", 0) }},
		{"ProgressStore.Progress", func() { _, _ = (&mock.ProgressStore{}).Progress(ctx, "j") }},
		{"ResourceScanner.Shards", func() { _ = (&mock.ResourceScanner{}).Shards() }},
		{"ResourceScanner.Count", func() { _, _ = (&mock.ResourceScanner{}).Count(ctx) }},
		{"ResourceScanner.Scan", func() { _ = (&mock.ResourceScanner{}).Scan(ctx, bulk.ScanRequest{}, nil) }},
		{"ResourceScanner.Compartment", func() { _ = (&mock.ResourceScanner{}).Compartment(ctx, "p", nil, nil) }},
		{"ResourceReader.Get", func() { _, _ = (&mock.ResourceReader{}).Get(ctx, "Patient", "p") }},
		{"ResourceReader.List", func() { _ = (&mock.ResourceReader{}).List(ctx, "Group", "", nil) }},
		{"GroupReader.GroupMembers", func() { _, _ = (&mock.GroupReader{}).GroupMembers(ctx, "g") }},
		{"GroupReader.IsGroupMember", func() { _, _ = (&mock.GroupReader{}).IsGroupMember(ctx, "g", "p") }},
		{"GroupReader.GroupMembership", func() { _, _ = (&mock.GroupReader{}).GroupMembership(ctx, "g") }},
		{"TombstoneReader.Tombstones", func() { _ = (&mock.TombstoneReader{}).Tombstones(ctx, "Patient", bulk.Range{}, nil) }},
		{"ResourceSink.Put", func() { _ = (&mock.ResourceSink{}).Put(ctx, nil) }},
		{"ResourceSink.Delete", func() { _ = (&mock.ResourceSink{}).Delete(ctx, bulk.Ref{}, time.Time{}) }},
		{"ResourceSink.TypeOf", func() { _, _ = (&mock.ResourceSink{}).TypeOf(ctx, "x") }},
	} {
		t.Run(tc.method, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				_, name, _ := strings.Cut(tc.method, ".")
				if !strings.Contains(msg, "mock."+tc.method) || !strings.Contains(msg, name+"Fn") {
					t.Errorf("%s with no function set panicked with %v, want a message naming mock.%s and %sFn", tc.method, r, tc.method, name)
				}
			}()
			tc.call()
		})
	}
}

// TestCalls: a method passes its arguments to its function field and
// returns what the field returns.
func TestCalls(t *testing.T) {
	ctx := context.Background()
	want := &bulk.Job{ID: "j1"}
	jobs := &mock.JobReader{GetJobFn: func(_ context.Context, id string) (*bulk.Job, error) {
		if id != "j1" {
			return nil, bulk.Errorf(bulk.ENOTFOUND, "no job %q", id)
		}
		return want, nil
	}}
	if got, err := jobs.GetJob(ctx, "j1"); got != want || err != nil {
		t.Errorf("GetJob(j1) = %v, %v; want %v, nil", got, err, want)
	}
	if _, err := jobs.GetJob(ctx, "j2"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("GetJob(j2) error = %v, want ENOTFOUND", err)
	}

	boom := errors.New("boom")
	var at time.Time
	sink := &mock.ResourceSink{DeleteFn: func(_ context.Context, ref bulk.Ref, t time.Time) error {
		at = t
		return boom
	}}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := sink.Delete(ctx, bulk.Ref{Type: "Patient", ID: "p"}, now); !errors.Is(err, boom) || !at.Equal(now) {
		t.Errorf("Delete = %v (at %v), want %v (at %v)", err, at, boom, now)
	}

	scanner := &mock.ResourceScanner{ShardsFn: func() int { return 4 }}
	if got := scanner.Shards(); got != 4 {
		t.Errorf("Shards() = %d, want 4", got)
	}
}
