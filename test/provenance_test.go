package test

import (
	"fmt"
	"maps"
	"net/http"
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

// provenanceData writes hand-made Provenance next to generated data (the
// generator makes none): recorded and lastUpdated old and new, targeting a
// group member's Observations (two Provenance for one of them, so one is
// the latest), a member's Patient, a non-member's Observation, resources of
// both, an Organization, a missing resource and another Provenance.
func provenanceData(t *testing.T, dir string, ds *dataset, group string) {
	t.Helper()
	members := ds.groups[group]
	var outsider string
	for _, p := range slices.Sorted(maps.Keys(ds.patient)) {
		if !slices.Contains(members, p) {
			outsider = p
			break
		}
	}
	obsOf := func(patient string, n int) []string {
		var out []string
		for _, k := range slices.Sorted(maps.Keys(ds.byKey)) {
			r := ds.byKey[k]
			if r.Type == "Observation" && slices.Contains(r.refs, "Patient/"+patient) && len(out) < n {
				out = append(out, k)
			}
		}
		return out
	}
	var org string
	for _, k := range slices.Sorted(maps.Keys(ds.byKey)) {
		if strings.HasPrefix(k, "Organization/") {
			org = k
			break
		}
	}
	a, b := obsOf(members[0], 2), obsOf(outsider, 1)
	type prov struct {
		id, lastUpdated, recorded string
		targets                   []string
	}
	provs := []prov{
		{"prov-a-old", "2024-03-01T00:00:00Z", "2024-03-01T00:00:00Z", a},
		{"prov-a-new", "2025-09-01T00:00:00Z", "2025-08-01T00:00:00Z", a[:1]},
		{"prov-patient", "2025-09-02T00:00:00Z", "2025-09-02T00:00:00Z", []string{"Patient/" + members[0]}},
		{"prov-outsider", "2025-09-03T00:00:00Z", "2025-09-03T00:00:00Z", b},
		{"prov-both", "2024-04-01T00:00:00Z", "2024-04-01T00:00:00Z", []string{b[0], "Patient/" + members[1]}},
		{"prov-org", "2025-09-04T00:00:00Z", "2025-09-04T00:00:00Z", []string{org}},
		{"prov-missing", "2025-09-05T00:00:00Z", "2025-09-05T00:00:00Z", []string{"Observation/no-such-observation"}},
		{"prov-of-prov", "2025-09-06T00:00:00Z", "2025-09-06T00:00:00Z", []string{"Provenance/prov-a-new"}},
	}
	var lines []string
	for _, p := range provs {
		var targets []string
		for _, tg := range p.targets {
			targets = append(targets, fmt.Sprintf(`{"reference":%q}`, tg))
		}
		lines = append(lines, fmt.Sprintf(`{"resourceType":"Provenance","id":%q,"meta":{"lastUpdated":%q},"target":[%s],"recorded":%q,"agent":[{"who":{"reference":%q}}]}`,
			p.id, p.lastUpdated, strings.Join(targets, ","), p.recorded, org))
	}
	if err := os.WriteFile(filepath.Join(dir, "Provenance.ndjson"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// provRule is a brute-force Provenance rule over the input files.
type provRule struct {
	defaultRule bool   // the default rule at Patient and Group level (R33)
	associated  string // "", "latest" or "relevant"
	patients    []string
}

// provenanceFor returns the Provenance an export adds: the default rule
// (target in the compartment of an exported patient, the Provenance in the
// export's range) and LatestProvenanceResources / RelevantProvenanceResources
// (target among the exported resources, any lastUpdated up to the
// transactionTime).
func (ds *dataset) provenanceFor(f filter, rule provRule, exported []string) []string {
	isExported := map[string]bool{}
	for _, k := range exported {
		isExported[k] = true
	}
	targets := func(p *inputResource) []string {
		var out []string
		ts, _ := p.json()["target"].([]any)
		for _, tg := range ts {
			out = append(out, tg.(map[string]any)["reference"].(string))
		}
		return out
	}
	recorded := func(p *inputResource) time.Time {
		t, _ := time.Parse(time.RFC3339, p.json()["recorded"].(string))
		return t
	}
	var provs []*inputResource
	for _, r := range ds.byKey {
		if r.Type == "Provenance" && !r.LastUpdated.After(f.txTimeUpTo) {
			provs = append(provs, r)
		}
	}
	latest := map[string]*inputResource{} // target → newest Provenance of it
	for _, p := range provs {
		for _, tg := range targets(p) {
			cur := latest[tg]
			if cur == nil || recorded(p).After(recorded(cur)) {
				latest[tg] = p
			}
		}
	}
	var out []string
	for _, p := range provs {
		inRange := (f.since.IsZero() || p.LastUpdated.After(f.since)) && (f.until.IsZero() || p.LastUpdated.Before(f.until))
		add := false
		for _, tg := range targets(p) {
			t := ds.byKey[tg]
			if t == nil {
				continue
			}
			if rule.defaultRule {
				// In the compartment of an exported patient, and in that
				// patient's range: a Group member who joined after _since
				// has no lower bound (R90).
				for _, q := range ds.patientsOf(t) {
					if (rule.patients == nil || slices.Contains(rule.patients, q)) && (inRange || slices.Contains(f.newMembers, q)) {
						add = true
					}
				}
			}
			if t.Type == "Provenance" || !isExported[tg] {
				continue
			}
			if rule.associated == "relevant" || rule.associated == "latest" && latest[tg] == p {
				add = true
			}
		}
		if add {
			out = append(out, p.key())
		}
	}
	return out
}

// TestProvenance: the default Provenance rule at every level (R33),
// LatestProvenanceResources and RelevantProvenanceResources, conflicting
// values (R32), unknown values (R34), and Provenance the scopes do not
// allow (R93).
func TestProvenance(t *testing.T) {
	dir := generated(t, 20)
	dsGen := readDataset(t, dir, importTime)
	group := slices.Sorted(maps.Keys(dsGen.groups))[0]
	provenanceData(t, dir, dsGen, group)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	members := ds.groups[group]
	s := startServer(t, cfg)
	since := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	sinceQ := "_since=" + url.QueryEscape(since.Format(time.RFC3339))

	for _, tc := range []struct {
		name, path string
		base       filter // the non-Provenance part, and Provenance as a plain type at system level
		rule       provRule
		wantProv   []string // sanity: Provenance ids that must be in (or, with "!", out of) the export
	}{
		{name: "system default: all Provenance", path: "/$export",
			base: filter{}, wantProv: []string{"prov-org", "prov-missing", "prov-of-prov"}},
		{name: "system default with _type leaving Provenance out", path: "/$export?_type=Observation",
			base: filter{types: []string{"Observation"}}, wantProv: []string{"!prov-a-old"}},
		{name: "system relevant", path: "/$export?_type=Observation&includeAssociatedData=RelevantProvenanceResources",
			base: filter{types: []string{"Observation"}}, rule: provRule{associated: "relevant"},
			wantProv: []string{"prov-a-old", "prov-a-new", "prov-outsider", "prov-both", "!prov-patient", "!prov-org"}},
		{name: "system latest with _since", path: "/$export?_type=Observation&includeAssociatedData=LatestProvenanceResources&" + sinceQ,
			base: filter{types: []string{"Observation"}, since: since}, rule: provRule{associated: "latest"}},
		{name: "system both: least restrictive R32", path: "/$export?_type=Observation&includeAssociatedData=LatestProvenanceResources,RelevantProvenanceResources",
			base: filter{types: []string{"Observation"}}, rule: provRule{associated: "relevant"}, wantProv: []string{"prov-a-old", "prov-a-new"}},
		{name: "system relevant with Provenance in _type", path: "/$export?_type=Observation,Provenance&includeAssociatedData=RelevantProvenanceResources&" + sinceQ,
			base: filter{types: []string{"Observation", "Provenance"}, since: since}, rule: provRule{associated: "relevant"}},
		{name: "patient default R33", path: "/Patient/$export",
			base: filter{compOnly: true}, rule: provRule{defaultRule: true},
			wantProv: []string{"prov-a-old", "prov-patient", "prov-outsider", "prov-both", "!prov-org", "!prov-missing", "!prov-of-prov"}},
		{name: "patient default with _since", path: "/Patient/$export?" + sinceQ,
			base: filter{compOnly: true, since: since}, rule: provRule{defaultRule: true}, wantProv: []string{"!prov-a-old"}},
		{name: "patient latest with _type leaving Provenance out", path: "/Patient/$export?_type=Observation&includeAssociatedData=LatestProvenanceResources",
			base: filter{types: []string{"Observation"}, compOnly: true}, rule: provRule{associated: "latest"},
			wantProv: []string{"prov-a-new", "prov-outsider"}},
		{name: "group default R33", path: "/Group/" + group + "/$export",
			base: filter{patients: members}, rule: provRule{defaultRule: true, patients: members},
			wantProv: []string{"prov-a-old", "prov-patient", "!prov-outsider"}},
		{name: "group _type=Provenance only", path: "/Group/" + group + "/$export?_type=Provenance",
			base: filter{types: []string{"Provenance"}, patients: members}, rule: provRule{defaultRule: true, patients: members}},
		{name: "group relevant with _since", path: "/Group/" + group + "/$export?_type=Observation,Provenance&includeAssociatedData=RelevantProvenanceResources&" + sinceQ,
			base: filter{types: []string{"Observation", "Provenance"}, patients: members, since: since, newMembers: ds.joinedAfter(group, since)},
			rule: provRule{defaultRule: true, associated: "relevant", patients: members}},
		{name: "group filtered Provenance", path: "/Group/" + group + "/$export?_type=Provenance&_typeFilter=" + url.QueryEscape("Provenance?recorded=ge2025"),
			base: filter{types: []string{"Provenance"}, patients: members}, rule: provRule{defaultRule: true, patients: members},
			wantProv: []string{"prov-patient", "!prov-a-old"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			m := s.wait(s.kickoff("GET", tc.path, nil))
			tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
			f := tc.base
			f.txTimeUpTo = tx
			var want []string
			compartmental := !strings.HasPrefix(tc.path, "/$export")
			for _, k := range ds.expect(f) {
				if !compartmental || !strings.HasPrefix(k, "Provenance/") {
					want = append(want, k)
				}
			}
			if tc.rule.defaultRule || tc.rule.associated != "" {
				for _, p := range ds.provenanceFor(f, tc.rule, want) {
					if !slices.Contains(want, p) {
						want = append(want, p)
					}
				}
			}
			if strings.Contains(tc.path, "_typeFilter") {
				want = slices.DeleteFunc(want, func(k string) bool {
					r := ds.byKey[k]
					return r.Type == "Provenance" && r.json()["recorded"].(string) < "2025"
				})
			}
			sort.Strings(want)
			got := keys(t, s.download(m.Output, false))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s exported set mismatch (-want +got):\n%s", tc.path, diff)
			}
			for _, w := range tc.wantProv {
				key := "Provenance/" + strings.TrimPrefix(w, "!")
				if slices.Contains(got, key) == strings.HasPrefix(w, "!") {
					t.Errorf("%s: %s in export = %v, want %v", tc.path, key, !strings.HasPrefix(w, "!"), slices.Contains(got, key))
				}
			}
		})
	}

	t.Run("unknown value R34", func(t *testing.T) {
		s.t = t
		res := s.do("GET", "/$export?includeAssociatedData=_custom", nil, "Prefer", "respond-async")
		if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), "includeAssociatedData") {
			t.Errorf("includeAssociatedData=_custom = %d %s, want 400 naming it", res.Status, res.Body)
		}
	})
	t.Run("scopes without Provenance R93", func(t *testing.T) {
		s.t = t
		c := s.newClient("system/Observation.rs system/Patient.rs", []string{"*"})
		withClient(s, c, func() {
			path := "/$export?_type=Observation&includeAssociatedData=RelevantProvenanceResources"
			if res := s.do("GET", path, nil, "Prefer", "respond-async"); res.Status != http.StatusForbidden {
				t.Errorf("associated Provenance without the scope = %d %s, want 403", res.Status, res.Body)
			}
			res := s.do("GET", path, nil, "Prefer", "respond-async, handling=lenient")
			m := s.wait(res.Header.Get("Content-Location"))
			for _, k := range keys(t, s.download(m.Output, false)) {
				if strings.HasPrefix(k, "Provenance/") {
					t.Errorf("lenient export without the Provenance scope holds %s", k)
				}
			}
			if len(m.Error) != 1 {
				t.Errorf("lenient export: error = %+v, want the ignored includeAssociatedData", m.Error)
			}
		})
		// Patient level without Provenance in the scopes: no default
		// Provenance either.
		withClient(s, c, func() {
			m := s.wait(s.kickoff("GET", "/Patient/$export", nil))
			for _, k := range keys(t, s.download(m.Output, false)) {
				if strings.HasPrefix(k, "Provenance/") {
					t.Errorf("Patient export without the Provenance scope holds %s", k)
				}
			}
		})
	})
}
