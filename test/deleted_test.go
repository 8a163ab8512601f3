package test

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDeletedAndRecreated: deletions after _since are listed in `deleted`
// from the store's tombstones; a resource deleted and then imported again
// is exported as changed (in `output`, not in `deleted`) even though the
// re-imported copy carries its old meta.lastUpdated; nothing listed in
// `deleted` appears in `output` at any level, with filters, elements and
// organized output alike (R88, R89).
func TestDeletedAndRecreated(t *testing.T) {
	dir := generated(t, 12)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	group := slices.Sorted(maps.Keys(ds.groups))[0]

	// Victims: Observations and a Condition of a group member and of others,
	// and an Organization.
	member := ds.groups[group][0]
	pick := func(n int, ok func(r *inputResource) bool) []string {
		var out []string
		for _, k := range slices.Sorted(maps.Keys(ds.byKey)) {
			if r := ds.byKey[k]; len(out) < n && ok(r) {
				out = append(out, k)
			}
		}
		return out
	}
	ofMember := func(r *inputResource) bool { return slices.Contains(r.refs, "Patient/"+member) }
	victims := pick(2, func(r *inputResource) bool { return r.Type == "Observation" && ofMember(r) })
	victims = append(victims, pick(2, func(r *inputResource) bool { return r.Type == "Observation" && !ofMember(r) })...)
	victims = append(victims, pick(1, func(r *inputResource) bool { return r.Type == "Condition" })...)
	victims = append(victims, pick(1, func(r *inputResource) bool { return r.Type == "Organization" })...)
	if len(victims) != 6 {
		t.Fatalf("picked victims %v", victims)
	}
	recreated := []string{victims[0], victims[5]} // an Observation and the Organization
	var entries []string
	for _, v := range victims {
		entries = append(entries, fmt.Sprintf(`{"request":{"method":"DELETE","url":%q}}`, v))
	}
	tmp := t.TempDir()
	bundle := filepath.Join(tmp, "delete.json")
	if err := os.WriteFile(bundle, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	deleteTime := importTime.Add(time.Hour)
	importInto(t, cfg, deleteTime, bundle)
	// The same resources imported again, as they were (old lastUpdated).
	var again []string
	for _, k := range recreated {
		again = append(again, string(ds.byKey[k].raw))
	}
	recreateFile := filepath.Join(tmp, "again.ndjson")
	if err := os.WriteFile(recreateFile, []byte(strings.Join(again, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	recreateTime := importTime.Add(2 * time.Hour)
	importInto(t, cfg, recreateTime, recreateFile)

	// Group exports list the deletions of resources that were in a
	// member's compartment (read before the victims leave ds).
	gone := slices.DeleteFunc(slices.Clone(victims), func(v string) bool { return slices.Contains(recreated, v) })
	var memberGone []string
	for _, v := range gone {
		if intersects(ds.patientsOf(ds.byKey[v]), ds.groups[group]) {
			memberGone = append(memberGone, v)
		}
	}
	if len(memberGone) == 0 {
		t.Fatalf("no deleted resource is in a member's compartment: victims %v", victims)
	}

	// What the store now holds, independently: victims gone, re-created
	// ones changed at their re-import.
	for _, v := range victims {
		if slices.Contains(recreated, v) {
			ds.byKey[v].LastUpdated = recreateTime
		} else {
			delete(ds.byKey, v)
		}
	}
	s := startServer(t, cfg)
	since := importTime.Add(30 * time.Minute)
	sinceQ := "_since=" + url.QueryEscape(since.Format(time.RFC3339))
	compartmentGone := slices.DeleteFunc(slices.Clone(gone), func(v string) bool { return strings.HasPrefix(v, "Organization/") })

	for _, tc := range []struct {
		name, path  string
		filter      filter
		wantDeleted []string
	}{
		{name: "system _since", path: "/$export?" + sinceQ, filter: filter{since: since}, wantDeleted: gone},
		{name: "system without _since", path: "/$export", filter: filter{}},
		{name: "system _since after the deletions", path: "/$export?_since=" + url.QueryEscape(deleteTime.Add(time.Minute).Format(time.RFC3339)),
			filter: filter{since: deleteTime.Add(time.Minute)}},
		{name: "system _since with _typeFilter and _elements", path: "/$export?_type=Observation,Condition&" + sinceQ +
			"&_elements=Observation.status&_typeFilter=" + url.QueryEscape("Observation?status=final"),
			filter: filter{types: []string{"Observation", "Condition"}, since: since,
				match: bf{"Observation": {func(m map[string]any) bool { return strIs(m, "status", "final") }}}.match},
			wantDeleted: slices.DeleteFunc(slices.Clone(gone), func(v string) bool { return strings.HasPrefix(v, "Organization/") })},
		{name: "patient _since", path: "/Patient/$export?" + sinceQ, filter: filter{since: since, compOnly: true}, wantDeleted: compartmentGone},
		{name: "patient _since organized", path: "/Patient/$export?organizeOutputBy=Patient&" + sinceQ, filter: filter{since: since, compOnly: true},
			wantDeleted: compartmentGone},
		{name: "group _since", path: "/Group/" + group + "/$export?" + sinceQ,
			filter: filter{since: since, patients: ds.groups[group], newMembers: ds.joinedAfter(group, since)}, wantDeleted: memberGone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			m := s.wait(s.kickoff("GET", tc.path, nil))
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
				if !d.LastUpdated.Equal(deleteTime) {
					t.Errorf("deletion Bundle lastUpdated %s, want the deletion time %s", d.LastUpdated, deleteTime)
				}
				deleted = append(deleted, d.URL)
			}
			sort.Strings(deleted)
			want := slices.Clone(tc.wantDeleted)
			sort.Strings(want)
			if diff := cmp.Diff(want, deleted, cmp.Comparer(func(a, b []string) bool { return len(a) == 0 && len(b) == 0 || slices.Equal(a, b) })); diff != "" {
				t.Errorf("deleted mismatch (-want +got):\n%s", diff)
			}
			for _, d := range deleted {
				if slices.Contains(got, d) {
					t.Errorf("%s is in deleted and in output (R89)", d)
				}
			}
			for _, v := range gone {
				if slices.Contains(got, v) {
					t.Errorf("deleted %s is in output (R89)", v)
				}
			}
			for _, r := range recreated {
				if (f.since.IsZero() || since.Equal(f.since)) && len(f.types) == 0 && !slices.Contains(got, r) && (!f.compOnly || !strings.HasPrefix(r, "Organization/")) && f.patients == nil {
					t.Errorf("re-created %s is missing from output", r)
				}
			}
		})
	}

	// A client whose scopes restrict Observation by search parameters gets
	// no Observation deletions (a tombstone cannot be matched against the
	// restriction), but the others.
	t.Run("restricted scopes", func(t *testing.T) {
		s.t = t
		c := s.newClient("system/Observation.rs?category=laboratory system/Condition.rs system/Organization.rs", []string{"*"})
		withClient(s, c, func() {
			m := s.wait(s.kickoff("GET", "/$export?"+sinceQ, nil))
			deleted := deletedURLs(s.deletions(m.Deleted))
			want := slices.DeleteFunc(slices.Clone(gone), func(v string) bool { return strings.HasPrefix(v, "Observation/") })
			sort.Strings(want)
			if !slices.Equal(deleted, want) {
				t.Errorf("deleted = %v, want %v", deleted, want)
			}
		})
	})
}
