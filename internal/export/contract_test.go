package export_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
)

// TestContractPlan: a Patient-level export under a Group contract covers
// the members of the contract's Groups as of its transactionTime: a
// patient a Group lists only in a version stored after it is left out, a
// Group the contract names that is not stored adds nobody, and with
// `_since` the members who joined their first contract Group after it are
// new members (requirements 1.6, 5.3; R90, R93).
func TestContractPlan(t *testing.T) {
	f := newFixture(t, export.DefaultConfig(), nil)
	f.svc.Workflow = idleWorkflow{}
	ctx := context.Background()
	group := func(id string, at time.Time, members ...string) *bulk.Resource {
		return &bulk.Resource{Type: "Group", ID: id, LastUpdated: at, Members: members,
			Body: fmt.Appendf(nil, `{"resourceType":"Group","id":%q}`, id)}
	}
	var rs []*bulk.Resource
	for _, p := range []string{"p1", "p2", "p3", "p4", "p5"} {
		rs = append(rs, &bulk.Resource{Type: "Patient", ID: p, LastUpdated: f.now.Add(-3 * time.Hour), Patients: []string{p},
			Body: fmt.Appendf(nil, `{"resourceType":"Patient","id":%q}`, p)})
	}
	rs = append(rs, group("g1", f.now.Add(-2*time.Hour), "p1", "p2"), group("g2", f.now.Add(-time.Hour), "p2", "p3"),
		group("other", f.now.Add(-time.Hour), "p5"))
	if err := f.res.Put(ctx, rs); err != nil {
		t.Fatal(err)
	}
	contract := &bulk.Contract{Groups: []string{"g1", "g2", "not-stored"}}

	for _, tc := range []struct {
		name                string
		req                 bulk.ExportRequest
		members, newMembers []string
	}{
		{"members", bulk.ExportRequest{}, []string{"p1", "p2", "p3"}, nil},
		{"new members since", bulk.ExportRequest{Since: f.now.Add(-90 * time.Minute)}, []string{"p1", "p2", "p3"}, []string{"p3"}},
		{"patient narrows", bulk.ExportRequest{Patients: []string{"p3"}}, []string{"p3"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.Level, req.Contract = bulk.LevelPatient, contract
			j, err := f.svc.Kickoff(ctx, "c1", req)
			if err != nil {
				t.Fatal(err)
			}
			// g1 lists p4 from a version stored after the transactionTime.
			if err := f.res.Put(ctx, []*bulk.Resource{group("g1", f.now.Add(time.Minute), "p1", "p2", "p4")}); err != nil {
				t.Fatal(err)
			}
			defer f.res.Put(ctx, []*bulk.Resource{group("g1", f.now.Add(-2*time.Hour), "p1", "p2")})
			if _, err := f.svc.Plan(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			p, err := f.svc.Jobs.GetPlan(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.members, p.Members); diff != "" {
				t.Errorf("Plan(%+v).Members mismatch (-want +got):\n%s", req, diff)
			}
			if diff := cmp.Diff(tc.newMembers, p.NewMembers, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Plan(%+v).NewMembers mismatch (-want +got):\n%s", req, diff)
			}
			var planned []string
			for _, it := range p.Items {
				if !it.Deleted {
					planned = append(planned, it.Patients...)
				} else if diff := cmp.Diff(tc.members, it.Patients); diff != "" {
					t.Errorf("Plan(%+v) deletions' patients mismatch (-want +got):\n%s", req, diff)
				}
			}
			if diff := cmp.Diff(tc.members, planned); diff != "" {
				t.Errorf("Plan(%+v) items' patients mismatch (-want +got):\n%s", req, diff)
			}
		})
	}

	t.Run("patient outside", func(t *testing.T) {
		req := bulk.ExportRequest{Level: bulk.LevelPatient, Contract: contract, Patients: []string{"p5"}}
		if _, err := f.svc.Kickoff(ctx, "c1", req); bulk.ErrorCode(err) != bulk.EFORBIDDEN {
			t.Errorf("Kickoff(patient p5 outside the contract) error = %v, want %s", err, bulk.EFORBIDDEN)
		}
		req.Patients = []string{"nobody"}
		if _, err := f.svc.Kickoff(ctx, "c1", req); bulk.ErrorCode(err) != bulk.EFORBIDDEN {
			t.Errorf("Kickoff(unknown patient outside the contract) error = %v, want %s, not a hint that it does not exist", err, bulk.EFORBIDDEN)
		}
		req.Lenient = true
		j, err := f.svc.Kickoff(ctx, "c1", req)
		if err != nil {
			t.Fatalf("lenient Kickoff: %v", err)
		}
		if len(j.Request.Ignored) != 1 || !strings.Contains(j.Request.Ignored[0], "Patient/nobody") {
			t.Errorf("lenient Kickoff ignored %q, want one message naming Patient/nobody", j.Request.Ignored)
		}
		if _, err := f.svc.Plan(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		p, err := f.svc.Jobs.GetPlan(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Members) != 0 || len(p.Items) != 0 {
			t.Errorf("plan of an export whose patients were all ignored: members %v, %d items; want none, not every member", p.Members, len(p.Items))
		}
	})
}
