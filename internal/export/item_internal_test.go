package export

import (
	"context"
	"testing"
	"time"
)

// TestItemDeadlines: a call's end is margin before its context's deadline,
// the margin at most a quarter of the time the call has; its budget ends
// apart.
func TestItemDeadlines(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const budget, margin = 12 * time.Minute, 30 * time.Second
	for _, tc := range []struct {
		name     string
		deadline time.Duration // after t0; 0: none
		want     time.Duration // end, after t0
	}{
		{"NoDeadline", 0, 0},
		{"DeadlineAfterBudget", 15 * time.Minute, 15*time.Minute - margin},
		{"DeadlineBeforeBudget", 5 * time.Minute, 5*time.Minute - margin},
		{"ShortTimeout", time.Minute, time.Minute - 15*time.Second},
		{"DeadlinePassed", -time.Second, -time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.deadline != 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, t0.Add(tc.deadline))
				defer cancel()
			}
			budgetEnd, end := itemDeadlines(ctx, t0, budget, margin)
			if !budgetEnd.Equal(t0.Add(budget)) {
				t.Errorf("budgetEnd = t0%+v, want t0%+v", budgetEnd.Sub(t0), budget)
			}
			if tc.deadline == 0 {
				if !end.IsZero() {
					t.Errorf("end = %v, want none", end)
				}
			} else if !end.Equal(t0.Add(tc.want)) {
				t.Errorf("end = t0%+v, want t0%+v", end.Sub(t0), tc.want)
			}
		})
	}
}
