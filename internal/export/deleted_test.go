package export_test

import (
	"bufio"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
)

// failDeletedOnce fails the first checkpoint that records a `deleted` file,
// after the item wrote it, as a crash between the two would: the retried
// item must list every deletion once.
type failDeletedOnce struct {
	bulk.JobStore
	mu     sync.Mutex
	failed bool
}

func (s *failDeletedOnce) SaveProgress(ctx context.Context, id string, p *bulk.ItemProgress) error {
	s.mu.Lock()
	fail := !s.failed && slices.ContainsFunc(p.Files, func(f bulk.OutputFile) bool { return f.Kind == bulk.KindDeleted })
	s.failed = s.failed || fail
	s.mu.Unlock()
	if fail {
		return bulk.Errorf(bulk.ETRANSIENT, "checkpoint lost")
	}
	return s.JobStore.SaveProgress(ctx, id, p)
}

// TestGroupDeletedRetried: a Group export with _since lists the deletions
// of resources that were in a member's compartment, once each, even when
// the deleted item is retried after writing its file (R88).
func TestGroupDeletedRetried(t *testing.T) {
	f := newFixture(t, export.DefaultConfig(), nil)
	jobs := &failDeletedOnce{JobStore: f.svc.Jobs}
	f.svc.Jobs = jobs
	ctx := context.Background()
	before := f.now.Add(-10 * time.Hour)
	res := func(typ, id string, patients ...string) *bulk.Resource {
		return &bulk.Resource{Type: typ, ID: id, LastUpdated: before, Patients: patients,
			Body: []byte(`{"resourceType":"` + typ + `","id":"` + id + `"}`)}
	}
	g := res("Group", "g", "p1", "p2")
	g.Members = []string{"p1", "p2"}
	if err := f.res.Put(ctx, []*bulk.Resource{
		res("Patient", "p1", "p1"), res("Patient", "p2", "p2"), res("Patient", "p3", "p3"),
		res("Observation", "o1", "p1"), res("Observation", "o2", "p2"), res("Observation", "o3", "p1", "p2", "p3"),
		res("Observation", "o4", "p3"), res("Observation", "kept", "p1"), res("Medication", "m1"), g,
	}); err != nil {
		t.Fatal(err)
	}
	deletedAt := f.now.Add(-time.Hour)
	for _, r := range []bulk.Ref{
		{Type: "Observation", ID: "o1"}, {Type: "Observation", ID: "o2"}, {Type: "Observation", ID: "o3"},
		{Type: "Observation", ID: "o4"}, {Type: "Patient", ID: "p2"}, {Type: "Patient", ID: "p3"},
		{Type: "Medication", ID: "m1"}, {Type: "Observation", ID: "ghost"},
	} {
		if err := f.res.Delete(ctx, r, deletedAt); err != nil {
			t.Fatal(err)
		}
	}

	j, err := f.svc.Kickoff(ctx, "c1", bulk.ExportRequest{Level: bulk.LevelGroup, GroupID: "g",
		Since: f.now.Add(-2 * time.Hour), OutputFormat: "application/fhir+ndjson"})
	if err != nil {
		t.Fatal(err)
	}
	if j = f.wait(t, j.ID); j.Status != bulk.StatusCompleted {
		t.Fatalf("status = %s (%s), want completed", j.Status, j.Failure)
	}
	if !jobs.failed {
		t.Fatal("no checkpoint recorded a deleted file")
	}
	m, err := f.svc.Manifest(ctx, j, false, func(key string) string { return key })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, file := range m.Deleted {
		o, err := f.objs.Open(ctx, file.URL)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(o)
		for sc.Scan() {
			var b struct {
				Entry []struct{ Request struct{ Method, URL string } }
			}
			if err := json.Unmarshal(sc.Bytes(), &b); err != nil || len(b.Entry) != 1 || b.Entry[0].Request.Method != "DELETE" {
				t.Fatalf("bad deleted line %s", sc.Text())
			}
			got = append(got, b.Entry[0].Request.URL)
		}
		o.Close()
	}
	slices.Sort(got)
	// o1, o2 and o3 were in members' compartments (o3 also in p3's), p2
	// is a member; o4 and p3 were only in p3's, m1 in none, and ghost was
	// never stored.
	if want := []string{"Observation/o1", "Observation/o2", "Observation/o3", "Patient/p2"}; !slices.Equal(got, want) {
		t.Errorf("deleted = %v, want %v", got, want)
	}
}
