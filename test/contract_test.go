package test

import (
	"encoding/json"
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
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tranchehq/tranche/internal/auth"
)

// Business contracts (issue 13; requirements 1.6: the server SHALL limit an
// export to what the client may see, scopes and business rules alike, and
// SHALL enforce business rules on Groups; R37, R93). The IG scenario is
// "exporting groups of patients between systems that should only have
// certain access based on business contracts". Expectations are computed
// from the input files (readDataset), never from the server.

// contractGroups are the Groups of the contract-limited client in these
// tests: their members are fewer than the patients stored.
var contractGroups = []string{"group-10", "group-quarter"}

// union returns the members of groups, sorted and distinct, read from the
// input's Group resources.
func (ds *dataset) union(groups ...string) []string {
	var out []string
	for _, g := range groups {
		out = append(out, ds.groups[g]...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// contractCase is one export by the contract-limited client and its
// expectation.
type contractCase struct {
	name, method, path, body string
	filter                   filter
	rule                     *provRule // Provenance the export adds (R33); nil: none
	wantDeleted              []string  // nil: no deleted files
	wantProv                 []string  // sanity: Provenance ids in (or, with "!", out of) the export
	// subset: the export has `_elements`; lines of these types are
	// checked with checkSubset keeping these elements (R21).
	subset map[string][]string
}

// TestContractGroups: a client whose contract allows some Groups is bound
// by them at every level, GET and POST. System `$export` is 403; a
// Patient-level export returns exactly the compartments of the Groups'
// members (with _since, members who joined after it in full, as at Group
// level: R90), with its default and associated Provenance, organized
// blocks, `deleted` entries, `_typeFilter` and `_elements` all limited to
// them; an allowed Group exports, another is 403; `GET /Group` lists only
// the allowed Groups and reading another is 403, like its $export (R37),
// whether it exists or not (R23, R33, R38, R88, R91, R93, R122).
func TestContractGroups(t *testing.T) {
	dir := generated(t, 16)
	dsGen := readDataset(t, dir, importTime)
	members := dsGen.union(contractGroups...)
	var outsiders []string
	for _, p := range slices.Sorted(maps.Keys(dsGen.patient)) {
		if !slices.Contains(members, p) {
			outsiders = append(outsiders, p)
		}
	}
	if len(members) < 4 || len(outsiders) < 3 {
		t.Fatalf("contract Groups %v have members %v and outsiders %v: want at least 4 and 3", contractGroups, members, outsiders)
	}
	// Provenance: the shared fixture around group-10, plus some targeting
	// only outsiders' resources and one targeting a member's and an
	// outsider's.
	provenanceData(t, dir, dsGen, "group-10")
	obsOf := func(ds *dataset, p string) string {
		for _, k := range slices.Sorted(maps.Keys(ds.byKey)) {
			if r := ds.byKey[k]; r.Type == "Observation" && slices.Equal(ds.patientsOf(r), []string{p}) {
				return k
			}
		}
		t.Fatalf("no Observation of Patient/%s alone", p)
		return ""
	}
	extra := []struct{ id, lastUpdated, target1, target2 string }{
		{"prov-noncontract", "2025-09-10T00:00:00Z", obsOf(dsGen, outsiders[0]), "Patient/" + outsiders[1]},
		{"prov-mixed", "2025-09-11T00:00:00Z", obsOf(dsGen, outsiders[0]), obsOf(dsGen, members[len(members)-1])},
	}
	var provLines []string
	for _, p := range extra {
		provLines = append(provLines, fmt.Sprintf(`{"resourceType":"Provenance","id":%q,"meta":{"lastUpdated":%q},"target":[{"reference":%q},{"reference":%q}],"recorded":%q}`,
			p.id, p.lastUpdated, p.target1, p.target2, p.lastUpdated))
	}
	if err := os.WriteFile(filepath.Join(dir, "ProvenanceContract.ndjson"), []byte(strings.Join(provLines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)

	// Deletions after import, of members' and outsiders' resources; none
	// is a Provenance target. Their compartments come from the input.
	targeted := map[string]bool{}
	for _, r := range ds.byKey {
		if r.Type == "Provenance" {
			for _, ref := range r.refs {
				targeted[ref] = true
			}
		}
	}
	// pick returns the last resource, in key order, of typ whose
	// compartment is exactly one of patients'.
	pick := func(typ string, patients []string) string {
		t.Helper()
		keys := slices.Sorted(maps.Keys(ds.byKey))
		slices.Reverse(keys)
		for _, k := range keys {
			r := ds.byKey[k]
			if ps := slices.Compact(slices.Sorted(slices.Values(ds.patientsOf(r)))); r.Type == typ && !targeted[k] && len(ps) == 1 && slices.Contains(patients, ps[0]) {
				targeted[k] = true
				return k
			}
		}
		t.Fatalf("no %s of one of %v alone", typ, patients)
		return ""
	}
	var organization string
	for _, k := range slices.Sorted(maps.Keys(ds.byKey)) {
		if ds.byKey[k].Type == "Organization" && !targeted[k] {
			organization = k
		}
	}
	untargeted := func(ps []string) string {
		for _, p := range slices.Backward(ps) {
			if !targeted["Patient/"+p] {
				return "Patient/" + p
			}
		}
		t.Fatalf("every Patient of %v is a Provenance target", ps)
		return ""
	}
	victims := []string{
		pick("Observation", members), pick("Condition", members), untargeted(members),
		pick("Observation", outsiders), pick("Condition", outsiders), untargeted(outsiders),
		organization,
	}
	compartment := map[string][]string{}
	for _, k := range victims {
		compartment[k] = ds.patientsOf(ds.byKey[k])
	}
	deleteTime := importTime.Add(time.Hour)
	var entries []string
	for _, v := range victims {
		entries = append(entries, fmt.Sprintf(`{"request":{"method":"DELETE","url":%q}}`, v))
	}
	bundle := filepath.Join(t.TempDir(), "delete.json")
	if err := os.WriteFile(bundle, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	importInto(t, cfg, deleteTime, bundle)
	for _, k := range victims {
		delete(ds.byKey, k)
	}
	// wantDeleted: the victims of types (all when empty) in the
	// compartment of one of patients.
	wantDeleted := func(patients []string, types ...string) []string {
		var out []string
		for _, k := range victims {
			typ, _, _ := strings.Cut(k, "/")
			if (len(types) == 0 || slices.Contains(types, typ)) && intersects(compartment[k], patients) {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}

	// New members for a _since between the two Groups' lastUpdated: a
	// patient joined the contract when the first of its Groups listed it
	// (each Group is imported once, so its members joined at its
	// lastUpdated).
	g10, gq := ds.byKey["Group/group-10"].LastUpdated, ds.byKey["Group/group-quarter"].LastUpdated
	if g10.Equal(gq) {
		t.Fatalf("group-10 and group-quarter have the same lastUpdated %s; the test needs them apart", g10)
	}
	early, late := g10, gq
	if late.Before(early) {
		early, late = late, early
	}
	memberSince := early.Add(late.Sub(early) / 2)
	joined := map[string]time.Time{}
	for _, g := range contractGroups {
		at := ds.byKey["Group/"+g].LastUpdated
		for _, p := range ds.groups[g] {
			if j, ok := joined[p]; !ok || at.Before(j) {
				joined[p] = at
			}
		}
	}
	var newMembers []string
	for _, p := range members {
		if joined[p].After(memberSince) {
			newMembers = append(newMembers, p)
		}
	}
	if len(newMembers) == 0 || len(newMembers) == len(members) {
		t.Fatalf("new members since %s = %v of %v: want some, not all", memberSince, newMembers, members)
	}

	s := startServer(t, cfg)
	c := s.as(s.newClient("system/*.rs", contractGroups))
	q := url.QueryEscape
	delSince := importTime.Add(30 * time.Minute)
	delSinceQ := "_since=" + q(delSince.Format(time.RFC3339))
	memberSinceQ := "_since=" + q(memberSince.Format(time.RFC3339Nano))
	lab := bf{"Observation": {func(m map[string]any) bool { return coded(m, "category", obsCategory, "laboratory") }}}.match
	quarter := ds.groups["group-quarter"]

	t.Run("system level 403", func(t *testing.T) {
		c.t = t
		for _, method := range []string{"GET", "POST"} {
			body := []byte(`{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient"}]}`)
			res := c.do(method, "/$export", body, "Prefer", "respond-async", "Content-Type", "application/fhir+json")
			if res.Status != http.StatusForbidden {
				t.Fatalf("%s /$export by a Group-limited client = %d %s, want 403 (R93)", method, res.Status, res.Body)
			}
			checkOutcome(t, res)
			for _, want := range []string{"Group/group-10", "Group/group-quarter", "Patient/$export", "Group/[id]/$export"} {
				if !strings.Contains(string(res.Body), want) {
					t.Errorf("%s /$export refusal %s does not say %q", method, res.Body, want)
				}
			}
		}
	})

	for _, tc := range []contractCase{
		{name: "patient GET: the members' compartments R93", path: "/Patient/$export",
			filter: filter{patients: members}, rule: &provRule{defaultRule: true, patients: members},
			wantProv: []string{"prov-mixed", "!prov-noncontract"}},
		{name: "patient POST _type and _typeFilter R26", method: "POST", path: "/Patient/$export",
			body: `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Observation,Condition,Provenance"},
				{"name":"_typeFilter","valueString":"Observation?category=laboratory"}]}`,
			filter: filter{types: []string{"Observation", "Condition", "Provenance"}, patients: members, match: lab},
			rule:   &provRule{defaultRule: true, patients: members}, wantProv: []string{"!prov-noncontract"}},
		{name: "patient _since: new members in full R90", path: "/Patient/$export?" + memberSinceQ,
			filter: filter{since: memberSince, patients: members, newMembers: newMembers},
			rule:   &provRule{defaultRule: true, patients: members}, wantDeleted: wantDeleted(members)},
		{name: "patient relevant Provenance", path: "/Patient/$export?_type=Observation&includeAssociatedData=RelevantProvenanceResources",
			filter: filter{types: []string{"Observation"}, patients: members}, rule: &provRule{associated: "relevant"},
			wantProv: []string{"prov-mixed", "!prov-noncontract"}},
		{name: "patient organized R91", path: "/Patient/$export?organizeOutputBy=Patient",
			filter: filter{patients: members}, rule: &provRule{defaultRule: true, patients: members}},
		{name: "patient deletions R88", path: "/Patient/$export?" + delSinceQ,
			filter: filter{since: delSince, patients: members}, rule: &provRule{defaultRule: true, patients: members},
			wantDeleted: wantDeleted(members)},
		{name: "patient deletions POST organized", method: "POST", path: "/Patient/$export",
			body: `{"resourceType":"Parameters","parameter":[{"name":"_since","valueInstant":"` + delSince.Format(time.RFC3339) + `"},
				{"name":"organizeOutputBy","valueString":"Patient"},{"name":"_type","valueString":"Observation,Patient"}]}`,
			filter:      filter{types: []string{"Observation", "Patient"}, since: delSince, patients: members},
			wantDeleted: wantDeleted(members, "Observation", "Patient")},
		{name: "patient _elements R21", path: "/Patient/$export?_type=Patient,Observation&_elements=Patient.id",
			filter: filter{types: []string{"Patient", "Observation"}, patients: members}, subset: map[string][]string{"Patient": nil}},
		{name: "group allowed GET R38", path: "/Group/group-quarter/$export",
			filter: filter{patients: quarter}, rule: &provRule{defaultRule: true, patients: quarter}},
		{name: "group allowed POST with deletions", method: "POST", path: "/Group/group-10/$export",
			body:   `{"resourceType":"Parameters","parameter":[{"name":"_since","valueInstant":"` + delSince.Format(time.RFC3339) + `"}]}`,
			filter: filter{since: delSince, patients: ds.groups["group-10"], newMembers: ds.joinedAfter("group-10", delSince)},
			rule:   &provRule{defaultRule: true, patients: ds.groups["group-10"]}, wantDeleted: wantDeleted(ds.groups["group-10"])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			runContractCase(t, c, ds, tc)
		})
	}

	t.Run("other Groups 403 R37", func(t *testing.T) {
		c.t = t
		for _, path := range []string{"/Group/group-all/$export", "/Group/no-such-group/$export"} {
			for _, method := range []string{"GET", "POST"} {
				res := c.do(method, path, []byte(`{"resourceType":"Parameters"}`), "Prefer", "respond-async", "Content-Type", "application/fhir+json")
				if res.Status != http.StatusForbidden {
					t.Errorf("%s %s outside the contract = %d %s, want 403 (R37)", method, path, res.Status, res.Body)
				}
				checkOutcome(t, res)
			}
		}
	})

	t.Run("GET /Group lists and reads only the contract's Groups R122", func(t *testing.T) {
		c.t = t
		s.t = t
		search := func(s *server, query string) []string {
			res := s.do("GET", "/Group"+query, nil)
			if res.Status != http.StatusOK {
				t.Fatalf("GET /Group%s = %d %s", query, res.Status, res.Body)
			}
			var b struct {
				Total int
				Entry []struct{ Resource struct{ ID string } }
			}
			if err := json.Unmarshal(res.Body, &b); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, e := range b.Entry {
				ids = append(ids, e.Resource.ID)
			}
			if b.Total != len(ids) {
				t.Errorf("GET /Group%s total %d with %d entries", query, b.Total, len(ids))
			}
			slices.Sort(ids)
			return ids
		}
		var stored []string
		for k, r := range ds.byKey {
			if r.Type == "Group" {
				stored = append(stored, strings.TrimPrefix(k, "Group/"))
			}
		}
		slices.Sort(stored)
		if got := search(s, ""); !slices.Equal(got, stored) {
			t.Errorf("GET /Group by a client of every Group = %v, want %v", got, stored)
		}
		if got := search(c, ""); !slices.Equal(got, contractGroups) {
			t.Errorf("GET /Group by the contract-limited client = %v, want %v", got, contractGroups)
		}
		if got := search(c, "?_id=group-all,group-quarter"); !slices.Equal(got, []string{"group-quarter"}) {
			t.Errorf("GET /Group?_id=group-all,group-quarter = %v, want [group-quarter]", got)
		}
		if res := c.do("GET", "/Group/group-10", nil); res.Status != http.StatusOK {
			t.Errorf("GET /Group/group-10 = %d, want 200", res.Status)
		}
		// Outside the contract: 403 whether the Group exists or not.
		for _, id := range []string{"group-all", "no-such-group"} {
			res := c.do("GET", "/Group/"+id, nil)
			if res.Status != http.StatusForbidden || strings.Contains(string(res.Body), `"member"`) {
				t.Errorf("GET /Group/%s outside the contract = %d %s, want 403", id, res.Status, res.Body)
			}
			checkOutcome(t, res)
		}
	})
}

// runContractCase runs one export and checks it against its expectation:
// the exported set, that nothing in it lies outside the patients of the
// filter (the leak check, stated on its own so a failure says which line),
// the Patient blocks of organized output, the subsets of `_elements` and
// the `deleted` entries.
func runContractCase(t *testing.T, s *server, ds *dataset, tc contractCase) {
	t.Helper()
	method := tc.method
	if method == "" {
		method = "GET"
	}
	m := s.wait(s.kickoff(method, tc.path, []byte(tc.body)))
	tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
	f := tc.filter
	f.txTimeUpTo = tx
	var want []string
	for _, k := range ds.expect(f) {
		if !strings.HasPrefix(k, "Provenance/") {
			want = append(want, k) // Provenance comes by its rules
		}
	}
	if tc.rule != nil {
		for _, p := range ds.provenanceFor(f, *tc.rule, want) {
			if r := ds.byKey[p]; !slices.Contains(want, p) && (f.match == nil || f.match(r)) {
				want = append(want, p)
			}
		}
	}
	sort.Strings(want)

	var lines []line
	if m.OutputOrganizedBy != "" {
		for _, b := range readBlocks(t, s, m.Output) {
			if !slices.Contains(f.patients, b.patient) {
				t.Errorf("a block for Patient/%s, outside the contract (R93)", b.patient)
			}
			lines = append(lines, b.lines...)
		}
	} else {
		lines = s.download(m.Output, false)
	}
	got := keys(t, lines)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s %s exported set mismatch (-want +got):\n%s", method, tc.path, diff)
	}
	for _, l := range lines {
		r := ds.byKey[l.Type+"/"+l.ID]
		if r == nil {
			t.Errorf("%s/%s exported but not in the input (or deleted)", l.Type, l.ID)
			continue
		}
		in := intersects(ds.patientsOf(r), f.patients)
		if r.Type == "Provenance" {
			for _, ref := range r.refs {
				if tg := ds.byKey[ref]; tg != nil && intersects(ds.patientsOf(tg), f.patients) {
					in = true
				}
			}
		}
		if !in {
			t.Errorf("%s/%s is outside the contract's patients (R93)", l.Type, l.ID)
		}
		if kept, ok := tc.subset[l.Type]; ok {
			checkSubset(t, l, r.json(), append(slices.Clone(kept), r4Mandatory[l.Type]...))
		}
	}
	for _, w := range tc.wantProv {
		key := "Provenance/" + strings.TrimPrefix(w, "!")
		if slices.Contains(got, key) == strings.HasPrefix(w, "!") {
			t.Errorf("%s in the export = %v, want %v", key, slices.Contains(got, key), !strings.HasPrefix(w, "!"))
		}
	}
	deleted := deletedURLs(s.deletions(m.Deleted))
	if diff := cmp.Diff(tc.wantDeleted, deleted, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("deleted mismatch (-want +got) (R88):\n%s", diff)
	}
	for _, d := range deleted {
		if slices.Contains(got, d) {
			t.Errorf("%s is in deleted and in output (R89)", d)
		}
	}
}

// TestContractPatientParam: a `patient` outside the contract's Groups is
// 403 at Patient level, whether the patient exists or not; under
// Prefer: handling=lenient it is ignored, named in an OperationOutcome of
// the manifest's error file, and the export holds the other values'
// compartments, or nothing when none is left (R17, R20, R23, R24, R93).
func TestContractPatientParam(t *testing.T) {
	dir := generated(t, 12)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	members := ds.union(contractGroups...)
	var outsider string
	for _, p := range slices.Sorted(maps.Keys(ds.patient)) {
		if !slices.Contains(members, p) {
			outsider = p
			break
		}
	}
	if outsider == "" || len(members) < 2 {
		t.Fatalf("members %v: want an outsider", members)
	}
	s := startServer(t, cfg)
	c := s.as(s.newClient("system/*.rs", contractGroups))

	for _, patients := range [][]string{{outsider}, {members[0], outsider}, {"no-such-patient"}} {
		res := c.do("POST", "/Patient/$export", []byte(postPatients(patients...)), "Prefer", "respond-async", "Content-Type", "application/fhir+json")
		if res.Status != http.StatusForbidden {
			t.Errorf("strict patient=%v = %d %s, want 403 (R93)", patients, res.Status, res.Body)
		}
		checkOutcome(t, res)
	}
	// At Group level a non-member stays 400 (R24), and says the same
	// whether the patient exists or not.
	for _, p := range []string{outsider, "no-such-patient"} {
		res := c.do("POST", "/Group/group-10/$export", []byte(postPatients(p)), "Prefer", "respond-async", "Content-Type", "application/fhir+json")
		if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), "not a member of Group/group-10") {
			t.Errorf("Group export with patient=%s = %d %s, want 400 saying it is not a member (R24)", p, res.Status, res.Body)
		}
	}
	runContractCase(t, c, ds, contractCase{name: "member", method: "POST", path: "/Patient/$export", body: postPatients(members[1]),
		filter: filter{patients: members[1:2]}, rule: &provRule{defaultRule: true, patients: members[1:2]}})

	for _, tc := range []struct {
		patients, want []string
	}{
		{[]string{members[0], outsider}, members[:1]},
		{[]string{outsider}, []string{}}, // nothing left: nobody, not every member
	} {
		res := c.do("POST", "/Patient/$export", []byte(postPatients(tc.patients...)), "Prefer", "respond-async, handling=lenient", "Content-Type", "application/fhir+json")
		if res.Status != http.StatusAccepted {
			t.Fatalf("lenient patient=%v = %d %s, want 202 (R20)", tc.patients, res.Status, res.Body)
		}
		m := c.wait(res.Header.Get("Content-Location"))
		tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
		got := keys(t, c.download(m.Output, false))
		want := ds.expect(filter{patients: tc.want, txTimeUpTo: tx})
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("lenient patient=%v exported set mismatch (-want +got):\n%s", tc.patients, diff)
		}
		if len(m.Error) != 1 {
			t.Fatalf("lenient patient=%v: error = %+v, want one OperationOutcome file", tc.patients, m.Error)
		}
		outcomes := c.download(m.Error, false)
		if len(outcomes) != 1 || !strings.Contains(string(outcomes[0].Raw), "Patient/"+outsider) || !strings.Contains(string(outcomes[0].Raw), "contract") {
			t.Errorf("lenient patient=%v: error file %v, want one OperationOutcome naming Patient/%s and the contract", tc.patients, outcomes, outsider)
		}
	}
}

// TestContractTypes: a contract that names resource types bounds every
// export like the scopes do: `_type` outside them is 403, without `_type`
// only they are exported, at every level and together with a Group limit;
// associated Provenance they leave out is 403 (lenient: ignored), and a
// contract with no type in common with the scopes is 403 (R15, R42, R93).
func TestContractTypes(t *testing.T) {
	dir := generated(t, 12)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)
	types := []string{"Observation", "Patient"}
	c := s.as(s.newClientWith("system/*.rs", auth.RegistrationDefaults{Groups: []string{"*"}, Types: types}))

	for _, path := range []string{"/$export?_type=Condition", "/Patient/$export?_type=Observation,Encounter", "/Group/group-10/$export?_type=Condition",
		"/$export?_type=Observation&includeAssociatedData=RelevantProvenanceResources"} {
		res := c.do("GET", path, nil, "Prefer", "respond-async")
		if res.Status != http.StatusForbidden || !strings.Contains(string(res.Body), "contract") {
			t.Errorf("GET %s outside the contract's types = %d %s, want 403 naming the contract", path, res.Status, res.Body)
		}
		checkOutcome(t, res)
	}
	runExportCases(t, c, ds, []exportCase{
		{name: "system without _type R15", path: "/$export", filter: filter{types: types}},
		{name: "patient without _type", path: "/Patient/$export", filter: filter{types: types, compOnly: true}},
		{name: "group POST", method: "POST", path: "/Group/group-10/$export", body: `{"resourceType":"Parameters"}`,
			filter: filter{types: types, patients: ds.groups["group-10"]}},
		{name: "system _type inside", path: "/$export?_type=Patient", filter: filter{types: []string{"Patient"}}},
	})

	t.Run("lenient associated data", func(t *testing.T) {
		c.t = t
		res := c.do("GET", "/$export?_type=Observation&includeAssociatedData=RelevantProvenanceResources", nil, "Prefer", "respond-async, handling=lenient")
		if res.Status != http.StatusAccepted {
			t.Fatalf("lenient = %d %s, want 202", res.Status, res.Body)
		}
		m := c.wait(res.Header.Get("Content-Location"))
		for _, f := range m.Output {
			if f.Type != "Observation" {
				t.Errorf("output has %s, want only Observation", f.Type)
			}
		}
		if len(m.Error) != 1 {
			t.Errorf("error = %+v, want the ignored includeAssociatedData", m.Error)
		}
	})

	t.Run("with a Group limit", func(t *testing.T) {
		both := s.as(s.newClientWith("system/*.rs", auth.RegistrationDefaults{Groups: []string{"group-10"}, Types: []string{"Observation"}}))
		runExportCases(t, both, ds, []exportCase{
			{name: "patient", path: "/Patient/$export", filter: filter{types: []string{"Observation"}, patients: ds.groups["group-10"]}},
		})
	})

	t.Run("nothing in common with the scopes", func(t *testing.T) {
		s.t = t
		none := s.as(s.newClientWith("system/Patient.rs", auth.RegistrationDefaults{Groups: []string{"*"}, Types: []string{"Observation"}}))
		res := none.do("GET", "/$export", nil, "Prefer", "respond-async")
		if res.Status != http.StatusForbidden {
			t.Errorf("contract types disjoint from the scopes = %d %s, want 403", res.Status, res.Body)
		}
		checkOutcome(t, res)
	})
}

// TestContractLookback: a contract with a maximum look-back needs `_since`
// at every level, no earlier than kick-off time minus the look-back (a
// full export reaches back forever: 403 saying the limit), and bounds what
// an export adds regardless of `_since` too: a Group member who joined
// after `_since` gets its compartment back to the look-back only, and
// associated Provenance older than it is left out (R12, R33, R90, R93).
// Times are days from now, so the outcome does not depend on when the
// test runs.
func TestContractLookback(t *testing.T) {
	now := time.Now().UTC()
	ago := func(days int) string { return now.Add(-time.Duration(days) * 24 * time.Hour).Format(time.RFC3339) }
	lines := []string{
		`{"resourceType":"Patient","id":"lb-1","meta":{"lastUpdated":"` + ago(40) + `"}}`,
		`{"resourceType":"Observation","id":"lb-old","meta":{"lastUpdated":"` + ago(60) + `"},"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/lb-1"}}`,
		`{"resourceType":"Observation","id":"lb-mid","meta":{"lastUpdated":"` + ago(25) + `"},"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/lb-1"}}`,
		`{"resourceType":"Observation","id":"lb-new","meta":{"lastUpdated":"` + ago(10) + `"},"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/lb-1"}}`,
		`{"resourceType":"Provenance","id":"lb-prov-old","meta":{"lastUpdated":"` + ago(60) + `"},"recorded":"` + ago(60) + `","target":[{"reference":"Observation/lb-new"}]}`,
		`{"resourceType":"Provenance","id":"lb-prov-new","meta":{"lastUpdated":"` + ago(5) + `"},"recorded":"` + ago(5) + `","target":[{"reference":"Observation/lb-new"}]}`,
		`{"resourceType":"Group","id":"lb-cohort","meta":{"lastUpdated":"` + ago(2) + `"},"type":"person","actual":true,"member":[{"entity":{"reference":"Patient/lb-1"}}]}`,
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lookback.ndjson"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	importInto(t, cfg, now, dir)
	s := startServer(t, cfg)
	c := s.as(s.newClientWith("system/*.rs", auth.RegistrationDefaults{Groups: []string{"*"}, MaxLookback: 30 * 24 * time.Hour}))
	q := url.QueryEscape

	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/$export", ""},
		{"GET", "/Patient/$export?_type=Observation", ""},
		{"GET", "/Group/lb-cohort/$export", ""},
		{"GET", "/$export?_since=" + q(ago(31)), ""},
		{"GET", "/Patient/$export?_since=" + q(ago(45)), ""},
		{"POST", "/Group/lb-cohort/$export", `{"resourceType":"Parameters","parameter":[{"name":"_since","valueInstant":"` + ago(31) + `"}]}`},
	} {
		for _, prefer := range []string{"respond-async", "respond-async, handling=lenient"} {
			res := c.do(tc.method, tc.path, []byte(tc.body), "Prefer", prefer, "Content-Type", "application/fhir+json")
			if res.Status != http.StatusForbidden || !strings.Contains(string(res.Body), "30 days") {
				t.Errorf("%s %s (Prefer %s) beyond the look-back = %d %s, want 403 saying the 30 days", tc.method, tc.path, prefer, res.Status, res.Body)
			}
			checkOutcome(t, res)
		}
	}

	groupSince := "_since=" + q(ago(20))
	for _, tc := range []struct {
		name, path string
		client     *server
		want       []string
	}{
		{"system within the look-back", "/$export?_type=Observation&_since=" + q(ago(29)), c,
			[]string{"Observation/lb-mid", "Observation/lb-new"}},
		{"new member back to the look-back R90", "/Group/lb-cohort/$export?" + groupSince, c,
			[]string{"Observation/lb-mid", "Observation/lb-new", "Provenance/lb-prov-new"}},
		{"associated Provenance back to the look-back", "/Group/lb-cohort/$export?_type=Observation&includeAssociatedData=RelevantProvenanceResources&" + groupSince, c,
			[]string{"Observation/lb-mid", "Observation/lb-new", "Provenance/lb-prov-new"}},
		// Without a look-back, the same export reaches further: the
		// bound above is the contract's.
		{"new member without a contract", "/Group/lb-cohort/$export?" + groupSince, s,
			[]string{"Observation/lb-mid", "Observation/lb-new", "Observation/lb-old", "Patient/lb-1", "Provenance/lb-prov-new", "Provenance/lb-prov-old"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.client.t = t
			m := tc.client.wait(tc.client.kickoff("GET", tc.path, nil))
			if diff := cmp.Diff(tc.want, keys(t, tc.client.download(m.Output, false))); diff != "" {
				t.Errorf("GET %s exported set mismatch (-want +got):\n%s", tc.path, diff)
			}
		})
	}
}
