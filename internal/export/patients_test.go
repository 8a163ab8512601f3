package export_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/fhir"
)

// lookupSource is the store with a function field in front of Get, the
// read the kick-off checks make per value; nil passes the call on.
type lookupSource struct {
	bulk.ResourceSource
	get func(ctx context.Context, typ, id string) (*bulk.Resource, error)
}

func (s *lookupSource) Get(ctx context.Context, typ, id string) (*bulk.Resource, error) {
	if s.get != nil {
		return s.get(ctx, typ, id)
	}
	return s.ResourceSource.Get(ctx, typ, id)
}

// patientFixture stores fhir.MaxPatients Patients and two Groups: g-most
// has every one but those at i%1000 == 500 (ten of them), g-few only the
// first ten. ids are the Patients in a shuffled, fixed order, as a client
// might send them.
func patientFixture(t *testing.T) (f *fixture, src *lookupSource, ids []string) {
	t.Helper()
	f = newFixture(t, export.DefaultConfig(), nil)
	f.svc.Workflow = idleWorkflow{}
	var rs []*bulk.Resource
	var most []string
	for i := range fhir.MaxPatients {
		id := fmt.Sprintf("p%05d", i)
		ids = append(ids, id)
		if i%1000 != 500 {
			most = append(most, id)
		}
		rs = append(rs, &bulk.Resource{Type: "Patient", ID: id, LastUpdated: f.now.Add(-time.Hour), Patients: []string{id},
			Body: fmt.Appendf(nil, `{"resourceType":"Patient","id":%q}`, id)})
	}
	for id, members := range map[string][]string{"g-most": most, "g-few": ids[:10]} {
		rs = append(rs, &bulk.Resource{Type: "Group", ID: id, LastUpdated: f.now.Add(-time.Hour), Members: members,
			Body: fmt.Appendf(nil, `{"resourceType":"Group","id":%q}`, id)})
	}
	if err := f.res.Put(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	src = &lookupSource{ResourceSource: f.res}
	f.svc.Resources = src
	return f, src, ids
}

// nonMembers are ids' values that g-most leaves out, in ids' order.
func nonMembers(ids []string) []string {
	var out []string
	for _, id := range ids {
		var i int
		fmt.Sscanf(id, "p%05d", &i)
		if i%1000 == 500 {
			out = append(out, id)
		}
	}
	return out
}

// TestKickoffPatientChecks: a kick-off checks fhir.MaxPatients `patient`
// values with parallel reads and answers exactly as the checks in input
// order did: strict handling names the first failing value in input order,
// membership before existence (R24), a store error before a later failure
// wins and one after an earlier failure does not; lenient handling keeps
// the rest in input order and names each dropped value in input order
// (issue 12 item 4; requirements 1.5).
func TestKickoffPatientChecks(t *testing.T) {
	ctx := context.Background()
	f, src, ids := patientFixture(t)
	outs := nonMembers(ids)
	group := bulk.ExportRequest{Level: bulk.LevelGroup, GroupID: "g-most"}

	t.Run("all known at Patient level", func(t *testing.T) {
		j, err := f.svc.Kickoff(ctx, "c1", bulk.ExportRequest{Level: bulk.LevelPatient, Patients: slices.Clone(ids)})
		if err != nil {
			t.Fatalf("Kickoff(%d patients): %v", len(ids), err)
		}
		if diff := cmp.Diff(ids, j.Request.Patients); diff != "" {
			t.Errorf("Kickoff kept patients (-want +got):\n%s", diff)
		}
	})
	t.Run("strict names the first non-member in input order", func(t *testing.T) {
		req := group
		req.Patients = slices.Clone(ids)
		_, err := f.svc.Kickoff(ctx, "c1", req)
		want := fmt.Sprintf("patient Patient/%s is not a member of Group/g-most.", outs[0])
		if bulk.ErrorCode(err) != bulk.EINVALID || bulk.ErrorMessage(err) != want {
			t.Errorf("Kickoff(Group, %d patients) error = %v, want %s %q", len(ids), err, bulk.EINVALID, want)
		}
	})
	t.Run("a non-member that does not exist is a non-member", func(t *testing.T) {
		req := group
		req.Patients = append(slices.Clone(ids[:100]), "ghost", "p00500")
		_, err := f.svc.Kickoff(ctx, "c1", req)
		if want := "patient Patient/ghost is not a member of Group/g-most."; bulk.ErrorMessage(err) != want {
			t.Errorf("Kickoff error = %v, want %q", err, want)
		}
	})
	t.Run("lenient drops and names in input order", func(t *testing.T) {
		req := group
		req.Lenient = true
		req.Patients = append(slices.Clone(ids), "ghost")
		j, err := f.svc.Kickoff(ctx, "c1", req)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []string
		for _, p := range append(slices.Clone(outs), "ghost") {
			msgs = append(msgs, fmt.Sprintf("patient Patient/%s is not a member of Group/g-most. It was ignored (Prefer: handling=lenient).", p))
		}
		if diff := cmp.Diff(msgs, j.Request.Ignored); diff != "" {
			t.Errorf("Kickoff ignored (-want +got):\n%s", diff)
		}
		kept := slices.DeleteFunc(slices.Clone(ids), func(p string) bool { return slices.Contains(outs, p) })
		if diff := cmp.Diff(kept, j.Request.Patients); diff != "" {
			t.Errorf("Kickoff kept patients (-want +got):\n%s", diff)
		}
	})
	t.Run("unknown patients under lenient handling", func(t *testing.T) {
		j, err := f.svc.Kickoff(ctx, "c1", bulk.ExportRequest{Level: bulk.LevelPatient, Lenient: true, Patients: []string{"x2", ids[0], "x1"}})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"patient Patient/x2 is not known to this server. It was ignored (Prefer: handling=lenient).",
			"patient Patient/x1 is not known to this server. It was ignored (Prefer: handling=lenient).",
		}
		if diff := cmp.Diff(want, j.Request.Ignored); diff != "" || !slices.Equal(j.Request.Patients, ids[:1]) {
			t.Errorf("Kickoff ignored %v kept %v, want %v and [%s]", j.Request.Ignored, j.Request.Patients, want, ids[0])
		}
	})

	// A store error at one value, an unknown patient at another: the one
	// earlier in input order decides, however the reads interleave.
	boom := errors.New("boom")
	src.get = func(ctx context.Context, typ, id string) (*bulk.Resource, error) {
		if id == "err" {
			return nil, boom
		}
		return f.res.Get(ctx, typ, id)
	}
	t.Cleanup(func() { src.get = nil })
	for _, tc := range []struct {
		name     string
		patients []string
		lenient  bool
		check    func(error) bool
	}{
		{"error first", append(append(slices.Clone(ids[:50]), "err"), append(slices.Clone(ids[50:100]), "ghost")...), false,
			func(err error) bool { return errors.Is(err, boom) }},
		{"unknown first", append(append(slices.Clone(ids[:50]), "ghost"), append(slices.Clone(ids[50:100]), "err")...), false,
			func(err error) bool {
				return bulk.ErrorMessage(err) == "patient Patient/ghost is not known to this server."
			}},
		{"lenient error after unknown", append([]string{"ghost"}, append(slices.Clone(ids[:100]), "err")...), true,
			func(err error) bool { return errors.Is(err, boom) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Kickoff(ctx, "c1", bulk.ExportRequest{Level: bulk.LevelPatient, Lenient: tc.lenient, Patients: tc.patients})
			if !tc.check(err) {
				t.Errorf("Kickoff error = %v", err)
			}
		})
	}
}

// TestKickoffPatientParallel: the checks run Config.KickoffParallel at a
// time, never more: the first KickoffParallel reads wait until that many
// are in flight at once (a kick-off that read one at a time would never
// get past them).
func TestKickoffPatientParallel(t *testing.T) {
	f, src, ids := patientFixture(t)
	const limit = 8
	f.svc.Config.KickoffParallel = limit
	var (
		mu        sync.Mutex
		inFlight  int
		most      int
		started   int
		allIn     = make(chan struct{})
		closeOnce sync.Once
	)
	src.get = func(ctx context.Context, typ, id string) (*bulk.Resource, error) {
		mu.Lock()
		inFlight++
		started++
		most = max(most, inFlight)
		first := started <= limit
		if inFlight == limit {
			closeOnce.Do(func() { close(allIn) })
		}
		mu.Unlock()
		if first {
			<-allIn
		}
		defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
		return f.res.Get(ctx, typ, id)
	}
	if _, err := f.svc.Kickoff(context.Background(), "c1", bulk.ExportRequest{Level: bulk.LevelPatient, Patients: ids}); err != nil {
		t.Fatal(err)
	}
	if most != limit || started != len(ids) {
		t.Errorf("%d reads, at most %d at once; want %d, at most %d", started, most, len(ids), limit)
	}
}

// TestKickoffContractChecks: under a Group contract the `patient` values
// are checked in parallel with the same answers as in input order: 403
// naming the first outsider (R93), or under lenient handling each outsider
// named in input order and never looked up.
func TestKickoffContractChecks(t *testing.T) {
	ctx := context.Background()
	f, src, ids := patientFixture(t)
	outs := nonMembers(ids)
	contract := &bulk.Contract{Groups: []string{"g-few", "g-most"}}
	_, err := f.svc.Kickoff(ctx, "c1", bulk.ExportRequest{Level: bulk.LevelPatient, Contract: contract, Patients: slices.Clone(ids)})
	want := "patient Patient/" + outs[0] + " is outside this client's contract: not a member of Group/g-few, Group/g-most."
	if bulk.ErrorCode(err) != bulk.EFORBIDDEN || bulk.ErrorMessage(err) != want {
		t.Errorf("Kickoff(contract, %d patients) error = %v, want %s %q", len(ids), err, bulk.EFORBIDDEN, want)
	}

	var mu sync.Mutex
	looked := map[string]bool{}
	src.get = func(ctx context.Context, typ, id string) (*bulk.Resource, error) {
		mu.Lock()
		looked[id] = true
		mu.Unlock()
		return f.res.Get(ctx, typ, id)
	}
	j, err := f.svc.Kickoff(ctx, "c1", bulk.ExportRequest{Level: bulk.LevelPatient, Contract: contract, Lenient: true, Patients: slices.Clone(ids)})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, p := range outs {
		msgs = append(msgs, "patient Patient/"+p+" is outside this client's contract: not a member of Group/g-few, Group/g-most. It was ignored (Prefer: handling=lenient).")
		if looked[p] {
			t.Errorf("Patient/%s, outside the contract, was looked up", p)
		}
	}
	if diff := cmp.Diff(msgs, j.Request.Ignored); diff != "" {
		t.Errorf("Kickoff ignored (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ids, j.Request.Patients); diff != "" { // planning keeps only members
		t.Errorf("Kickoff patients (-want +got):\n%s", diff)
	}
}
