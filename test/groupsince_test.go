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
)

// TestGroupSinceNewMembers: a Group export with _since gives patients who
// joined the Group after _since their whole compartment and the others what
// changed after _since. When a patient joined is the lastUpdated of the
// first imported version of the Group that listed them: the test imports
// two versions and works the join times out from them itself (R90).
func TestGroupSinceNewMembers(t *testing.T) {
	dir := generated(t, 14)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	patients := slices.Sorted(maps.Keys(ds.patient))
	a, b, c, d, e := patients[0], patients[1], patients[2], patients[3], patients[4]

	v1Time := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	v2Time := time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)
	since := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	version := func(at time.Time, members ...string) string {
		var ms []string
		for _, m := range members {
			ms = append(ms, fmt.Sprintf(`{"entity":{"reference":"Patient/%s"}}`, m))
		}
		return fmt.Sprintf(`{"resourceType":"Group","id":"cohort","meta":{"lastUpdated":%q},"type":"person","actual":true,"member":[%s]}`,
			at.Format(time.RFC3339), strings.Join(ms, ","))
	}
	tmp := t.TempDir()
	for i, v := range []string{version(v1Time, a, b, c), version(v2Time, b, c, d, e)} {
		path := filepath.Join(tmp, fmt.Sprintf("v%d.ndjson", i+1))
		if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		importInto(t, cfg, importTime, path)
	}
	// Join times from the versions: b and c since v1, d and e since v2; a
	// left.
	joined := map[string]time.Time{b: v1Time, c: v1Time, d: v2Time, e: v2Time}
	var members, newMembers []string
	for m, at := range joined {
		members = append(members, m)
		if at.After(since) {
			newMembers = append(newMembers, m)
		}
	}
	slices.Sort(members)
	ds.groups["cohort"] = members
	cohort := &inputResource{Type: "Group", ID: "cohort", LastUpdated: v2Time, raw: []byte(version(v2Time, b, c, d, e))}
	for _, m := range members {
		cohort.refs = append(cohort.refs, "Patient/"+m)
	}
	ds.byKey["Group/cohort"] = cohort
	s := startServer(t, cfg)
	sinceQ := "_since=" + url.QueryEscape(since.Format(time.RFC3339))

	runExportCases(t, s, ds, []exportCase{
		{name: "group _since", path: "/Group/cohort/$export?" + sinceQ,
			filter: filter{since: since, patients: members, newMembers: newMembers}},
		{name: "group _since _type", path: "/Group/cohort/$export?_type=Patient,Observation&" + sinceQ,
			filter: filter{types: []string{"Patient", "Observation"}, since: since, patients: members, newMembers: newMembers}},
		{name: "group _since POST a new member", method: "POST", path: "/Group/cohort/$export?" + sinceQ, body: postPatients(d),
			filter: filter{since: since, patients: []string{d}, newMembers: newMembers}},
		{name: "group _since POST an old member", method: "POST", path: "/Group/cohort/$export?" + sinceQ, body: postPatients(b),
			filter: filter{since: since, patients: []string{b}, newMembers: newMembers}},
		{name: "group _since organized", path: "/Group/cohort/$export?organizeOutputBy=Patient&_type=Observation,Condition&" + sinceQ,
			filter: filter{types: []string{"Observation", "Condition"}, since: since, patients: members, newMembers: newMembers}},
		{name: "group _since _until", path: "/Group/cohort/$export?" + sinceQ + "&_until=" + url.QueryEscape("2025-09-01T00:00:00Z"),
			filter: filter{since: since, until: time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC), patients: members, newMembers: newMembers}},
	})

	// The point of the test: new members' old data is there, old members'
	// is not.
	old := ds.expect(filter{since: since, patients: []string{b}, txTimeUpTo: farFuture})
	full := ds.expect(filter{patients: []string{d}, txTimeUpTo: farFuture})
	sinceOnly := ds.expect(filter{since: since, patients: []string{d}, txTimeUpTo: farFuture})
	if len(full) <= len(sinceOnly) || len(ds.expect(filter{patients: []string{b}, txTimeUpTo: farFuture})) <= len(old) {
		t.Errorf("the data does not tell new members from old: full %d, since-only %d", len(full), len(sinceOnly))
	}
}
