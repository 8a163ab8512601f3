package test

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestDeletedGroupAndPatientParam: Group exports and exports with the
// `patient` parameter list, with _since, the deletions after _since (up to
// _until) of resources of the exported types that were in an exported
// patient's compartment when deleted, once each, and never also in output
// (R88, R89). Deletions of other patients' resources, of resources in no
// compartment and of resources never stored (compartment unknown) are not
// listed there; a system export lists them all.
func TestDeletedGroupAndPatientParam(t *testing.T) {
	dir := generated(t, 16)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)

	// The largest Group that leaves patients out, and those patients.
	groups := slices.DeleteFunc(slices.Sorted(maps.Keys(ds.groups)), func(g string) bool { return len(ds.groups[g]) > len(ds.patient)-2 })
	slices.SortStableFunc(groups, func(a, b string) int { return len(ds.groups[b]) - len(ds.groups[a]) })
	if len(groups) == 0 {
		t.Fatal("no Group leaves two patients out")
	}
	group := groups[0]
	members := slices.Sorted(slices.Values(ds.groups[group]))
	var others []string
	for _, p := range slices.Sorted(maps.Keys(ds.patient)) {
		if !slices.Contains(members, p) {
			others = append(others, p)
		}
	}
	if len(members) < 3 || len(others) < 2 {
		t.Fatalf("Group %s has members %v and others %v; want at least 3 and 2", group, members, others)
	}
	a, b, c := members[0], members[1], members[2]
	x, y := others[0], others[1]

	// pick returns the first resource, in key order, of typ whose
	// compartment is exactly the one of patient p.
	taken := map[string]bool{}
	pick := func(typ, p string) string {
		t.Helper()
		for _, k := range slices.Sorted(maps.Keys(ds.byKey)) {
			r := ds.byKey[k]
			if ps := ds.patientsOf(r); r.Type == typ && !taken[k] && slices.Equal(slices.Compact(slices.Sorted(slices.Values(ps))), []string{p}) {
				taken[k] = true
				return k
			}
		}
		t.Fatalf("no %s of Patient/%s alone", typ, p)
		return ""
	}
	var organization string
	for _, k := range slices.Sorted(maps.Keys(ds.byKey)) {
		if ds.byKey[k].Type == "Organization" {
			organization = k
			break
		}
	}
	if organization == "" {
		t.Fatal("no Organization in the generated data")
	}

	early := pick("Observation", a) // deleted before _since
	victims := []string{
		pick("Observation", a), pick("Observation", a), pick("Condition", b), "Patient/" + c,
		pick("Observation", x), pick("Condition", x), "Patient/" + y,
		organization, // in no compartment
	}
	late := pick("Observation", b) // deleted after _until
	const ghost = "Observation/never-stored"
	// Patients' compartments before the deletions, from the input.
	compartment := map[string][]string{}
	for _, k := range append(slices.Clone(victims), early, late) {
		compartment[k] = ds.patientsOf(ds.byKey[k])
	}

	since := importTime.Add(30 * time.Minute)
	until := importTime.Add(2 * time.Hour)
	deleteTime := importTime.Add(time.Hour)
	lateTime := importTime.Add(3 * time.Hour)
	tmp := t.TempDir()
	deleteBundle := func(name string, at time.Time, refs ...string) {
		t.Helper()
		var entries []string
		for _, r := range refs {
			entries = append(entries, fmt.Sprintf(`{"request":{"method":"DELETE","url":%q}}`, r))
		}
		path := filepath.Join(tmp, name+".json")
		if err := os.WriteFile(path, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		importInto(t, cfg, at, path)
	}
	deleteBundle("early", importTime.Add(10*time.Minute), early)
	deleteBundle("main", deleteTime, append(slices.Clone(victims), ghost)...)
	deleteBundle("late", lateTime, late)
	for _, k := range append(slices.Clone(victims), early, late) {
		delete(ds.byKey, k)
	}
	deletedAt := map[string]time.Time{late: lateTime}
	for _, v := range append(slices.Clone(victims), ghost) {
		deletedAt[v] = deleteTime
	}

	// wantDeleted is the brute-force `deleted` set: deletions in
	// (since, until) of types (all when empty) in the compartment of one
	// of patients, or every one when patients is nil.
	wantDeleted := func(patients, types []string, until time.Time) []string {
		var out []string
		for k, at := range deletedAt {
			typ, _, _ := strings.Cut(k, "/")
			switch {
			case len(types) > 0 && !slices.Contains(types, typ),
				!until.IsZero() && !at.Before(until),
				patients != nil && !intersects(compartment[k], patients):
				continue
			}
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}

	if got, want := wantDeleted(members, nil, time.Time{}), slices.Sorted(slices.Values(append(victims[:4:4], late))); !slices.Equal(got, want) {
		t.Fatalf("members' deletions = %v, want the victims picked for them %v", got, want)
	}

	s := startServer(t, cfg)
	sinceQ := "_since=" + url.QueryEscape(since.Format(time.RFC3339))
	untilQ := "_until=" + url.QueryEscape(until.Format(time.RFC3339))
	newMembers := ds.joinedAfter(group, since)
	groupPath := "/Group/" + group + "/$export?"
	for _, tc := range []struct {
		name, method, path, body string
		filter                   filter
		wantDeleted              []string
	}{
		{name: "group _since", path: groupPath + sinceQ,
			filter:      filter{since: since, patients: members, newMembers: newMembers},
			wantDeleted: wantDeleted(members, nil, time.Time{})},
		{name: "group _since _until", path: groupPath + sinceQ + "&" + untilQ,
			filter:      filter{since: since, until: until, patients: members, newMembers: newMembers},
			wantDeleted: wantDeleted(members, nil, until)},
		{name: "group _since _type", path: groupPath + "_type=Observation,Patient&" + sinceQ,
			filter:      filter{types: []string{"Observation", "Patient"}, since: since, patients: members, newMembers: newMembers},
			wantDeleted: wantDeleted(members, []string{"Observation", "Patient"}, time.Time{})},
		{name: "group _since organized", path: groupPath + "organizeOutputBy=Patient&_type=Observation,Condition&" + sinceQ,
			filter:      filter{types: []string{"Observation", "Condition"}, since: since, patients: members, newMembers: newMembers},
			wantDeleted: wantDeleted(members, []string{"Observation", "Condition"}, time.Time{})},
		{name: "group _since _typeFilter does not narrow deleted",
			path: groupPath + "_type=Observation&" + sinceQ + "&_typeFilter=" + url.QueryEscape("Observation?status=final"),
			filter: filter{types: []string{"Observation"}, since: since, patients: members, newMembers: newMembers,
				match: bf{"Observation": {func(m map[string]any) bool { return strIs(m, "status", "final") }}}.match},
			wantDeleted: wantDeleted(members, []string{"Observation"}, time.Time{})},
		{name: "group without _since", path: groupPath[:len(groupPath)-1],
			filter: filter{patients: members}},
		{name: "group POST patient", method: "POST", path: groupPath + sinceQ, body: postPatients(a),
			filter:      filter{since: since, patients: []string{a}, newMembers: newMembers},
			wantDeleted: wantDeleted([]string{a}, nil, time.Time{})},
		// (A `patient` naming a deleted Patient is refused at kick-off.)
		{name: "patient POST patient", method: "POST", path: "/Patient/$export?" + sinceQ, body: postPatients(x),
			filter:      filter{since: since, patients: []string{x}, compOnly: true},
			wantDeleted: wantDeleted([]string{x}, nil, time.Time{})},
		{name: "system _since", path: "/$export?" + sinceQ,
			filter:      filter{since: since},
			wantDeleted: wantDeleted(nil, nil, time.Time{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			method := tc.method
			if method == "" {
				method = "GET"
			}
			m := s.wait(s.kickoff(method, tc.path, []byte(tc.body)))
			tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
			f := tc.filter
			f.txTimeUpTo = tx
			lines := s.download(m.Output, false)
			if m.OutputOrganizedBy != "" {
				lines = slices.DeleteFunc(lines, func(l line) bool { return l.Type == "Parameters" })
			}
			got := keys(t, lines)
			if diff := cmp.Diff(ds.expect(f), got); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
			var deleted []string
			for _, d := range s.deletions(m.Deleted) {
				if !d.LastUpdated.Equal(deletedAt[d.URL]) {
					t.Errorf("deletion Bundle of %s lastUpdated %s, want the deletion time %s", d.URL, d.LastUpdated, deletedAt[d.URL])
				}
				if slices.Contains(deleted, d.URL) {
					t.Errorf("%s is listed twice in deleted", d.URL)
				}
				deleted = append(deleted, d.URL)
			}
			slices.Sort(deleted)
			if diff := cmp.Diff(tc.wantDeleted, deleted, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("deleted mismatch (-want +got):\n%s", diff)
			}
			for _, d := range deleted {
				if slices.Contains(got, d) {
					t.Errorf("%s is in deleted and in output (R89)", d)
				}
			}
			if len(tc.wantDeleted) == 0 && len(m.Deleted) != 0 {
				t.Errorf("manifest lists %d deleted files, want none", len(m.Deleted))
			}
		})
	}

	// A client whose scopes restrict Observation by search parameters gets
	// no Observation deletions at Group level either, but the members'
	// other deletions.
	t.Run("group restricted scopes", func(t *testing.T) {
		s.t = t
		c := s.newClient("system/Group.rs system/Observation.rs?category=laboratory system/Condition.rs system/Patient.rs", []string{group})
		withClient(s, c, func() {
			m := s.wait(s.kickoff("GET", groupPath+"_type=Observation,Condition,Patient&"+sinceQ, nil))
			deleted := deletedURLs(s.deletions(m.Deleted))
			if want := wantDeleted(members, []string{"Condition", "Patient"}, time.Time{}); !slices.Equal(deleted, want) {
				t.Errorf("deleted = %v, want %v", deleted, want)
			}
		})
	})
}
