package test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/client"
)

const (
	obsCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
	loinc       = "http://loinc.org"
)

// TestTypeFilter exports generated data with _typeFilter at system, Patient
// and Group level, in the v2 (comma list, URL-encoded queries), v3
// (repeated parameter) and POST Parameters encodings, and compares each
// export with a brute-force filter of the input files over decoded JSON
// (R26, R27, R28, R31).
func TestTypeFilter(t *testing.T) {
	dir := generated(t, 40)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)

	groups := slices.Sorted(maps.Keys(ds.groups))
	group := groups[0]
	patients := slices.Sorted(maps.Keys(ds.patient))
	p0 := ds.byKey["Patient/"+patients[0]].json()
	family := p0["name"].([]any)[0].(map[string]any)["family"].(string)[:3]
	q := url.QueryEscape

	lab := func(m map[string]any) bool { return coded(m, "category", obsCategory, "laboratory") }
	height := func(m map[string]any) bool { return coded(m, "code", loinc, "8302-2") }
	activeCondition := func(m map[string]any) bool { return coded(m, "clinicalStatus", "", "active") }
	between := func(m map[string]any) bool {
		t, ok := instant(m, "effectiveDateTime")
		return ok && !t.Before(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) && t.Before(time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC))
	}

	cases := []exportCase{
		{name: "system v3 repeats", path: "/$export?_type=Observation,Condition,Patient" +
			"&_typeFilter=" + q("Observation?category="+obsCategory+"|laboratory") +
			"&_typeFilter=" + q("Observation?code="+loinc+"|8302-2") +
			"&_typeFilter=" + q("Condition?clinical-status=active"),
			filter: filter{types: []string{"Observation", "Condition", "Patient"}, match: bf{
				"Observation": {lab, height}, "Condition": {activeCondition}}.match}},
		{name: "system v2 comma list of encoded queries", path: "/$export?_type=Observation,Condition" +
			"&_typeFilter=Observation%3Fcategory%3Dlaboratory%2Cvital-signs%26status%3Dfinal,Condition%3Fclinical-status%3Dactive",
			filter: filter{types: []string{"Observation", "Condition"}, match: bf{
				"Observation": {func(m map[string]any) bool {
					return (lab(m) || coded(m, "category", "", "vital-signs")) && strIs(m, "status", "final")
				}},
				"Condition": {activeCondition}}.match}},
		{name: "system dates and :missing", path: "/$export?_type=Observation,Encounter" +
			"&_typeFilter=" + q("Observation?date=ge2025-01&date=lt2025-07-01") +
			"&_typeFilter=" + q("Encounter?reason-code:missing=true"),
			filter: filter{types: []string{"Observation", "Encounter"}, match: bf{
				"Observation": {between},
				"Encounter":   {func(m map[string]any) bool { _, ok := m["reasonCode"]; return !ok }}}.match}},
		{name: "system POST parts, string and _id", method: "POST", path: "/$export",
			body: `{"resourceType":"Parameters","parameter":[
				{"name":"_type","valueString":"MedicationRequest,Patient,Encounter"},
				{"name":"_typeFilter","valueString":"MedicationRequest?status=active,stopped"},
				{"name":"_typeFilter","valueString":"Patient?family=` + family + `"},
				{"name":"_typeFilter","valueString":"Patient?_id=` + patients[1] + `,` + patients[2] + `"}]}`,
			filter: filter{types: []string{"MedicationRequest", "Patient", "Encounter"}, match: bf{
				"MedicationRequest": {func(m map[string]any) bool { return strIs(m, "status", "active") || strIs(m, "status", "stopped") }},
				"Patient": {func(m map[string]any) bool { return familyStarts(m, family) },
					func(m map[string]any) bool { return m["id"] == patients[1] || m["id"] == patients[2] }}}.match}},
		{name: "patient level", path: "/Patient/$export" +
			"?_typeFilter=" + q("Observation?subject=Patient/"+patients[0]) +
			"&_typeFilter=" + q("Observation?category=vital-signs&code="+loinc+"|8302-2") +
			"&_typeFilter=" + q("Patient?gender=male"),
			filter: filter{compOnly: true, match: bf{
				"Observation": {func(m map[string]any) bool { return refIs(m, "subject", "Patient/"+patients[0]) },
					func(m map[string]any) bool { return coded(m, "category", "", "vital-signs") && height(m) }},
				"Patient": {func(m map[string]any) bool { return strIs(m, "gender", "male") }}}.match}},
		{name: "group level", path: "/Group/" + group + "/$export?_type=Observation,Condition,Patient" +
			"&_typeFilter=" + q("Observation?status=final&category=laboratory") +
			"&_typeFilter=" + q("Condition?clinical-status=resolved"),
			filter: filter{types: []string{"Observation", "Condition", "Patient"}, patients: ds.groups[group], match: bf{
				"Observation": {func(m map[string]any) bool { return strIs(m, "status", "final") && lab(m) }},
				"Condition":   {func(m map[string]any) bool { return coded(m, "clinicalStatus", "", "resolved") }}}.match}},
		{name: "group POST patient", method: "POST", path: "/Group/" + group + "/$export",
			body: `{"resourceType":"Parameters","parameter":[
				{"name":"patient","valueReference":{"reference":"Patient/` + ds.groups[group][0] + `"}},
				{"name":"_typeFilter","valueString":"Observation?category=laboratory"}]}`,
			filter: filter{patients: ds.groups[group][:1], match: bf{"Observation": {lab}}.match}},
	}
	runExportCases(t, s, ds, cases)

	// Every case must have filtered something and kept something, or the
	// comparison proves little.
	for _, tc := range cases {
		want := ds.expect(filter{types: tc.filter.types, compOnly: tc.filter.compOnly, patients: tc.filter.patients, txTimeUpTo: farFuture, match: tc.filter.match})
		all := ds.expect(filter{types: tc.filter.types, compOnly: tc.filter.compOnly, patients: tc.filter.patients, txTimeUpTo: farFuture})
		if len(want) == 0 || len(want) == len(all) {
			t.Errorf("case %q: the filter keeps %d of %d resources; pick one that keeps some and drops some", tc.name, len(want), len(all))
		}
	}
}

var farFuture = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)

// TestTypeFilterErrors: a _typeFilter the server cannot apply is a 400
// OperationOutcome naming the parameter, never a 5xx (R29, R30).
func TestTypeFilterErrors(t *testing.T) {
	dir := generated(t, 3)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	s := startServer(t, cfg)
	q := url.QueryEscape
	for _, tc := range []struct {
		name, path, want string
	}{
		{"unknown parameter R30", "/$export?_typeFilter=" + q("Observation?nonsense=1"), "nonsense"},
		{"result parameter _include R29", "/$export?_typeFilter=" + q("Observation?_include=Observation:subject"), "_include"},
		{"result parameter _sort R29", "/$export?_typeFilter=" + q("Observation?_sort=date"), "_sort"},
		{"result parameter _count R29", "/$export?_typeFilter=" + q("Observation?_count=10"), "_count"},
		{"system context R29", "/$export?_typeFilter=" + q("?code=1"), "_typeFilter"},
		{"compartment context R29", "/$export?_typeFilter=" + q("Patient/1/Observation?code=1"), "_typeFilter"},
		{"multi-type _type R29", "/$export?_typeFilter=" + q("Observation?_type=Condition"), "_type"},
		{"not a query", "/$export?_typeFilter=Observation", "_typeFilter"},
		{"unknown type", "/$export?_typeFilter=" + q("Nope?code=1"), "Nope"},
		{"bad date", "/$export?_typeFilter=" + q("Observation?date=ge2024-13"), "date"},
		{"bad prefix ap", "/$export?_typeFilter=" + q("Observation?date=ap2024"), "ap"},
		{"chained", "/$export?_typeFilter=" + q("Observation?subject.name=x"), "subject.name"},
		{"bad modifier", "/$export?_typeFilter=" + q("Observation?status:exact=final"), "exact"},
		{"bad percent-encoding", "/$export?_typeFilter=Observation%3Fcode%3D%25zz", "_typeFilter"},
		{"patient level", "/Patient/$export?_typeFilter=" + q("Condition?nope=1"), "nope"},
		{"group level", "/Group/group-10/$export?_typeFilter=" + q("Condition?_sort=x"), "_sort"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			res := s.do("GET", tc.path, nil, "Prefer", "respond-async")
			if res.Status != http.StatusBadRequest {
				t.Fatalf("GET %s = %d %s, want 400", tc.path, res.Status, res.Body)
			}
			checkOutcome(t, res)
			if !strings.Contains(string(res.Body), tc.want) {
				t.Errorf("GET %s: OperationOutcome %s does not name %q", tc.path, res.Body, tc.want)
			}
		})
	}
	// POST: a part that is not a string is a 400 too.
	res := s.do("POST", "/$export", []byte(`{"resourceType":"Parameters","parameter":[{"name":"_typeFilter","valueInteger":3}]}`),
		"Content-Type", "application/fhir+json")
	if res.Status != http.StatusBadRequest {
		t.Errorf("POST _typeFilter valueInteger = %d %s, want 400", res.Status, res.Body)
	}
	checkOutcome(t, res)
}

// TestCapabilityStatementSearchParams: every exportable type lists the
// search parameters _typeFilter supports, with their type and definition;
// REST-only Group search parameters carry operation-not-supported (R120).
func TestCapabilityStatementSearchParams(t *testing.T) {
	cfg := testConfig(t)
	s := startServer(t, cfg)
	res := s.do("GET", "/metadata", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("GET /metadata = %d", res.Status)
	}
	var cs struct {
		Rest []struct {
			Documentation string
			Resource      []struct {
				Type        string
				SearchParam []struct {
					Name, Type, Definition string
					Extension              []struct{ URL, ValueCanonical string }
				}
			}
		}
	}
	if err := json.Unmarshal(res.Body, &cs); err != nil {
		t.Fatal(err)
	}
	params := map[string]map[string]string{} // type → name → search type
	notSupported := map[string]bool{}
	for _, r := range cs.Rest[0].Resource {
		params[r.Type] = map[string]string{}
		for _, p := range r.SearchParam {
			params[r.Type][p.Name] = p.Type
			if len(p.Extension) > 0 {
				if p.Extension[0].URL != "http://hl7.org/fhir/uv/bulkdata/Extension/operation-not-supported" {
					t.Errorf("%s.%s extension %+v", r.Type, p.Name, p.Extension)
				}
				notSupported[r.Type+"."+p.Name] = true
			} else if !strings.HasPrefix(p.Definition, "http://hl7.org/fhir/SearchParameter/") {
				t.Errorf("%s.%s has definition %q", r.Type, p.Name, p.Definition)
			}
		}
	}
	for typ, want := range map[string]map[string]string{
		"Observation":       {"code": "token", "category": "token", "status": "token", "date": "date", "patient": "reference", "subject": "reference", "encounter": "reference", "_lastUpdated": "date", "_tag": "token", "_profile": "uri", "_security": "token", "_id": "token"},
		"Condition":         {"clinical-status": "token", "onset-date": "date", "code": "token"},
		"MedicationRequest": {"status": "token", "authoredon": "date"},
		"Patient":           {"name": "string", "family": "string", "gender": "token"},
		"Provenance":        {"target": "reference", "recorded": "date"},
		"Account":           {"_id": "token", "_lastUpdated": "date"},
	} {
		for name, typ2 := range want {
			if got := params[typ][name]; got != typ2 {
				t.Errorf("CapabilityStatement %s searchParam %s type = %q, want %q (R120)", typ, name, got, typ2)
			}
		}
	}
	if !notSupported["Group.name"] || notSupported["Group.identifier"] {
		t.Errorf("Group REST-only parameters flagged %v, want Group.name only (R120)", notSupported)
	}
	for _, frag := range []string{"_typeFilter", "joined the Group after _since", "handling=lenient", "includeAssociatedData"} {
		if !strings.Contains(cs.Rest[0].Documentation, frag) {
			t.Errorf("rest.documentation does not mention %q", frag)
		}
	}
}

// TestScopeRestrictions: a SMART v2 scope restricted by search parameters is
// granted, echoed, and enforced on every export like a _typeFilter AND-ed
// with the client's own, at system, Patient and Group level (R114, R93).
func TestScopeRestrictions(t *testing.T) {
	dir := generated(t, 30)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)
	group := slices.Sorted(maps.Keys(ds.groups))[0]
	lab := func(m map[string]any) bool { return coded(m, "category", obsCategory, "laboratory") }

	const labScope = "system/Observation.rs?category=" + obsCategory + "|laboratory"
	restricted := s.newClient(labScope+" system/Patient.rs system/Condition.rs system/Group.rs", []string{"*"})
	tok, err := restricted.Token(t.Context())
	if err != nil {
		t.Fatalf("token with a restricted scope: %v", err)
	}
	if granted := restricted.GrantedScope(); !strings.Contains(granted, labScope) {
		t.Errorf("granted scope %q does not echo %q", granted, labScope)
	}
	_ = tok

	var lus []time.Time
	for _, r := range ds.byKey {
		lus = append(lus, r.LastUpdated)
	}
	slices.SortFunc(lus, func(a, b time.Time) int { return a.Compare(b) })
	mid := lus[len(lus)/2].Truncate(time.Second)
	recent := s.newClient("system/*.rs?_lastUpdated=ge"+mid.Format(time.RFC3339), []string{"*"})

	labOnly := bf{"Observation": {lab}}.match
	types := []string{"Observation", "Patient", "Condition", "Group"}
	restrictedCases := []exportCase{
		{name: "system, types from the scopes", path: "/$export",
			filter: filter{types: types, match: labOnly}},
		{name: "system with _typeFilter AND-ed", path: "/$export?_type=Observation&_typeFilter=" + url.QueryEscape("Observation?status=final,amended"),
			filter: filter{types: []string{"Observation"}, match: bf{"Observation": {func(m map[string]any) bool {
				return lab(m) && (strIs(m, "status", "final") || strIs(m, "status", "amended"))
			}}}.match}},
		{name: "patient", path: "/Patient/$export", filter: filter{types: types, compOnly: true, match: labOnly}},
		{name: "group", path: "/Group/" + group + "/$export", filter: filter{types: types, patients: ds.groups[group], match: labOnly}},
	}
	withClient(s, restricted, func() { runExportCases(t, s, ds, restrictedCases) })

	since := func(r *inputResource) bool { return !r.LastUpdated.Before(mid) }
	recentCases := []exportCase{
		{name: "wildcard restriction system", path: "/$export", filter: filter{match: since}},
		{name: "wildcard restriction group", path: "/Group/" + group + "/$export?_typeFilter=" + url.QueryEscape("Observation?category=laboratory"),
			filter: filter{patients: ds.groups[group], match: and(since, labOnly)}},
	}
	withClient(s, recent, func() { runExportCases(t, s, ds, recentCases) })

	// A scope restricting Group limits which Groups may be exported (R37).
	other := slices.Sorted(maps.Keys(ds.groups))[1]
	oneGroup := s.newClient("system/Group.rs?_id="+group+" system/Patient.rs", []string{"*"})
	withClient(s, oneGroup, func() {
		s.t = t
		if res := s.do("GET", "/Group/"+group+"/$export", nil); res.Status != http.StatusAccepted {
			t.Errorf("Group export the restricted scope matches = %d %s, want 202", res.Status, res.Body)
		}
		if res := s.do("GET", "/Group/"+other+"/$export", nil); res.Status != http.StatusForbidden {
			t.Errorf("Group export the restricted scope does not match = %d %s, want 403", res.Status, res.Body)
		}
	})

	// A type outside the scopes is still refused (R42).
	withClient(s, restricted, func() {
		s.t = t
		if res := s.do("GET", "/$export?_type=Encounter", nil); res.Status != http.StatusForbidden {
			t.Errorf("_type outside the scopes = %d %s, want 403", res.Status, res.Body)
		}
	})
}

// withClient runs fn with requests authorized as c.
func withClient(s *server, c *client.BackendServices, fn func()) {
	was := s.tokens
	s.tokens = c
	defer func() { s.tokens = was }()
	fn()
}
