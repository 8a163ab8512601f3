// Package bulktest holds the contract suites that every adapter of a bulk
// port runs, in the manner of go-cloud's drivertest: in-memory, embedded and
// AWS stores pass the same tests, so they are interchangeable.
package bulktest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tranchehq/tranche/internal/bulk"
)

// t0 is the suite's reference time; resources are stamped at offsets from it.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// at returns t0 plus n seconds.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

// farFuture is an Until that includes every resource of the suite.
var farFuture = t0.AddDate(10, 0, 0)

// all is the range of every resource of the suite.
var all = bulk.Range{Until: farFuture}

// res builds a resource with a body that names it, the way an importer would
// store it. Its text names the version by its lastUpdated, so that each
// lastUpdated is new content: Put does not write a version the same as
// the live one (PutOutcome).
func res(typ, id string, lastUpdated time.Time, patients ...string) *bulk.Resource {
	slices.Sort(patients)
	instant := lastUpdated.UTC().Format(time.RFC3339Nano)
	return &bulk.Resource{
		Type:        typ,
		ID:          id,
		LastUpdated: lastUpdated,
		Body: fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"lastUpdated":%q},"text":{"status":"generated","div":"<div>version %s</div>"}}`,
			typ, id, instant, instant),
		Patients: slices.Compact(patients),
	}
}

// restamp returns r as an import would store it again from an export of
// it: the same text with a new meta.lastUpdated, and the lastUpdated the
// export gave it kept in the source-last-updated extension.
func restamp(r *bulk.Resource, lastUpdated time.Time) *bulk.Resource {
	c := clone(r)
	c.LastUpdated = lastUpdated
	old := fmt.Sprintf(`"meta":{"lastUpdated":%q}`, r.LastUpdated.UTC().Format(time.RFC3339Nano))
	c.Body = bytes.Replace(c.Body, []byte(old), fmt.Appendf(nil, `"meta":{"extension":[{"url":%q,"valueInstant":%q}],"lastUpdated":%q}`,
		bulk.SourceLastUpdatedURL, r.LastUpdated.UTC().Format(time.RFC3339Nano), lastUpdated.UTC().Format(time.RFC3339Nano)), 1)
	return c
}

// group builds a Group resource listing members. A Group is in its members'
// compartments.
func group(id string, lastUpdated time.Time, members ...string) *bulk.Resource {
	r := res("Group", id, lastUpdated, members...)
	r.Members = slices.Clone(r.Patients)
	return r
}

// dataset is the suite's standard content: three patients, resources in and
// out of compartments, ties on lastUpdated (so id breaks them), and Groups.
func dataset() []*bulk.Resource {
	rs := []*bulk.Resource{
		res("Patient", "p1", at(1), "p1"),
		res("Patient", "p2", at(2), "p2"),
		res("Patient", "p3", at(2), "p3"),
		res("Patient", "p4", at(9), "p4"),
		res("Medication", "m1", at(5)),
		res("Medication", "m2", at(5)),
		res("Condition", "c1", at(3), "p1"),
		res("Condition", "c2", at(4), "p2"),
		group("g1", at(10), "p1", "p3"),
		group("g2", at(11)),
	}
	for i := range 40 {
		// 40 Observations over 13 distinct instants, cycling over
		// p1, p2, p3 and no patient.
		var patients []string
		if p := i % 4; p < 3 {
			patients = []string{fmt.Sprintf("p%d", p+1)}
		}
		rs = append(rs, res("Observation", fmt.Sprintf("o%02d", i), at(20+i/3), patients...))
	}
	// One Observation about two patients.
	rs = append(rs, res("Observation", "shared", at(25), "p1", "p2"))
	return rs
}

// resourceOpts compares resources as stored: nil and empty lists are the same.
var resourceOpts = gocmp.Options{cmpopts.EquateEmpty()}

// RunResourceStoreTests runs the bulk.ResourceStore contract against stores
// made by open, which must return a new, empty store for each call and
// arrange its cleanup with t.Cleanup.
// It is long because it is the contract: one t.Run per rule, each short.
func RunResourceStoreTests(t *testing.T, open func(t *testing.T) bulk.ResourceStore) {
	ctx := context.Background()
	// load opens a store and puts rs in batches of varied size.
	load := func(t *testing.T, rs []*bulk.Resource) bulk.ResourceStore {
		t.Helper()
		s := open(t)
		for start := 0; start < len(rs); start += 7 {
			mustPut(t, s, rs[start:min(start+7, len(rs))]...)
		}
		return s
	}

	t.Run("FHIRVersion", func(t *testing.T) {
		// Issue 17: one store holds one FHIR release, recorded once.
		vs, ok := open(t).(bulk.FHIRVersionStore)
		if !ok {
			t.Fatal("the store does not implement bulk.FHIRVersionStore")
		}
		if v, err := vs.FHIRVersion(ctx); err != nil || v != "" {
			t.Fatalf("FHIRVersion() of a new store = %q, %v; want none", v, err)
		}
		for _, v := range []string{"stu3", "stu3"} { // recording it again is fine
			if err := vs.SetFHIRVersion(ctx, v); err != nil {
				t.Fatalf("SetFHIRVersion(%s): %v", v, err)
			}
		}
		err := vs.SetFHIRVersion(ctx, "r4")
		if bulk.ErrorCode(err) != bulk.ECONFLICT || !strings.Contains(bulk.ErrorMessage(err), "STU3") || !strings.Contains(bulk.ErrorMessage(err), "R4") {
			t.Fatalf("SetFHIRVersion(r4) on an STU3 store = %v, want ECONFLICT naming both", err)
		}
		if v, err := vs.FHIRVersion(ctx); err != nil || v != "stu3" {
			t.Fatalf("FHIRVersion() = %q, %v; want stu3", v, err)
		}
	})

	t.Run("Shards", func(t *testing.T) {
		if n := open(t).Shards(); n < 1 {
			t.Fatalf("Shards() = %d, want ≥ 1", n)
		}
	})

	t.Run("Get", func(t *testing.T) {
		s := load(t, dataset())
		for _, want := range dataset() {
			got, err := s.Get(ctx, want.Type, want.ID)
			if err != nil {
				t.Fatalf("Get(%s, %s): %v", want.Type, want.ID, err)
			}
			if diff := gocmp.Diff(want, got, resourceOpts); diff != "" {
				t.Errorf("Get(%s, %s) mismatch (-want +got):\n%s", want.Type, want.ID, diff)
			}
		}
		for _, rf := range []bulk.Ref{ref("Patient", "nope"), ref("Observation", "p1"), ref("Nothing", "p1")} {
			if _, err := s.Get(ctx, rf.Type, rf.ID); bulk.ErrorCode(err) != bulk.ENOTFOUND {
				t.Errorf("Get(%s, %s) error = %v, want %s", rf.Type, rf.ID, err, bulk.ENOTFOUND)
			}
		}
	})

	t.Run("PutCopiesInput", func(t *testing.T) {
		s := open(t)
		r := res("Patient", "p1", at(1), "p1")
		want := res("Patient", "p1", at(1), "p1")
		mustPut(t, s, r)
		// Importers reuse their buffers: the store must not keep them.
		copy(r.Body, strings.Repeat("x", len(r.Body)))
		r.Patients[0] = "x"
		got, err := s.Get(ctx, "Patient", "p1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(want, got, resourceOpts); diff != "" {
			t.Errorf("Get after the caller changed its input (-want +got):\n%s", diff)
		}
	})

	t.Run("PutInvalid", func(t *testing.T) {
		s := open(t)
		for _, r := range []*bulk.Resource{res("", "x", at(1)), res("Patient", "", at(1))} {
			if err := s.Put(ctx, []*bulk.Resource{r}); bulk.ErrorCode(err) != bulk.EINVALID {
				t.Errorf("Put(%q/%q) error = %v, want %s", r.Type, r.ID, err, bulk.EINVALID)
			}
		}
	})

	t.Run("PutReplaces", func(t *testing.T) {
		s := load(t, dataset())
		// c1 moves from p1 to p2 and from at(3) to at(30).
		v2 := res("Condition", "c1", at(30), "p2")
		mustPut(t, s, v2)
		got, err := s.Get(ctx, "Condition", "c1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(v2, got, resourceOpts); diff != "" {
			t.Errorf("Get after replace (-want +got):\n%s", diff)
		}
		if got := compartmentIDs(t, s, "p1", nil); slices.Contains(got, "Condition/c1") {
			t.Errorf("Compartment(p1) = %v, still holds the replaced Condition/c1", got)
		}
		if got := compartmentIDs(t, s, "p2", nil); !slices.Contains(got, "Condition/c1") {
			t.Errorf("Compartment(p2) = %v, want Condition/c1 in it", got)
		}
		// The old version is gone from its old place in scan order and
		// present once at its new one.
		old := bulk.Range{Until: at(3)}
		if got := ids(scanAll(t, s, "Condition", old, false)); slices.Contains(got, "c1") {
			t.Errorf("Scan(Condition, until at(3)) = %v, still holds the old version of c1", got)
		}
		if got, want := ids(scanAll(t, s, "Condition", all, false)), []string{"c2", "c1"}; !slices.Equal(got, want) {
			t.Errorf("Scan(Condition) = %v, want %v", got, want)
		}
		checkCount(t, s, "Condition", 2)
		// A Group that drops a member drops it from GroupMembers.
		mustPut(t, s, group("g1", at(12), "p3", "p4"))
		checkMembers(t, s, "g1", []string{"p3", "p4"})
		if ok, err := s.IsGroupMember(ctx, "g1", "p1"); err != nil || ok {
			t.Errorf("IsGroupMember(g1, p1) = %v, %v; want false after the Group dropped p1", ok, err)
		}
	})

	t.Run("PutOutcome", func(t *testing.T) {
		s := open(t)
		v1 := res("Observation", "o1", at(1), "p1")
		same := restamp(v1, at(2))
		otherPatients := res("Observation", "o1", at(1), "p2") // same body, other index
		v3 := res("Observation", "o1", at(3), "p2")
		for _, step := range []struct {
			name string
			put  []*bulk.Resource
			want []bulk.PutOutcome
			// stored is the version Get returns after the step.
			stored *bulk.Resource
		}{
			{"first", []*bulk.Resource{v1}, []bulk.PutOutcome{bulk.PutNew}, v1},
			{"again", []*bulk.Resource{v1}, []bulk.PutOutcome{bulk.PutUnchanged}, v1},
			{"restamped", []*bulk.Resource{same}, []bulk.PutOutcome{bulk.PutUnchanged}, v1},
			{"other patients", []*bulk.Resource{otherPatients}, []bulk.PutOutcome{bulk.PutReplaced}, otherPatients},
			{"changed, then restamped in one batch", []*bulk.Resource{v3, restamp(v3, at(4))}, []bulk.PutOutcome{bulk.PutReplaced, bulk.PutUnchanged}, v3},
		} {
			if got := putOutcomes(t, s, step.put...); !slices.Equal(got, step.want) {
				t.Errorf("%s: Put outcomes = %v, want %v", step.name, got, step.want)
			}
			got, err := s.Get(ctx, "Observation", "o1")
			if err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(step.stored, got, resourceOpts); diff != "" {
				t.Errorf("%s: Get mismatch (-want +got):\n%s", step.name, diff)
			}
			// Not written is not moved: one version, where it was.
			if got := scanAll(t, s, "Observation", all, false); len(got) != 1 || !got[0].LastUpdated.Equal(step.stored.LastUpdated) {
				t.Errorf("%s: Scan = %v, want the one version at %v", step.name, got, step.stored.LastUpdated)
			}
			checkCount(t, s, "Observation", 1)
		}
		if got := compartmentIDs(t, s, "p1", nil); len(got) != 0 {
			t.Errorf("Compartment(p1) = %v, want none: o1 moved to p2", got)
		}
		if err := s.Delete(ctx, ref("Observation", "o1"), at(10)); err != nil {
			t.Fatal(err)
		}
		if got := putOutcomes(t, s, v3); !slices.Equal(got, []bulk.PutOutcome{bulk.PutNew}) {
			t.Errorf("Put after Delete outcomes = %v, want [new]", got)
		}
		checkTombstones(t, s, "Observation", all, nil)

		// A Group stored again unchanged keeps its members' join times.
		g := group("g1", at(1), "p1", "p2")
		putOutcomes(t, s, g)
		if got := putOutcomes(t, s, restamp(g, at(5))); !slices.Equal(got, []bulk.PutOutcome{bulk.PutUnchanged}) {
			t.Errorf("Put of the same Group outcomes = %v, want [unchanged]", got)
		}
		checkMembership(t, s, "g1", []bulk.Member{{ID: "p1", Since: at(1)}, {ID: "p2", Since: at(1)}})
		if got := putOutcomes(t, s, group("g1", at(6), "p2")); !slices.Equal(got, []bulk.PutOutcome{bulk.PutReplaced}) {
			t.Errorf("Put of a Group with fewer members outcomes = %v, want [replaced]", got)
		}
		checkMembers(t, s, "g1", []string{"p2"})
	})

	t.Run("PutSameBatch", func(t *testing.T) {
		s := open(t)
		mustPut(t, s, res("Patient", "p1", at(1), "p1"), res("Patient", "p1", at(2), "p1"))
		got := scanAll(t, s, "Patient", all, false)
		if len(got) != 1 || !got[0].LastUpdated.Equal(at(2)) {
			t.Errorf("Scan after one batch with two versions = %v, want only the last", got)
		}
		checkCount(t, s, "Patient", 1)
	})

	t.Run("ScanOrder", func(t *testing.T) {
		data := dataset()
		s := load(t, data)
		for _, typ := range []string{"Patient", "Observation", "Medication", "Group", "Condition"} {
			want := filter(data, func(r *bulk.Resource) bool { return r.Type == typ })
			got := scanAll(t, s, typ, all, false)
			if diff := gocmp.Diff(want, got, resourceOpts); diff != "" {
				t.Errorf("Scan(%s) over all shards mismatch (-want +got):\n%s", typ, diff)
			}
		}
		if got := scanAll(t, s, "Encounter", all, false); len(got) != 0 {
			t.Errorf("Scan(Encounter) = %v, want nothing", got)
		}
	})

	t.Run("ScanRange", func(t *testing.T) {
		data := dataset()
		s := load(t, data)
		for _, rng := range []bulk.Range{
			{Until: at(22)},
			{Since: at(21), Until: at(24)}, // Since excludes at(21), Until includes at(24)
			{Since: at(20), Until: at(20)}, // empty
			{Since: at(19), Until: at(20)}, // exactly at(20)
			{Since: at(33), Until: farFuture},
			{Since: at(100), Until: farFuture},
			{Until: at(0)},
		} {
			want := filter(data, func(r *bulk.Resource) bool { return r.Type == "Observation" && rng.Contains(r.LastUpdated) })
			got := scanAll(t, s, "Observation", rng, false)
			if diff := gocmp.Diff(ids(want), ids(got)); diff != "" {
				t.Errorf("Scan(Observation, %v) mismatch (-want +got):\n%s", rng, diff)
			}
		}
	})

	t.Run("ScanCompartmentOnly", func(t *testing.T) {
		data := dataset()
		s := load(t, data)
		for _, typ := range []string{"Observation", "Medication"} {
			want := filter(data, func(r *bulk.Resource) bool { return r.Type == typ && len(r.Patients) > 0 })
			got := scanAll(t, s, typ, all, true)
			if diff := gocmp.Diff(ids(want), ids(got)); diff != "" {
				t.Errorf("Scan(%s, CompartmentOnly) mismatch (-want +got):\n%s", typ, diff)
			}
		}
	})

	t.Run("ScanCursor", func(t *testing.T) {
		s := load(t, dataset())
		// Stopping after every position and resuming from the cursor must
		// give exactly the rest: no loss, no duplicate.
		for _, rng := range []bulk.Range{all, {Since: at(21), Until: at(30)}} {
			for shard := range s.Shards() {
				req := bulk.ScanRequest{Type: "Observation", Shard: shard, Range: rng}
				full := scanShard(t, s, req)
				for k := range full {
					resumed := req
					resumed.Cursor = cursorAfter(t, s, req, k+1)
					if diff := gocmp.Diff(ids(full[k+1:]), ids(scanShard(t, s, resumed))); diff != "" {
						t.Errorf("Scan(shard %d, %v) resumed after %d mismatch (-want +got):\n%s", shard, rng, k+1, diff)
					}
				}
			}
		}
	})

	t.Run("ScanCursorAfterDelete", func(t *testing.T) {
		s := load(t, dataset())
		// A cursor is a position: deleting the resource it was taken at
		// does not lose the rest.
		for shard := range s.Shards() {
			req := bulk.ScanRequest{Type: "Observation", Shard: shard, Range: all}
			full := scanShard(t, s, req)
			if len(full) < 2 {
				continue
			}
			req.Cursor = cursorAfter(t, s, req, 1)
			if err := s.Delete(ctx, bulk.Ref{Type: "Observation", ID: full[0].ID}, at(100)); err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(ids(full[1:]), ids(scanShard(t, s, req))); diff != "" {
				t.Errorf("Scan(shard %d) resumed after a deleted resource mismatch (-want +got):\n%s", shard, diff)
			}
		}
	})

	t.Run("ScanStops", func(t *testing.T) {
		s := load(t, dataset())
		forEachShard(t, s, "Observation", func(req bulk.ScanRequest, n int) {
			if n < 2 {
				return
			}
			checkStops(t, fmt.Sprintf("Scan(shard %d)", req.Shard), func(ctx context.Context, fn bulk.Visit) error {
				return s.Scan(ctx, req, fn)
			})
		})
	})

	t.Run("Compartment", func(t *testing.T) {
		data := dataset()
		s := load(t, data)
		for _, tc := range []struct {
			patient string
			types   []string
		}{
			{"p1", nil},
			{"p2", nil},
			{"p1", []string{"Observation"}},
			{"p1", []string{"Condition", "Patient", "Encounter"}},
			{"p4", nil},
			{"p4", []string{"Observation"}},
			{"nobody", nil},
		} {
			want := filter(data, func(r *bulk.Resource) bool {
				_, in := slices.BinarySearch(r.Patients, tc.patient)
				return in && (len(tc.types) == 0 || slices.Contains(tc.types, r.Type))
			})
			var got []*bulk.Resource
			err := s.Compartment(ctx, tc.patient, tc.types, func(r *bulk.Resource, _ bulk.Cursor) error {
				got = append(got, clone(r))
				return nil
			})
			if err != nil {
				t.Fatalf("Compartment(%s, %v): %v", tc.patient, tc.types, err)
			}
			// The order is the adapter's: compare as sets.
			sortResources(want)
			sortResources(got)
			if diff := gocmp.Diff(want, got, resourceOpts); diff != "" {
				t.Errorf("Compartment(%s, %v) mismatch (-want +got):\n%s", tc.patient, tc.types, diff)
			}
		}
		checkStops(t, "Compartment(p1)", func(ctx context.Context, fn bulk.Visit) error {
			return s.Compartment(ctx, "p1", nil, fn)
		})
	})

	t.Run("GroupMembers", func(t *testing.T) {
		s := load(t, dataset())
		checkMembers(t, s, "g1", []string{"p1", "p3"})
		checkMembers(t, s, "g2", nil)
		for _, id := range []string{"nope", "p1"} {
			if m, err := s.GroupMembers(ctx, id); bulk.ErrorCode(err) != bulk.ENOTFOUND {
				t.Errorf("GroupMembers(%s) = %v, %v; want %s", id, m, err, bulk.ENOTFOUND)
			}
		}
		for _, tc := range []struct {
			group, patient string
			want           bool
		}{
			{"g1", "p1", true},
			{"g1", "p3", true},
			{"g1", "p2", false},
			{"g2", "p1", false},
			// IsGroupMember documents no ENOTFOUND: an unknown Group has
			// no members.
			{"nope", "p1", false},
		} {
			got, err := s.IsGroupMember(ctx, tc.group, tc.patient)
			if err != nil || got != tc.want {
				t.Errorf("IsGroupMember(%s, %s) = %v, %v; want %v, nil", tc.group, tc.patient, got, err, tc.want)
			}
		}
	})

	t.Run("GroupMembership", func(t *testing.T) {
		s := load(t, dataset())
		checkMembership(t, s, "g1", []bulk.Member{{ID: "p1", Since: at(10)}, {ID: "p3", Since: at(10)}})
		checkMembership(t, s, "g2", nil)
		for _, id := range []string{"nope", "p1"} {
			if m, err := s.GroupMembership(ctx, id); bulk.ErrorCode(err) != bulk.ENOTFOUND {
				t.Errorf("GroupMembership(%s) = %v, %v; want %s", id, m, err, bulk.ENOTFOUND)
			}
		}
		// A new version keeps the join time of members it still lists.
		mustPut(t, s, group("g1", at(12), "p3", "p4"))
		checkMembership(t, s, "g1", []bulk.Member{{ID: "p3", Since: at(10)}, {ID: "p4", Since: at(12)}})
		// A member that left and came back joins again.
		mustPut(t, s, group("g1", at(13), "p1", "p3", "p4"))
		checkMembership(t, s, "g1", []bulk.Member{{ID: "p1", Since: at(13)}, {ID: "p3", Since: at(10)}, {ID: "p4", Since: at(12)}})
		// A deleted Group that is stored again starts afresh.
		if err := s.Delete(ctx, ref("Group", "g1"), at(14)); err != nil {
			t.Fatal(err)
		}
		if m, err := s.GroupMembership(ctx, "g1"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("GroupMembership(g1) after Delete = %v, %v; want %s", m, err, bulk.ENOTFOUND)
		}
		mustPut(t, s, group("g1", at(15), "p3"))
		checkMembership(t, s, "g1", []bulk.Member{{ID: "p3", Since: at(15)}})
		// Two versions in one batch: the later one wins and keeps the join
		// times of the earlier.
		mustPut(t, s, group("g9", at(20), "p1"), group("g9", at(21), "p1", "p2"))
		checkMembership(t, s, "g9", []bulk.Member{{ID: "p1", Since: at(20)}, {ID: "p2", Since: at(21)}})
	})

	t.Run("Delete", func(t *testing.T) {
		s := load(t, dataset())
		for _, rf := range []bulk.Ref{ref("Condition", "c1"), ref("Group", "g1"), ref("Observation", "shared")} {
			if err := s.Delete(ctx, rf, at(50)); err != nil {
				t.Fatalf("Delete(%v): %v", rf, err)
			}
			if _, err := s.Get(ctx, rf.Type, rf.ID); bulk.ErrorCode(err) != bulk.ENOTFOUND {
				t.Errorf("Get(%v) after Delete error = %v, want %s", rf, err, bulk.ENOTFOUND)
			}
			if got := ids(scanAll(t, s, rf.Type, all, false)); slices.Contains(got, rf.ID) {
				t.Errorf("Scan(%s) after Delete = %v, still holds %s", rf.Type, got, rf.ID)
			}
			if got := listIDs(t, s, rf.Type, ""); slices.Contains(got, rf.ID) {
				t.Errorf("List(%s) after Delete = %v, still holds %s", rf.Type, got, rf.ID)
			}
			if types, err := s.TypeOf(ctx, rf.ID); err != nil || slices.Contains(types, rf.Type) {
				t.Errorf("TypeOf(%s) after Delete = %v, %v; want no %s", rf.ID, types, err, rf.Type)
			}
		}
		for _, p := range []string{"p1", "p2"} {
			for _, gone := range []string{"Condition/c1", "Observation/shared"} {
				if got := compartmentIDs(t, s, p, nil); slices.Contains(got, gone) {
					t.Errorf("Compartment(%s) after Delete = %v, still holds %s", p, got, gone)
				}
			}
		}
		if m, err := s.GroupMembers(ctx, "g1"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("GroupMembers(g1) after Delete = %v, %v; want %s", m, err, bulk.ENOTFOUND)
		}
		if ok, err := s.IsGroupMember(ctx, "g1", "p1"); err != nil || ok {
			t.Errorf("IsGroupMember(g1, p1) after Delete = %v, %v; want false, nil", ok, err)
		}
		checkCount(t, s, "Condition", 1)
		checkCount(t, s, "Group", 1)
		checkCount(t, s, "Observation", 40)

		// Tombstones: in range, including one for a resource never stored.
		if err := s.Delete(ctx, bulk.Ref{Type: "Condition", ID: "never"}, at(60)); err != nil {
			t.Fatal(err)
		}
		checkCount(t, s, "Condition", 1)
		want := []bulk.Tombstone{tomb("Condition", "c1", at(50), "p1"), tomb("Condition", "never", at(60))}
		checkTombstones(t, s, "Condition", all, want)
		checkTombstones(t, s, "Condition", bulk.Range{Since: at(50), Until: farFuture}, want[1:])
		checkTombstones(t, s, "Condition", bulk.Range{Until: at(50)}, want[:1])
		checkTombstones(t, s, "Condition", bulk.Range{Until: at(49)}, nil)
		checkTombstones(t, s, "Patient", all, nil)

		// Deleting again and Put bring nothing back twice.
		if err := s.Delete(ctx, bulk.Ref{Type: "Condition", ID: "c1"}, at(55)); err != nil {
			t.Fatal(err)
		}
		checkCount(t, s, "Condition", 1)
	})

	t.Run("PutClearsTombstone", func(t *testing.T) {
		s := load(t, dataset())
		for _, rf := range []bulk.Ref{ref("Condition", "c1"), ref("Condition", "c2")} {
			if err := s.Delete(ctx, rf, at(50)); err != nil {
				t.Fatal(err)
			}
		}
		back := res("Condition", "c1", at(40), "p3")
		mustPut(t, s, back)
		checkTombstones(t, s, "Condition", all, []bulk.Tombstone{tomb("Condition", "c2", at(50), "p2")})
		if got, err := s.Get(ctx, "Condition", "c1"); err != nil {
			t.Errorf("Get(Condition, c1) after Put = %v", err)
		} else if diff := gocmp.Diff(back, got, resourceOpts); diff != "" {
			t.Errorf("Get(Condition, c1) after Put mismatch (-want +got):\n%s", diff)
		}
		if got := compartmentIDs(t, s, "p3", []string{"Condition"}); !slices.Equal(got, []string{"Condition/c1"}) {
			t.Errorf("Compartment(p3, Condition) = %v, want [Condition/c1]", got)
		}
		checkCount(t, s, "Condition", 1)
	})

	t.Run("TombstonePatients", func(t *testing.T) {
		s := load(t, dataset())
		// A version that moved to another compartment: the tombstone has
		// the deleted version's patients, not the earlier one's.
		mustPut(t, s, res("Condition", "c2", at(30), "p3"))
		for _, d := range []bulk.Tombstone{
			tomb("Condition", "c1", at(50)),
			tomb("Condition", "c2", at(51)),
			tomb("Observation", "shared", at(52)),
			tomb("Observation", "o03", at(53)), // in no compartment
			tomb("Patient", "p2", at(54)),
			tomb("Medication", "m1", at(55)),
			tomb("Patient", "never", at(56)), // not stored: unknown
			tomb("Group", "g1", at(57)),
		} {
			if err := s.Delete(ctx, bulk.Ref{Type: d.Type, ID: d.ID}, d.DeletedAt); err != nil {
				t.Fatalf("Delete(%s/%s): %v", d.Type, d.ID, err)
			}
		}
		checkTombstones(t, s, "Condition", all, []bulk.Tombstone{
			tomb("Condition", "c1", at(50), "p1"),
			tomb("Condition", "c2", at(51), "p3"),
		})
		checkTombstones(t, s, "Observation", all, []bulk.Tombstone{
			tomb("Observation", "shared", at(52), "p1", "p2"),
			tomb("Observation", "o03", at(53)),
		})
		checkTombstones(t, s, "Patient", all, []bulk.Tombstone{
			tomb("Patient", "p2", at(54), "p2"),
			tomb("Patient", "never", at(56)),
		})
		checkTombstones(t, s, "Medication", all, []bulk.Tombstone{tomb("Medication", "m1", at(55))})
		checkTombstones(t, s, "Group", all, []bulk.Tombstone{tomb("Group", "g1", at(57), "p1", "p3")})
		checkTombstones(t, s, "Observation", bulk.Range{Since: at(52), Until: farFuture}, []bulk.Tombstone{
			tomb("Observation", "o03", at(53)),
		})

		// Deleted again: the tombstone moves and keeps its patients.
		if err := s.Delete(ctx, ref("Condition", "c1"), at(60)); err != nil {
			t.Fatal(err)
		}
		checkTombstones(t, s, "Condition", all, []bulk.Tombstone{
			tomb("Condition", "c2", at(51), "p3"),
			tomb("Condition", "c1", at(60), "p1"),
		})
		// Stored again in another compartment, then deleted: the new
		// version's patients.
		mustPut(t, s, res("Condition", "c1", at(61), "p2", "p3"))
		checkTombstones(t, s, "Condition", all, []bulk.Tombstone{tomb("Condition", "c2", at(51), "p3")})
		if err := s.Delete(ctx, ref("Condition", "c1"), at(62)); err != nil {
			t.Fatal(err)
		}
		checkTombstones(t, s, "Condition", all, []bulk.Tombstone{
			tomb("Condition", "c2", at(51), "p3"),
			tomb("Condition", "c1", at(62), "p2", "p3"),
		})
		// A tombstone's patients stay the caller's: changing a visited
		// slice changes nothing stored.
		err := s.Tombstones(ctx, "Condition", all, func(ts bulk.Tombstone) error {
			for i := range ts.Patients {
				ts.Patients[i] = "x"
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		checkTombstones(t, s, "Condition", all, []bulk.Tombstone{
			tomb("Condition", "c2", at(51), "p3"),
			tomb("Condition", "c1", at(62), "p2", "p3"),
		})
	})

	t.Run("TombstoneOrder", func(t *testing.T) {
		s := open(t)
		deletes := []bulk.Tombstone{
			tomb("Observation", "b", at(3)),
			tomb("Observation", "c", at(1)),
			tomb("Observation", "a", at(3)),
			tomb("Observation", "d", at(2)),
		}
		for _, d := range deletes {
			if err := s.Delete(ctx, bulk.Ref{Type: d.Type, ID: d.ID}, d.DeletedAt); err != nil {
				t.Fatal(err)
			}
		}
		checkTombstones(t, s, "Observation", all, []bulk.Tombstone{
			tomb("Observation", "c", at(1)),
			tomb("Observation", "d", at(2)),
			tomb("Observation", "a", at(3)),
			tomb("Observation", "b", at(3)),
		})
		var n int
		stop := errors.New("stop")
		err := s.Tombstones(ctx, "Observation", all, func(bulk.Tombstone) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("Tombstones with a failing visit = %v after %d visits, want %v after 1", err, n, stop)
		}
	})

	t.Run("Count", func(t *testing.T) {
		s := open(t)
		if got, err := s.Count(ctx); err != nil || len(nonZero(got)) != 0 {
			t.Errorf("Count() of an empty store = %v, %v; want no counts", got, err)
		}
		s = load(t, dataset())
		got, err := s.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"Patient": 4, "Medication": 2, "Condition": 2, "Group": 2, "Observation": 41}
		if diff := gocmp.Diff(want, nonZero(got)); diff != "" {
			t.Errorf("Count() mismatch (-want +got):\n%s", diff)
		}
		mustPut(t, s, dataset()...) // replacing changes nothing
		mustPut(t, s, res("Encounter", "e1", at(1), "p1"))
		want["Encounter"] = 1
		for _, r := range dataset() {
			if r.Type == "Medication" {
				if err := s.Delete(ctx, bulk.Ref{Type: r.Type, ID: r.ID}, at(100)); err != nil {
					t.Fatal(err)
				}
			}
		}
		delete(want, "Medication")
		got, err = s.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(want, nonZero(got)); diff != "" {
			t.Errorf("Count() after replace and delete mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("TypeOf", func(t *testing.T) {
		s := load(t, dataset())
		mustPut(t, s, res("Observation", "p1", at(1)), res("Encounter", "p1", at(1)))
		for _, tc := range []struct {
			id   string
			want []string
		}{
			{"p1", []string{"Encounter", "Observation", "Patient"}},
			{"o01", []string{"Observation"}},
			{"nope", nil},
			{"p", nil}, // a prefix of an id is not the id
		} {
			got, err := s.TypeOf(ctx, tc.id)
			if err != nil {
				t.Fatalf("TypeOf(%s): %v", tc.id, err)
			}
			slices.Sort(got)
			if diff := gocmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("TypeOf(%s) mismatch (-want +got):\n%s", tc.id, diff)
			}
		}
	})

	t.Run("List", func(t *testing.T) {
		data := dataset()
		s := load(t, data)
		var want []string
		for _, r := range data {
			if r.Type == "Observation" {
				want = append(want, r.ID)
			}
		}
		slices.Sort(want)
		if diff := gocmp.Diff(want, listIDs(t, s, "Observation", "")); diff != "" {
			t.Errorf("List(Observation) mismatch (-want +got):\n%s", diff)
		}
		for _, after := range []string{want[0], "o10", "o105", want[len(want)-1], "zzz"} {
			var rest []string
			for _, id := range want {
				if id > after {
					rest = append(rest, id)
				}
			}
			if diff := gocmp.Diff(rest, listIDs(t, s, "Observation", after), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("List(Observation, after %q) mismatch (-want +got):\n%s", after, diff)
			}
		}
		// List returns the stored resources.
		var got []*bulk.Resource
		if err := s.List(ctx, "Group", "", func(r *bulk.Resource, _ bulk.Cursor) error {
			got = append(got, clone(r))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		wantGroups := filter(data, func(r *bulk.Resource) bool { return r.Type == "Group" })
		if diff := gocmp.Diff(wantGroups, got, resourceOpts); diff != "" {
			t.Errorf("List(Group) mismatch (-want +got):\n%s", diff)
		}
		checkStops(t, "List(Observation)", func(ctx context.Context, fn bulk.Visit) error {
			return s.List(ctx, "Observation", "", fn)
		})
	})

	t.Run("AcrossShards", func(t *testing.T) {
		// Issue 12: a store may split the keys that every write of a type
		// or a Group shares by shard, as it splits scans; its reads merge
		// them. Enough ids that every shard holds some, put out of order.
		s := open(t)
		const nObs, nMembers = 120, 300
		var rs []*bulk.Resource
		var obs []string
		for i := range nObs {
			id := fmt.Sprintf("x%03d", (i*37)%nObs)
			obs = append(obs, id)
			rs = append(rs, res("Observation", id, at(i%5), fmt.Sprintf("m%03d", i%7)))
		}
		slices.Sort(obs)
		var members []bulk.Member
		var ids []string
		for i := range nMembers {
			id := fmt.Sprintf("m%03d", (i*113)%nMembers)
			ids = append(ids, id)
		}
		rs = append(rs, group("big", at(1), ids...))
		slices.Sort(ids)
		for _, id := range ids {
			members = append(members, bulk.Member{ID: id, Since: at(1)})
		}
		for start := 0; start < len(rs); start += 50 {
			mustPut(t, s, rs[start:min(start+50, len(rs))]...)
		}

		// List: id order across shards, each once, resumable anywhere.
		if diff := gocmp.Diff(obs, listIDs(t, s, "Observation", "")); diff != "" {
			t.Errorf("List(Observation) mismatch (-want +got):\n%s", diff)
		}
		for k := 0; k < nObs; k += 17 {
			if diff := gocmp.Diff(obs[k+1:], listIDs(t, s, "Observation", obs[k]), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("List(Observation, after %s) mismatch (-want +got):\n%s", obs[k], diff)
			}
		}
		// A Group of N members reads back N, each once, in id order.
		checkMembership(t, s, "big", members)
		got, err := s.GroupMembers(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		if slices.Sort(got); !slices.Equal(got, ids) {
			t.Errorf("GroupMembers(big) = %d ids, want the %d members once each", len(got), len(ids))
		}
		for _, id := range append(slices.Clone(ids[:20]), ids[nMembers-20:]...) {
			if ok, err := s.IsGroupMember(ctx, "big", id); err != nil || !ok {
				t.Errorf("IsGroupMember(big, %s) = %v, %v; want true", id, ok, err)
			}
		}
		if ok, err := s.IsGroupMember(ctx, "big", "m9999"); err != nil || ok {
			t.Errorf("IsGroupMember(big, m9999) = %v, %v; want false", ok, err)
		}
		// The Group is in each member's compartment (many compartments).
		if got := compartmentIDs(t, s, ids[nMembers/2], nil); !slices.Contains(got, "Group/big") {
			t.Errorf("Compartment(%s) = %v, want Group/big in it", ids[nMembers/2], got)
		}
		checkCount(t, s, "Observation", nObs)
		checkCount(t, s, "Group", 1)

		// Half the members leave: the other half stays, each once.
		var kept []string
		var keptMembers []bulk.Member
		for i, id := range ids {
			if i%2 == 0 {
				kept = append(kept, id)
				keptMembers = append(keptMembers, bulk.Member{ID: id, Since: at(1)})
			}
		}
		mustPut(t, s, group("big", at(2), kept...))
		checkMembership(t, s, "big", keptMembers)
		if ok, err := s.IsGroupMember(ctx, "big", ids[1]); err != nil || ok {
			t.Errorf("IsGroupMember(big, %s) after it left = %v, %v; want false", ids[1], ok, err)
		}

		// Tombstones: (deletedAt, id) order across shards, each once.
		var want []bulk.Tombstone
		for i, id := range obs[:60] {
			when := at(100 + (i*7)%3)
			if err := s.Delete(ctx, ref("Observation", id), when); err != nil {
				t.Fatal(err)
			}
			k := slices.IndexFunc(rs, func(r *bulk.Resource) bool { return r.Type == "Observation" && r.ID == id })
			want = append(want, tomb("Observation", id, when, rs[k].Patients...))
		}
		slices.SortFunc(want, func(a, b bulk.Tombstone) int {
			return cmp.Or(a.DeletedAt.Compare(b.DeletedAt), strings.Compare(a.ID, b.ID))
		})
		checkTombstones(t, s, "Observation", all, want)
		checkTombstones(t, s, "Observation", bulk.Range{Since: at(100), Until: at(101)}, filterTombs(want, bulk.Range{Since: at(100), Until: at(101)}))
		if diff := gocmp.Diff(obs[60:], listIDs(t, s, "Observation", "")); diff != "" {
			t.Errorf("List(Observation) after deleting 60 mismatch (-want +got):\n%s", diff)
		}
		checkCount(t, s, "Observation", nObs-60)
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(2)
			go func() {
				defer wg.Done()
				for i := range 25 {
					id := fmt.Sprintf("w%d-%02d", w, i)
					if err := s.Put(ctx, []*bulk.Resource{res("Observation", id, at(i), "p1")}); err != nil {
						t.Error(err)
					}
				}
			}()
			go func() {
				defer wg.Done()
				for range 5 {
					for shard := range s.Shards() {
						err := s.Scan(ctx, bulk.ScanRequest{Type: "Observation", Shard: shard, Range: all},
							func(*bulk.Resource, bulk.Cursor) error { return nil })
						if err != nil {
							t.Error(err)
						}
					}
				}
			}()
		}
		wg.Wait()
		checkCount(t, s, "Observation", 100)
		if got := len(scanAll(t, s, "Observation", all, false)); got != 100 {
			t.Errorf("Scan after concurrent Puts found %d resources, want 100", got)
		}
	})
}

// checkStops checks that a visit's error stops a read and comes back, that
// ErrStop stops it without an error, and that cancelling the context stops
// it. read must visit at least two resources.
func checkStops(t *testing.T, name string, read func(context.Context, bulk.Visit) error) {
	t.Helper()
	ctx := context.Background()
	total := 0
	if err := read(ctx, func(*bulk.Resource, bulk.Cursor) error { total++; return nil }); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if total < 2 {
		t.Fatalf("%s visited %d resources; the test needs 2", name, total)
	}

	boom := errors.New("boom")
	n := 0
	err := read(ctx, func(*bulk.Resource, bulk.Cursor) error { n++; return boom })
	if !errors.Is(err, boom) || n != 1 {
		t.Errorf("%s with a failing visit = %v after %d visits, want %v after 1", name, err, n, boom)
	}

	n = 0
	err = read(ctx, func(*bulk.Resource, bulk.Cursor) error { n++; return bulk.ErrStop })
	if err != nil || n != 1 {
		t.Errorf("%s stopped with ErrStop = %v after %d visits, want nil after 1", name, err, n)
	}

	cctx, cancel := context.WithCancel(ctx)
	n = 0
	err = read(cctx, func(*bulk.Resource, bulk.Cursor) error { n++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("%s cancelled in its first visit = %v after %d visits, want %v after 1", name, err, n, context.Canceled)
	}

	n = 0
	err = read(cctx, func(*bulk.Resource, bulk.Cursor) error { n++; return nil })
	if !errors.Is(err, context.Canceled) || n != 0 {
		t.Errorf("%s with a cancelled context = %v after %d visits, want %v after 0", name, err, n, context.Canceled)
	}
}

func mustPut(t *testing.T, s bulk.ResourceStore, rs ...*bulk.Resource) {
	t.Helper()
	putOutcomes(t, s, rs...)
}

// putOutcomes puts copies of rs (so stores that kept the caller's slices
// would be caught by the tests comparing with fresh values) and returns
// the Outcome Put set on each.
func putOutcomes(t *testing.T, s bulk.ResourceStore, rs ...*bulk.Resource) []bulk.PutOutcome {
	t.Helper()
	cs := make([]*bulk.Resource, len(rs))
	out := make([]bulk.PutOutcome, len(rs))
	for i, r := range rs {
		cs[i] = clone(r)
		cs[i].Outcome = &out[i]
	}
	if err := s.Put(context.Background(), cs); err != nil {
		t.Fatalf("Put(%d resources): %v", len(rs), err)
	}
	for i, c := range cs {
		if out[i] == 0 {
			t.Errorf("Put(%d resources) recorded no Outcome for %s/%s", len(rs), c.Type, c.ID)
		}
	}
	return out
}

// scanShard returns the resources a scan visits, checking that they come in
// strict (lastUpdated, id) order and that each cursor resumes right after its
// resource.
func scanShard(t *testing.T, s bulk.ResourceSource, req bulk.ScanRequest) []*bulk.Resource {
	t.Helper()
	var got []*bulk.Resource
	err := s.Scan(context.Background(), req, func(r *bulk.Resource, next bulk.Cursor) error {
		if n := len(got); n > 0 && compareScanOrder(got[n-1], r) >= 0 {
			t.Errorf("Scan(%s, shard %d) visited %s/%s at %v after %s at %v: not in (lastUpdated, id) order",
				req.Type, req.Shard, r.Type, r.ID, r.LastUpdated, got[n-1].ID, got[n-1].LastUpdated)
		}
		if next == "" {
			t.Errorf("Scan(%s, shard %d) gave %s an empty cursor", req.Type, req.Shard, r.ID)
		}
		got = append(got, clone(r))
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%+v): %v", req, err)
	}
	return got
}

// scanAll scans every shard of typ and returns the union in (lastUpdated, id)
// order, failing if a resource appears twice.
func scanAll(t *testing.T, s bulk.ResourceSource, typ string, rng bulk.Range, compartmentOnly bool) []*bulk.Resource {
	t.Helper()
	var got []*bulk.Resource
	seen := make(map[string]int)
	for shard := range s.Shards() {
		for _, r := range scanShard(t, s, bulk.ScanRequest{Type: typ, Shard: shard, Range: rng, CompartmentOnly: compartmentOnly}) {
			if prev, ok := seen[r.ID]; ok {
				t.Errorf("Scan(%s) visited %s in shard %d and in shard %d", typ, r.ID, prev, shard)
			}
			seen[r.ID] = shard
			got = append(got, r)
		}
	}
	slices.SortFunc(got, compareScanOrder)
	return got
}

// forEachShard calls fn with a full-range scan request for each shard of typ
// and the number of resources it holds.
func forEachShard(t *testing.T, s bulk.ResourceSource, typ string, fn func(req bulk.ScanRequest, n int)) {
	t.Helper()
	for shard := range s.Shards() {
		req := bulk.ScanRequest{Type: typ, Shard: shard, Range: all}
		fn(req, len(scanShard(t, s, req)))
	}
}

// cursorAfter returns the cursor a scan gives after its n-th visit.
func cursorAfter(t *testing.T, s bulk.ResourceSource, req bulk.ScanRequest, n int) bulk.Cursor {
	t.Helper()
	var (
		seen   int
		cursor bulk.Cursor
	)
	err := s.Scan(context.Background(), req, func(_ *bulk.Resource, next bulk.Cursor) error {
		seen++
		cursor = next
		if seen == n {
			return bulk.ErrStop
		}
		return nil
	})
	if err != nil || seen != n {
		t.Fatalf("Scan(%+v) stopped after %d visits = %v, want nil after %d", req, seen, err, n)
	}
	return cursor
}

func compartmentIDs(t *testing.T, s bulk.ResourceSource, patient string, types []string) []string {
	t.Helper()
	var got []string
	err := s.Compartment(context.Background(), patient, types, func(r *bulk.Resource, _ bulk.Cursor) error {
		got = append(got, r.Type+"/"+r.ID)
		return nil
	})
	if err != nil {
		t.Fatalf("Compartment(%s, %v): %v", patient, types, err)
	}
	slices.Sort(got)
	return got
}

func listIDs(t *testing.T, s bulk.ResourceSource, typ, after string) []string {
	t.Helper()
	var got []string
	err := s.List(context.Background(), typ, after, func(r *bulk.Resource, _ bulk.Cursor) error {
		got = append(got, r.ID)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%s, %q): %v", typ, after, err)
	}
	return got
}

func checkMembers(t *testing.T, s bulk.ResourceSource, group string, want []string) {
	t.Helper()
	got, err := s.GroupMembers(context.Background(), group)
	if err != nil {
		t.Fatalf("GroupMembers(%s): %v", group, err)
	}
	slices.Sort(got)
	if diff := gocmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("GroupMembers(%s) mismatch (-want +got):\n%s", group, diff)
	}
}

func checkMembership(t *testing.T, s bulk.ResourceSource, group string, want []bulk.Member) {
	t.Helper()
	got, err := s.GroupMembership(context.Background(), group)
	if err != nil {
		t.Fatalf("GroupMembership(%s): %v", group, err)
	}
	if diff := gocmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("GroupMembership(%s) mismatch (-want +got):\n%s", group, diff)
	}
}

func checkCount(t *testing.T, s bulk.ResourceSource, typ string, want int64) {
	t.Helper()
	counts, err := s.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if counts[typ] != want {
		t.Errorf("Count()[%s] = %d, want %d", typ, counts[typ], want)
	}
}

func checkTombstones(t *testing.T, s bulk.ResourceSource, typ string, rng bulk.Range, want []bulk.Tombstone) {
	t.Helper()
	var got []bulk.Tombstone
	err := s.Tombstones(context.Background(), typ, rng, func(ts bulk.Tombstone) error {
		got = append(got, ts)
		return nil
	})
	if err != nil {
		t.Fatalf("Tombstones(%s, %v): %v", typ, rng, err)
	}
	if diff := gocmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Tombstones(%s, %v) mismatch (-want +got):\n%s", typ, rng, diff)
	}
}

func ref(typ, id string) bulk.Ref { return bulk.Ref{Type: typ, ID: id} }

// filterTombs returns the tombstones of ts in rng, in order.
func filterTombs(ts []bulk.Tombstone, rng bulk.Range) []bulk.Tombstone {
	var out []bulk.Tombstone
	for _, t := range ts {
		if rng.Contains(t.DeletedAt) {
			out = append(out, t)
		}
	}
	return out
}

// tomb is a tombstone as a store reports it, with the compartments the
// deleted resource was in.
func tomb(typ, id string, at time.Time, patients ...string) bulk.Tombstone {
	return bulk.Tombstone{Type: typ, ID: id, DeletedAt: at, Patients: patients}
}

func compareScanOrder(a, b *bulk.Resource) int {
	return cmp.Or(a.LastUpdated.Compare(b.LastUpdated), strings.Compare(a.ID, b.ID))
}

func sortResources(rs []*bulk.Resource) {
	slices.SortFunc(rs, func(a, b *bulk.Resource) int {
		return cmp.Or(strings.Compare(a.Type, b.Type), strings.Compare(a.ID, b.ID))
	})
}

// filter returns the resources of rs that keep, in scan order.
func filter(rs []*bulk.Resource, keep func(*bulk.Resource) bool) []*bulk.Resource {
	var out []*bulk.Resource
	for _, r := range rs {
		if keep(r) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, compareScanOrder)
	return out
}

func ids(rs []*bulk.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func nonZero(m map[string]int64) map[string]int64 {
	out := make(map[string]int64)
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// clone copies a visited resource: its Body is only valid during the visit.
func clone(r *bulk.Resource) *bulk.Resource {
	c := *r
	c.Body = slices.Clone(r.Body)
	c.Patients = slices.Clone(r.Patients)
	c.Members = slices.Clone(r.Members)
	return &c
}
