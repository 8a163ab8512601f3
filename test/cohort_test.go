package test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/client"
)

// The Bulk Cohort API end to end (requirements 5.9, R121): cohorts created
// asynchronously over HTTP, their members and exports compared with sets
// computed by brute force from the input files.

const cohortScope = "system/*.rs system/Group.cud"

// cohortClient returns a copy of s whose requests carry a token of a new client
// registered with scope and contract Groups; the client may be granted
// Group writes.
func (s *server) cohortClient(scope string, groups ...string) *server {
	s.t.Helper()
	key, err := client.GenerateES384()
	if err != nil {
		s.t.Fatal(err)
	}
	md, _ := json.Marshal(map[string]any{"client_name": "cohort test", "scope": scope,
		"jwks": map[string]any{"keys": []client.JWK{key.PublicJWK()}}})
	c, _, err := s.app.API.Authz.Authority.Register(context.Background(), md,
		auth.RegistrationDefaults{Groups: groups, MaxScopes: strings.Fields(cohortScope)})
	if err != nil {
		s.t.Fatalf("Register: %v", err)
	}
	cp := *s
	cp.tokens = &client.BackendServices{ClientID: c.ID, Key: key, TokenURL: s.URL + "/token", FHIRBase: s.URL, Scope: scope}
	return &cp
}

// cohortBody is a bulk-cohort-group Group with filters and member entities.
func cohortBody(name string, filters []string, entities ...string) string {
	var mods, ms []string
	for _, f := range filters {
		e, _ := json.Marshal(f)
		mods = append(mods, fmt.Sprintf(`{"url":%q,"valueExpression":{"language":"application/x-fhir-query","expression":%s}}`, bulk.MemberFilterURL, e))
	}
	for _, e := range entities {
		ms = append(ms, fmt.Sprintf(`{"entity":{"reference":%q}}`, e))
	}
	member := ""
	if len(ms) > 0 {
		member = `,"member":[` + strings.Join(ms, ",") + `]`
	}
	return fmt.Sprintf(`{"resourceType":"Group","meta":{"profile":[%q]},"modifierExtension":[%s],"type":"person","actual":%v,"name":%q%s}`,
		bulk.CohortProfile, strings.Join(mods, ","), len(ms) > 0, name, member)
}

// batchResponse is the completed async interaction's answer.
type batchResponse struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		Response struct {
			Status   string          `json:"status"`
			Location string          `json:"location"`
			Outcome  json.RawMessage `json:"outcome"`
		} `json:"response"`
	} `json:"entry"`
}

// createCohort posts a cohort (FHIR Asynchronous Interaction Request:
// Prefer respond-async, 202 and Content-Location) and polls the status URL
// until it answers 200 with a batch-response; it returns the Group id.
func (s *server) createCohort(body string) string {
	s.t.Helper()
	res := s.do("POST", "/Group", []byte(body), "Content-Type", "application/fhir+json", "Prefer", "respond-async", "Accept", "application/fhir+json")
	if res.Status != http.StatusAccepted {
		s.t.Fatalf("POST /Group = %d %s, want 202", res.Status, res.Body)
	}
	loc := res.Header.Get("Content-Location")
	if !strings.HasPrefix(loc, s.URL+"/cohorts/") {
		s.t.Fatalf("POST /Group Content-Location %q is not this server's status URL", loc)
	}
	br := s.pollCohort(loc)
	if len(br.Entry) != 1 || br.Entry[0].Response.Status != "201 Created" || len(br.Entry[0].Response.Outcome) == 0 {
		s.t.Fatalf("cohort creation answered %+v, want one entry 201 Created with an outcome", br)
	}
	id, ok := strings.CutPrefix(br.Entry[0].Response.Location, "Group/")
	if !ok || id != strings.TrimPrefix(loc, s.URL+"/cohorts/") {
		s.t.Fatalf("entry[0].response.location %q, status URL %s", br.Entry[0].Response.Location, loc)
	}
	return id
}

// pollCohort polls a cohort status URL until it is done (each poll answers
// at once: readiness, not sleeps).
func (s *server) pollCohort(loc string) batchResponse {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		res := s.do("GET", loc, nil)
		switch res.Status {
		case http.StatusAccepted:
			if res.Header.Get("Retry-After") == "" {
				s.t.Fatalf("in-progress cohort status has no Retry-After")
			}
			time.Sleep(5 * time.Millisecond) // poll interval, not a wait for a condition
			continue
		case http.StatusOK:
			var br batchResponse
			if err := json.Unmarshal(res.Body, &br); err != nil || br.ResourceType != "Bundle" || br.Type != "batch-response" {
				s.t.Fatalf("cohort status = %s, want a batch-response Bundle", res.Body)
			}
			return br
		default:
			s.t.Fatalf("GET %s = %d %s", loc, res.Status, res.Body)
		}
	}
	s.t.Fatalf("cohort %s was not created in time", loc)
	return batchResponse{}
}

// cohortGroup is what GET /Group/{id} says of a cohort.
type cohortGroup struct {
	Meta struct {
		LastUpdated string   `json:"lastUpdated"`
		Profile     []string `json:"profile"`
	} `json:"meta"`
	Extension []struct {
		URL           string `json:"url"`
		ValueDateTime string `json:"valueDateTime"`
	} `json:"extension"`
	Name     string `json:"name"`
	Quantity int    `json:"quantity"`
	Actual   bool   `json:"actual"`
	Member   []struct {
		Entity struct {
			Reference string `json:"reference"`
		} `json:"entity"`
	} `json:"member"`
}

// readCohort reads the cohort Group and checks the profile's rules.
func (s *server) readCohort(id string) (cohortGroup, []string) {
	s.t.Helper()
	res := s.do("GET", "/Group/"+id, nil)
	if res.Status != http.StatusOK {
		s.t.Fatalf("GET /Group/%s = %d %s", id, res.Status, res.Body)
	}
	var g cohortGroup
	if err := json.Unmarshal(res.Body, &g); err != nil {
		s.t.Fatal(err)
	}
	var members []string
	for _, m := range g.Member {
		members = append(members, strings.TrimPrefix(m.Entity.Reference, "Patient/"))
	}
	sort.Strings(members)
	if g.Quantity != len(members) || g.Actual != (len(members) > 0) || !slices.Contains(g.Meta.Profile, bulk.CohortProfile) {
		s.t.Errorf("Group/%s: quantity %d, actual %v, profile %v with %d members", id, g.Quantity, g.Actual, g.Meta.Profile, len(members))
	}
	lu, err := time.Parse(time.RFC3339Nano, g.Meta.LastUpdated)
	if err != nil || len(g.Extension) == 0 || g.Extension[0].URL != bulk.MembersRefreshedURL {
		s.t.Fatalf("Group/%s has no lastUpdated or members-refreshed: %s", id, res.Body)
	}
	if refreshed, err := time.Parse(time.RFC3339Nano, g.Extension[0].ValueDateTime); err != nil || refreshed.After(lu) {
		s.t.Errorf("members-refreshed %s is later than meta.lastUpdated %s (or not a dateTime)", g.Extension[0].ValueDateTime, g.Meta.LastUpdated)
	}
	return g, members
}

// having returns the patients with a resource of typ that pred accepts, in
// their compartment (brute force over the input: ds.patientsOf).
func (ds *dataset) having(typ string, pred func(m map[string]any) bool) map[string]bool {
	out := map[string]bool{}
	for _, r := range ds.byKey {
		if r.Type == typ && pred(r.json()) {
			for _, p := range ds.patientsOf(r) {
				out[p] = true
			}
		}
	}
	return out
}

func meet(sets ...map[string]bool) []string {
	var out []string
	for p := range sets[0] {
		in := true
		for _, s := range sets[1:] {
			in = in && s[p]
		}
		if in {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func setOf(ids []string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// cohortCase is one cohort and its brute-force members.
type cohortCase struct {
	name     string
	filters  []string
	entities []string
	want     []string
}

// checkCohorts creates each cohort and checks its members, its Group and
// a full Group export of it against the brute-force sets.
func checkCohorts(t *testing.T, s *server, ds *dataset, cases []cohortCase) map[string]string {
	ids := map[string]string{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			if len(tc.want) == 0 || len(tc.want) == len(ds.patient) {
				t.Fatalf("case %q selects %d of %d patients: pick one that keeps some and drops some", tc.name, len(tc.want), len(ds.patient))
			}
			id := s.createCohort(cohortBody(tc.name, tc.filters, tc.entities...))
			ids[tc.name] = id
			g, members := s.readCohort(id)
			if g.Name != tc.name {
				t.Errorf("Group name %q, want %q", g.Name, tc.name)
			}
			if diff := cmp.Diff(tc.want, members); diff != "" {
				t.Errorf("cohort %s members (-brute force +server):\n%s", tc.name, diff)
			}
			m := s.wait(s.kickoff("GET", "/Group/"+id+"/$export", nil))
			tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
			lines := s.download(m.Output, false)
			if diff := cmp.Diff(ds.expect(filter{patients: tc.want, txTimeUpTo: tx}), keys(t, lines)); diff != "" {
				t.Errorf("Group/%s/$export (-want +got):\n%s", id, diff)
			}
			var exported []string
			for _, l := range lines {
				if l.Type == "Patient" {
					exported = append(exported, l.ID)
				}
			}
			sort.Strings(exported)
			if diff := cmp.Diff(tc.want, exported); diff != "" {
				t.Errorf("exported Patients (-want +got):\n%s", diff)
			}
		})
	}
	return ids
}

// TestCohortGenerated creates cohorts over generated data for each kind of
// criterion (token, date, reference, string, a bounding Group, AND across
// types) and checks members and exports against brute force (R121 and
// requirements 5.9); then reads them by name, exports one with _since, and
// deletes them.
func TestCohortGenerated(t *testing.T) {
	dir := generated(t, 60)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	srv := startServer(t, cfg)
	s := srv.cohortClient(cohortScope, "*")

	// The most frequent Condition code held by some patients but not all,
	// the most frequent encounter practitioner likewise, and a family
	// prefix.
	condCount := map[string]map[string]bool{}
	pracCount := map[string]map[string]bool{}
	for _, r := range ds.byKey {
		m := r.json()
		switch r.Type {
		case "Condition":
			for _, c := range codings(m["code"]) {
				k := fmt.Sprint(c["system"], "|", c["code"])
				if condCount[k] == nil {
					condCount[k] = map[string]bool{}
				}
				for _, p := range ds.patientsOf(r) {
					condCount[k][p] = true
				}
			}
		case "Encounter":
			parts, _ := m["participant"].([]any)
			for _, pa := range parts {
				ind, _ := pa.(map[string]any)["individual"].(map[string]any)
				ref, _ := ind["reference"].(string)
				if strings.HasPrefix(ref, "Practitioner/") {
					if pracCount[ref] == nil {
						pracCount[ref] = map[string]bool{}
					}
					for _, p := range ds.patientsOf(r) {
						pracCount[ref][p] = true
					}
				}
			}
		}
	}
	best := func(counts map[string]map[string]bool) string {
		var keys []string
		for k, ps := range counts {
			if len(ps) > 1 && len(ps) < len(ds.patient)*3/4 {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool {
			return len(counts[keys[i]]) > len(counts[keys[j]]) || len(counts[keys[i]]) == len(counts[keys[j]]) && keys[i] < keys[j]
		})
		if len(keys) == 0 {
			t.Fatal("no code or reference shared by some patients but not most")
		}
		return keys[0]
	}
	cond := best(condCount)
	condSystem, condCode, _ := strings.Cut(cond, "|")
	prac := best(pracCount)
	patients := slices.Sorted(maps.Keys(ds.patient))
	family := ds.byKey["Patient/"+patients[0]].json()["name"].([]any)[0].(map[string]any)["family"].(string)[:2]
	since := time.Date(2024, 11, 1, 0, 0, 0, 0, time.UTC)

	hasCond := ds.having("Condition", func(m map[string]any) bool { return coded(m, "code", condSystem, condCode) })
	condSince := ds.having("Condition", func(m map[string]any) bool {
		on, ok := instant(m, "onsetDateTime")
		return coded(m, "code", condSystem, condCode) && ok && !on.Before(since)
	})
	seen := ds.having("Encounter", func(m map[string]any) bool {
		parts, _ := m["participant"].([]any)
		for _, pa := range parts {
			if refIs(pa.(map[string]any), "individual", prac) {
				return true
			}
		}
		return false
	})
	women := ds.having("Patient", func(m map[string]any) bool { return strIs(m, "gender", "female") })
	named := ds.having("Patient", func(m map[string]any) bool { return familyStarts(m, family) })
	// The largest Group that has women in it and leaves one out.
	bound, outside := "", ""
	for _, g := range slices.Sorted(maps.Keys(ds.groups)) {
		if len(meet(women, setOf(ds.groups[g]))) == 0 || bound != "" && len(ds.groups[g]) <= len(ds.groups[bound]) {
			continue
		}
		for _, p := range patients {
			if women[p] && !slices.Contains(ds.groups[g], p) {
				bound, outside = g, p
				break
			}
		}
	}
	if bound == "" {
		t.Fatal("no Group with women in it and out of it")
	}

	cases := []cohortCase{
		{name: "token", filters: []string{"Condition?code=" + cond}, want: meet(hasCond)},
		{name: "token and date", filters: []string{"Condition?code=" + cond + "&onset-date=ge" + since.Format("2006-01-02")}, want: meet(condSince)},
		{name: "reference", filters: []string{"Encounter?practitioner=" + prac}, want: meet(seen)},
		{name: "string", filters: []string{"Patient?family=" + family}, want: meet(named)},
		{name: "AND across types", filters: []string{"Patient?gender=female", "Condition?code=" + cond}, want: meet(women, hasCond)},
		{name: "bounding Group", filters: []string{"Patient?gender=female"}, entities: []string{"Group/" + bound}, want: meet(women, setOf(ds.groups[bound]))},
		{name: "bounding Group and Patient", filters: []string{"Patient?gender=female"}, entities: []string{"Group/" + bound, "Patient/" + outside},
			want: meet(women, setOf(append(slices.Clone(ds.groups[bound]), outside)))},
	}
	ids := checkCohorts(t, s, ds, cases)
	s.t = t

	t.Run("search by name", func(t *testing.T) {
		s.t = t
		res := s.do("GET", "/Group?name="+url.QueryEscape("token and"), nil)
		var b struct {
			Entry []struct {
				Resource struct{ ID string }
			}
		}
		_ = json.Unmarshal(res.Body, &b)
		if res.Status != http.StatusOK || len(b.Entry) != 1 || b.Entry[0].Resource.ID != ids["token and date"] {
			t.Errorf("GET /Group?name=token and = %d %s, want the one cohort", res.Status, res.Body)
		}
	})

	t.Run("Group _since: members joined at creation", func(t *testing.T) {
		s.t = t
		// Every member joined when the cohort was created: a _since
		// export from before then has their whole compartments (R90).
		before := time.Now().UTC().Add(-time.Second).Truncate(time.Millisecond)
		id := s.createCohort(cohortBody("since", []string{"Patient?gender=female"}))
		members := meet(women)
		m := s.wait(s.kickoff("GET", "/Group/"+id+"/$export?_since="+url.QueryEscape(before.Format(time.RFC3339Nano)), nil))
		tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
		got := keys(t, s.download(m.Output, false))
		if diff := cmp.Diff(ds.expect(filter{patients: members, since: before, newMembers: members, txTimeUpTo: tx}), got); diff != "" {
			t.Errorf("_since export of a new cohort (-want +got):\n%s", diff)
		}
		// From after the creation, nothing changed.
		after := time.Now().UTC().Truncate(time.Millisecond)
		m = s.wait(s.kickoff("GET", "/Group/"+id+"/$export?_since="+url.QueryEscape(after.Format(time.RFC3339Nano)), nil))
		if n := len(s.download(m.Output, false)); n != 0 {
			t.Errorf("_since after the creation exported %d resources, want none", n)
		}
	})

	t.Run("refresh", func(t *testing.T) {
		s.t = t
		id := ids["token"]
		res := s.do("POST", "/cohorts/"+id+"/refresh", nil)
		if res.Status != http.StatusAccepted {
			t.Fatalf("POST /cohorts/%s/refresh = %d %s", id, res.Status, res.Body)
		}
		br := s.pollCohort(res.Header.Get("Content-Location"))
		if br.Entry[0].Response.Status != "200 OK" {
			t.Errorf("refresh status %q, want 200 OK", br.Entry[0].Response.Status)
		}
		if _, members := s.readCohort(id); !slices.Equal(members, meet(hasCond)) {
			t.Errorf("members after refresh %v", members)
		}
	})

	t.Run("delete", func(t *testing.T) {
		s.t = t
		for _, id := range ids {
			if res := s.do("DELETE", "/Group/"+id, nil); res.Status != http.StatusAccepted {
				t.Fatalf("DELETE /Group/%s = %d %s", id, res.Status, res.Body)
			}
			if res := s.do("GET", "/cohorts/"+id, nil); res.Status != http.StatusNotFound {
				t.Errorf("status of a deleted cohort = %d, want 404", res.Status)
			}
			s.waitGone(id)
			if res := s.do("GET", "/Group/"+id+"/$export", nil); res.Status != http.StatusNotFound {
				t.Errorf("export of a deleted cohort = %d %s, want 404", res.Status, res.Body)
			}
		}
		// A static Group is no client's cohort.
		if res := s.do("DELETE", "/Group/"+bound, nil); res.Status != http.StatusNotFound {
			t.Errorf("DELETE of a static Group = %d %s, want 404", res.Status, res.Body)
		}
		if res := s.do("GET", "/Group/"+bound, nil); res.Status != http.StatusOK {
			t.Errorf("the static Group after the refused DELETE = %d", res.Status)
		}
	})
}

// waitGone polls until the cohort's Group is gone (the workflow removes it).
func (s *server) waitGone(id string) {
	s.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		res := s.do("GET", "/Group/"+id, nil)
		if res.Status == http.StatusNotFound {
			return
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	s.t.Fatalf("Group/%s still there a minute after its deletion", id)
}

// TestCohortContract: a client whose contract allows one Group cannot reach
// other patients through a cohort by any route: its cohorts' members are
// within the Group whatever the filters, it may not bound a cohort by
// another Group, its cohorts export (Group and Patient level) only those
// patients, and another client limited elsewhere neither reads, exports
// nor deletes them (requirements 1.6, 5.9).
func TestCohortContract(t *testing.T) {
	dir := generated(t, 40)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	srv := startServer(t, cfg)
	groups := slices.Sorted(maps.Keys(ds.groups))
	g, other := groups[0], groups[1]
	lim := srv.cohortClient(cohortScope, g)
	women := ds.having("Patient", func(m map[string]any) bool { return strIs(m, "gender", "female") })
	inG := setOf(ds.groups[g])
	want := meet(women, inG)
	if len(want) == 0 || len(meet(women)) == len(want) {
		t.Fatalf("Group %s has %d women of %d: the test needs some in and some out", g, len(want), len(meet(women)))
	}
	outside := ""
	for _, p := range meet(women) {
		if !inG[p] {
			outside = p
		}
	}

	// Patient?gender=female would be every woman: the contract bounds it,
	// and a Patient entity outside the Group adds nobody.
	id := lim.createCohort(cohortBody("women", []string{"Patient?gender=female"}))
	id2 := lim.createCohort(cohortBody("women and one more", []string{"Patient?gender=female"}, "Group/"+g, "Patient/"+outside))
	for _, c := range []string{id, id2} {
		lim.t = t
		if _, members := lim.readCohort(c); !slices.Equal(members, want) {
			t.Errorf("contract-limited cohort %s members %v, want %v (the women of Group/%s)", c, members, want, g)
		}
		// Its own cohort exports, and only those patients.
		m := lim.wait(lim.kickoff("GET", "/Group/"+c+"/$export", nil))
		tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
		if diff := cmp.Diff(ds.expect(filter{patients: want, txTimeUpTo: tx}), keys(t, lim.download(m.Output, false))); diff != "" {
			t.Errorf("export of the limited client's cohort (-want +got):\n%s", diff)
		}
	}
	// The Patient level covers the contract's Group (its cohorts are within
	// it), as before.
	m := lim.wait(lim.kickoff("GET", "/Patient/$export", nil))
	tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
	if diff := cmp.Diff(ds.expect(filter{compOnly: true, patients: ds.groups[g], txTimeUpTo: tx}), keys(t, lim.download(m.Output, false))); diff != "" {
		t.Errorf("Patient-level export of the limited client (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"bounded by another Group", "POST", "/Group", cohortBody("x", []string{"Patient?gender=female"}, "Group/"+other), http.StatusForbidden},
		{"system export", "GET", "/$export", "", http.StatusForbidden},
		{"another Group's export", "GET", "/Group/" + other + "/$export", "", http.StatusForbidden},
		{"delete the contract's Group", "DELETE", "/Group/" + g, "", http.StatusNotFound},
	} {
		res := lim.do(tc.method, tc.path, []byte(tc.body), "Prefer", "respond-async", "Content-Type", "application/fhir+json")
		if res.Status != tc.status {
			t.Errorf("%s: %s %s = %d %s, want %d", tc.name, tc.method, tc.path, res.Status, res.Body, tc.status)
		}
	}
	// Another limited client: the cohort is not its Group.
	stranger := srv.cohortClient(cohortScope, other)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/Group/" + id, http.StatusForbidden},
		{"GET", "/Group/" + id + "/$export", http.StatusForbidden},
		{"GET", "/cohorts/" + id, http.StatusNotFound},
		{"DELETE", "/Group/" + id, http.StatusNotFound},
		{"POST", "/cohorts/" + id + "/refresh", http.StatusNotFound},
	} {
		if res := stranger.do(tc.method, tc.path, nil); res.Status != tc.status {
			t.Errorf("another client: %s %s = %d %s, want %d", tc.method, tc.path, res.Status, res.Body, tc.status)
		}
	}
	// A client allowed every Group: another client's cohort is as unknown
	// as a Group that does not exist (its filters and members are that
	// client's), by read, search and export.
	everyone := srv.cohortClient(cohortScope, "*")
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/Group/" + id, http.StatusNotFound},
		{"GET", "/Group/" + id + "/$export", http.StatusNotFound},
		{"GET", "/cohorts/" + id, http.StatusNotFound},
	} {
		if res := everyone.do(tc.method, tc.path, nil, "Prefer", "respond-async"); res.Status != tc.status {
			t.Errorf("a client with every Group: %s %s = %d %s, want %d", tc.method, tc.path, res.Status, res.Body, tc.status)
		}
	}
	if res := everyone.do("GET", "/Group?name=women", nil); res.Status != http.StatusOK || strings.Contains(string(res.Body), id) {
		t.Errorf("a client with every Group: GET /Group?name=women = %d, lists another client's cohort %s: %s", res.Status, id, res.Body)
	}
	everyone.t = t
	own := everyone.createCohort(cohortBody("mine", []string{"Patient?gender=female"}))
	m = everyone.wait(everyone.kickoff("GET", "/$export?_type=Group", nil))
	exported := keys(t, everyone.download(m.Output, false))
	if slices.Contains(exported, "Group/"+id) || slices.Contains(exported, "Group/"+id2) || !slices.Contains(exported, "Group/"+own) || !slices.Contains(exported, "Group/"+g) {
		t.Errorf("system export of Groups by a client with every Group = %v: want its own cohort %s and Group %s, not another client's cohorts %s %s", exported, own, g, id, id2)
	}
	// Its own search finds its cohorts and its Group, nothing else.
	res := lim.do("GET", "/Group", nil)
	var b struct {
		Entry []struct{ Resource struct{ ID string } }
	}
	_ = json.Unmarshal(res.Body, &b)
	var found []string
	for _, e := range b.Entry {
		found = append(found, e.Resource.ID)
	}
	if diff := cmp.Diff(slices.Sorted(slices.Values([]string{g, id, id2})), slices.Sorted(slices.Values(found))); diff != "" {
		t.Errorf("GET /Group by the limited client (-want +got):\n%s", diff)
	}
}

// TestCohortAuthorization: creating needs system/Group.cud; the filters'
// types need read scopes; unsupported criteria are 400 naming them; the
// CapabilityStatement lists the profile (R121).
func TestCohortAuthorization(t *testing.T) {
	dir := generated(t, 6)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	srv := startServer(t, cfg)
	body := cohortBody("x", []string{"Condition?code=44054006"})
	hdr := []string{"Prefer", "respond-async", "Content-Type", "application/fhir+json"}
	// The default test client reads only (system/*.read).
	if res := srv.do("POST", "/Group", []byte(body), hdr...); res.Status != http.StatusForbidden || !strings.Contains(string(res.Body), "system/Group.cud") {
		t.Errorf("POST /Group with a read-only token = %d %s, want 403 naming system/Group.cud", res.Status, res.Body)
	}
	// Group writes without Condition read.
	narrow := srv.cohortClient("system/Patient.rs system/Group.cud", "*")
	if res := narrow.do("POST", "/Group", []byte(body), hdr...); res.Status != http.StatusForbidden || !strings.Contains(string(res.Body), "Condition") {
		t.Errorf("Condition filter without Condition read = %d %s, want 403", res.Status, res.Body)
	}
	w := srv.cohortClient(cohortScope, "*")
	for _, tc := range []struct {
		name, body, fragment string
		headers              []string
	}{
		{"unsupported parameter", cohortBody("x", []string{"Condition?not-a-param=1"}), "not-a-param", hdr},
		{"result parameter", cohortBody("x", []string{"Patient?_sort=name"}), "_sort", hdr},
		{"no filter", `{"resourceType":"Group","type":"person","actual":false,"name":"x"}`, "member-filter", hdr},
		{"not asynchronous", body, "respond-async", []string{"Content-Type", "application/fhir+json"}},
	} {
		res := w.do("POST", "/Group", []byte(tc.body), tc.headers...)
		if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), tc.fragment) {
			t.Errorf("%s: POST /Group = %d %s, want 400 naming %q", tc.name, res.Status, res.Body, tc.fragment)
		}
	}
	res := srv.do("GET", "/metadata", nil)
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type             string   `json:"type"`
				SupportedProfile []string `json:"supportedProfile"`
				Interaction      []struct{ Code string }
			} `json:"resource"`
		} `json:"rest"`
	}
	_ = json.Unmarshal(res.Body, &cs)
	ok := false
	for _, r := range cs.Rest[0].Resource {
		if r.Type == "Group" && slices.Contains(r.SupportedProfile, bulk.CohortProfile) {
			ok = true
		}
	}
	if !ok {
		t.Errorf("the CapabilityStatement's Group lacks supportedProfile %s (R121)", bulk.CohortProfile)
	}
}

// TestCohortSynthea creates cohorts over synthea-100 (urn:uuid references,
// most resources without meta.lastUpdated) and checks them against brute
// force.
func TestCohortSynthea(t *testing.T) {
	dir := sharedData(t, "synthea-100")
	cfg := testConfig(t)
	cfg.Export.MaxFileResources = 5000
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	srv := startServer(t, cfg)
	s := srv.cohortClient(cohortScope, "*")
	const snomed = "http://snomed.info/sct"
	// Prediabetes and hypertension are common in Synthea; fall back to the
	// most common code held by some but not most patients.
	pick := ""
	best := 0
	counts := map[string]map[string]bool{}
	for _, r := range ds.byKey {
		if r.Type != "Condition" {
			continue
		}
		for _, c := range codings(r.json()["code"]) {
			if c["system"] != snomed {
				continue
			}
			k, _ := c["code"].(string)
			if counts[k] == nil {
				counts[k] = map[string]bool{}
			}
			for _, p := range ds.patientsOf(r) {
				counts[k][p] = true
			}
		}
	}
	for k, ps := range counts {
		if n := len(ps); n < len(ds.patient)*3/4 && (n > best || n == best && k < pick) {
			pick, best = k, n
		}
	}
	hasCond := ds.having("Condition", func(m map[string]any) bool { return coded(m, "code", snomed, pick) })
	women := ds.having("Patient", func(m map[string]any) bool { return strIs(m, "gender", "female") })
	since := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	recent := ds.having("Condition", func(m map[string]any) bool {
		on, ok := instant(m, "onsetDateTime")
		return coded(m, "code", snomed, pick) && ok && !on.Before(since)
	})
	// The organization that provided encounters to the most patients
	// but not most of them (a reference filter), and the most common
	// two-letter family prefix (a string filter, case-insensitive).
	providers := map[string]map[string]bool{}
	prefixes := map[string]map[string]bool{}
	nonASCII := false
	for _, r := range ds.byKey {
		m := r.json()
		switch r.Type {
		case "Encounter":
			sp, _ := m["serviceProvider"].(map[string]any)
			if ref, _ := sp["reference"].(string); strings.HasPrefix(ref, "Organization/") {
				if providers[ref] == nil {
					providers[ref] = map[string]bool{}
				}
				for _, p := range ds.patientsOf(r) {
					providers[ref][p] = true
				}
			}
		case "Patient":
			names, _ := m["name"].([]any)
			for _, n := range names {
				f, _ := n.(map[string]any)["family"].(string)
				if rs := []rune(f); len(rs) >= 2 {
					k := strings.ToLower(string(rs[:2]))
					// FHIR string search ignores accents, which this
					// brute force does not: only ASCII prefixes compare.
					nonASCII = nonASCII || !isASCII(k)
					if prefixes[k] == nil {
						prefixes[k] = map[string]bool{}
					}
					prefixes[k][r.ID] = true
				}
			}
		}
	}
	mostHeld := func(counts map[string]map[string]bool) string {
		k, n := "", 0
		for key, ps := range counts {
			if l := len(ps); l < len(ds.patient)*3/4 && (l > n || l == n && key < k) {
				k, n = key, l
			}
		}
		return k
	}
	org, prefix := mostHeld(providers), mostHeld(prefixes)
	if org == "" || prefix == "" {
		t.Fatal("synthea-100 has no Encounter.serviceProvider or Patient family shared by some patients")
	}
	served := ds.having("Encounter", func(m map[string]any) bool { return refIs(m, "serviceProvider", org) })
	named := ds.having("Patient", func(m map[string]any) bool { return familyStarts(m, prefix) })
	groups := slices.Sorted(maps.Keys(ds.groups))
	cases := []cohortCase{
		{name: "condition", filters: []string{"Condition?code=" + snomed + "|" + pick}, want: meet(hasCond)},
		{name: "women with the condition since 2015", filters: []string{"Patient?gender=female", "Condition?code=" + snomed + "|" + pick + "&onset-date=ge2015-01-01"}, want: meet(women, recent)},
		{name: "reference", filters: []string{"Encounter?service-provider=" + org}, want: meet(served)},
	}
	if nonASCII {
		t.Log("a family name starts with a non-ASCII letter: the string case is left out (accent folding)")
	} else {
		cases = append(cases, cohortCase{name: "string", filters: []string{"Patient?family=" + prefix}, want: meet(named)})
	}
	if len(groups) > 0 {
		g := groups[0]
		if w := meet(women, setOf(ds.groups[g])); len(w) > 0 && len(w) < len(ds.patient) {
			cases = append(cases, cohortCase{name: "women of a Group", filters: []string{"Patient?gender=female"}, entities: []string{"Group/" + g}, want: w})
		}
	}
	checkCohorts(t, s, ds, cases)
}

// TestCohortOpenServer: without authorization (a local open server) there
// are no contracts: a cohort is every matching patient's.
func TestCohortOpenServer(t *testing.T) {
	dir := generated(t, 12)
	cfg := testConfig(t)
	cfg.Auth.Open = true
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)
	id := s.createCohort(cohortBody("women", []string{"Patient?gender=female"}))
	women := ds.having("Patient", func(m map[string]any) bool { return strIs(m, "gender", "female") })
	if _, members := s.readCohort(id); !slices.Equal(members, meet(women)) {
		t.Errorf("members %v, want %v", members, meet(women))
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
