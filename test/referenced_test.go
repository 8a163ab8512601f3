package test

import (
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

// TestReferenced: at Patient and Group level `_type` may name types outside
// the Patient compartment; the export then adds the resources of those types
// that its exported resources reference, directly, each once, with
// `_typeFilter` applying to them too; a type nothing references gives no
// file (issue 15 item 3; requirements 1.4.4). The expectations come from the
// input files: the compartment set as for any export, then every reference
// of its resources to the named types.
func TestReferenced(t *testing.T) {
	dir := generated(t, 40)
	cfg := testConfig(t)
	// Every call of every item checkpoints at once, so the referenced item
	// resumes from its cursor many times.
	cfg.Export.ItemBudget = time.Nanosecond
	// A member's Encounter references an Organization that names a
	// patient outside group-10, and a Location that names the member: a
	// Group export adds the Location, never the Organization.
	ds := readDataset(t, dir, importTime)
	members := ds.groups["group-10"]
	var outsider string
	for id := range ds.patient {
		if !slices.Contains(members, id) && (outsider == "" || id < outsider) {
			outsider = id
		}
	}
	extra := filepath.Join(dir, "extra.ndjson")
	if err := os.WriteFile(extra, []byte(
		`{"resourceType":"Encounter","id":"ref-enc","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/`+members[0]+`"},`+
			`"serviceProvider":{"reference":"Organization/names-outsider"},"location":[{"location":{"reference":"Location/names-member"}}]}`+"\n"+
			`{"resourceType":"Organization","id":"names-outsider","extension":[{"url":"https://example.org/x","valueReference":{"reference":"Patient/`+outsider+`"}}]}`+"\n"+
			`{"resourceType":"Location","id":"names-member","extension":[{"url":"https://example.org/x","valueReference":{"reference":"Patient/`+members[0]+`"}}]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	importInto(t, cfg, importTime, dir)
	ds = readDataset(t, dir, importTime)
	s := startServer(t, cfg)
	inGroup := func(p string) bool { return slices.Contains(members, p) }

	// referenced lists the stored resources of types that the resources
	// keys reference, passing match and naming only exported patients.
	referenced := func(keys []string, types []string, match func(*inputResource) bool, exported func(string) bool) []string {
		set := map[string]bool{}
		for _, k := range keys {
			for _, ref := range ds.byKey[k].refs {
				typ, _, _ := strings.Cut(ref, "/")
				r := ds.byKey[ref]
				if !slices.Contains(types, typ) || r == nil || (match != nil && !match(r)) {
					continue
				}
				private := false
				for _, p := range r.refs {
					if id, ok := strings.CutPrefix(p, "Patient/"); ok && !exported(id) {
						private = true
					}
				}
				if !private {
					set[ref] = true
				}
			}
		}
		out := make([]string, 0, len(set))
		for k := range set {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	// An Organization some member's Encounter references, to filter on.
	encounters := ds.expect(filter{types: []string{"Encounter"}, patients: members[:2], txTimeUpTo: time.Now()})
	orgs := referenced(encounters, []string{"Organization"}, nil, inGroup)
	if len(orgs) == 0 {
		t.Fatal("the generated Encounters reference no Organization: the test would prove nothing")
	}
	orgName, _ := ds.byKey[orgs[0]].json()["name"].(string)
	byName := func(r *inputResource) bool {
		name, _ := r.json()["name"].(string)
		return strings.HasPrefix(strings.ToLower(name), strings.ToLower(orgName)) // string search: starts with
	}

	q := url.QueryEscape
	for _, tc := range []struct {
		name, method, path, body string
		comp                     filter   // the compartment part
		refTypes                 []string // the referenced part
		match                    func(*inputResource) bool
		exported                 func(patient string) bool
		noFileFor                []string
		mustHave, mustNot        []string
	}{
		{name: "group GET", method: "GET", path: "/Group/group-10/$export?_type=Patient,Encounter,Practitioner,Organization,Location",
			comp: filter{types: []string{"Patient", "Encounter"}, patients: members}, refTypes: []string{"Practitioner", "Organization", "Location"},
			exported: inGroup, mustHave: []string{"Location/names-member"}, mustNot: []string{"Organization/names-outsider"}},
		{name: "patient POST with patient and an Organization _typeFilter", method: "POST", path: "/Patient/$export",
			body: `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Encounter,Organization"},` +
				`{"name":"_typeFilter","valueString":"Organization?name=` + q(orgName) + `"},` +
				`{"name":"patient","valueReference":{"reference":"Patient/` + members[0] + `"}},` +
				`{"name":"patient","valueReference":{"reference":"Patient/` + members[1] + `"}}]}`,
			comp: filter{types: []string{"Encounter"}, patients: members[:2]}, refTypes: []string{"Organization"}, match: byName,
			exported: func(p string) bool { return p == members[0] || p == members[1] }},
		{name: "patient level, every patient; a type nothing references", method: "GET", path: "/Patient/$export?_type=Encounter,Practitioner,Medication,Organization",
			comp: filter{types: []string{"Encounter"}, compOnly: true}, refTypes: []string{"Practitioner", "Medication", "Organization"}, noFileFor: []string{"Medication"},
			exported: func(string) bool { return true }, mustHave: []string{"Organization/names-outsider"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			res := s.do(tc.method, tc.path, []byte(tc.body), "Content-Type", "application/fhir+json")
			if res.Status != http.StatusAccepted {
				t.Fatalf("%s %s = %d %s, want 202", tc.method, tc.path, res.Status, res.Body)
			}
			m := s.wait(res.Header.Get("Content-Location"))
			tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
			tc.comp.txTimeUpTo = tx
			comp := ds.expect(tc.comp)
			refs := referenced(comp, tc.refTypes, tc.match, tc.exported)
			if len(refs) == 0 {
				t.Fatal("nothing referenced: the case proves nothing")
			}
			t.Logf("%d compartment resources, %d referenced", len(comp), len(refs))
			want := append(comp, refs...)
			sort.Strings(want)
			got := keys(t, s.download(m.Output, false))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("exported set mismatch (-want +got):\n%s", diff)
			}
			for _, k := range tc.mustHave {
				if !slices.Contains(got, k) {
					t.Errorf("%s not exported", k)
				}
			}
			for _, k := range tc.mustNot {
				if slices.Contains(got, k) {
					t.Errorf("%s exported: it names a patient outside the export", k)
				}
			}
			for _, f := range m.Output {
				if slices.Contains(tc.noFileFor, f.Type) {
					t.Errorf("manifest lists a %s file, but nothing references a %s", f.Type, f.Type)
				}
			}
		})
	}

	t.Run("only types outside the compartment is 400", func(t *testing.T) {
		s.t = t
		res := s.do("GET", "/Group/group-10/$export?_type=Practitioner,Organization", nil)
		if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), "compartment") {
			t.Fatalf("= %d %s, want 400 saying to name a compartment type (requirements 1.4.4)", res.Status, res.Body)
		}
		checkOutcome(t, res)
	})
	t.Run("internal objects are not downloadable", func(t *testing.T) {
		s.t = t
		res := s.do("GET", "/Group/group-10/$export?_type=Encounter,Practitioner", nil)
		loc := res.Header.Get("Content-Location")
		m := s.wait(loc)
		if len(m.Output) == 0 {
			t.Fatal("no output")
		}
		// The job's refs/ objects sit beside its files.
		u := m.Output[0].URL
		job := u[:strings.LastIndexByte(u, '/')]
		if got := s.do("GET", u, nil); got.Status != http.StatusOK {
			t.Fatalf("GET %s = %d, want 200", u, got.Status)
		}
		for _, key := range []string{"/refs/00000.000.txt", "/plan/items.json"} {
			if got := s.do("GET", job+key, nil); got.Status != http.StatusNotFound {
				t.Errorf("GET %s = %d, want 404", job+key, got.Status)
			}
		}
	})
}
