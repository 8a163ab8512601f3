package cohort_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/cohort"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/mem"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const snomed = "http://snomed.info/sct"

// clock is an injectable wall clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fixture is a service over in-memory stores, its local workflow, and a
// channel of finished runs.
type fixture struct {
	svc     *cohort.Service
	store   *mem.ResourceStore
	cohorts *mem.CohortStore
	clients *mem.ClientStore
	clock   *clock
	wf      *cohort.Local
	done    chan runResult
}

type runResult struct {
	run bulk.CohortRun
	err error
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		store: mem.NewResourceStore(4), cohorts: mem.NewCohortStore(), clients: mem.NewClientStore(),
		clock: &clock{now: t0}, done: make(chan runResult, 64),
	}
	f.svc = &cohort.Service{
		Cohorts: f.cohorts, Resources: f.store, Clock: f.store, Clients: f.clients, Now: f.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	wf, err := cohort.NewLocal(cohort.Steps{Svc: f.svc}, f.svc.Logger)
	if err != nil {
		t.Fatal(err)
	}
	wf.OnDone(func(run bulk.CohortRun, err error) { f.done <- runResult{run, err} })
	f.svc.Workflow = wf
	f.wf = wf
	t.Cleanup(wf.Close)
	return f
}

// wait waits for the next finished run (readiness: the runner signals).
func (f *fixture) wait(t *testing.T) runResult {
	t.Helper()
	select {
	case r := <-f.done:
		return r
	case <-time.After(time.Minute):
		t.Fatal("no cohort run finished within a minute")
	}
	return runResult{}
}

func (f *fixture) addClient(t *testing.T, id string, groups ...string) {
	t.Helper()
	if err := f.clients.CreateClient(context.Background(), &bulk.Client{ID: id, Groups: groups, Scopes: []string{"system/*.rs", "system/Group.cud"}}); err != nil {
		t.Fatal(err)
	}
}

// put stores resources (JSON) at lastUpdated at, with their compartments
// and Group members as the importer computes them.
func (f *fixture) put(t *testing.T, at time.Time, bodies ...string) {
	t.Helper()
	var rs []*bulk.Resource
	for _, b := range bodies {
		var head struct{ ResourceType, ID string }
		if err := json.Unmarshal([]byte(b), &head); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		r := &bulk.Resource{Type: head.ResourceType, ID: head.ID, LastUpdated: at, Body: []byte(b),
			Patients: fhir.PatientCompartment(head.ResourceType, head.ID, []byte(b))}
		if r.Type == "Group" {
			r.Members = fhir.GroupMembers(r.Body)
		}
		rs = append(rs, r)
	}
	if err := f.store.Put(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

func patient(id, gender, birth string) string {
	return fmt.Sprintf(`{"resourceType":"Patient","id":%q,"gender":%q,"birthDate":%q}`, id, gender, birth)
}

func condition(id, patient, code, onset string) string {
	return fmt.Sprintf(`{"resourceType":"Condition","id":%q,"subject":{"reference":"Patient/%s"},"code":{"coding":[{"system":%q,"code":%q}]},"onsetDateTime":%q}`,
		id, patient, snomed, code, onset)
}

func group(id string, members ...string) string {
	var ms []string
	for _, m := range members {
		ms = append(ms, fmt.Sprintf(`{"entity":{"reference":"Patient/%s"}}`, m))
	}
	return fmt.Sprintf(`{"resourceType":"Group","id":%q,"type":"person","actual":true,"member":[%s]}`, id, strings.Join(ms, ","))
}

// cohortGroup is a posted bulk-cohort-group Group.
func cohortGroup(name string, filters []string, entities ...string) string {
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

// seed stores ten patients: p0..p9, even ones female; p0..p5 have
// diabetes (44054006) with onsets 2023 and 2024; p6 has asthma.
func seed(t *testing.T, f *fixture) {
	t.Helper()
	var bodies []string
	for i := range 10 {
		g := "male"
		if i%2 == 0 {
			g = "female"
		}
		bodies = append(bodies, patient(fmt.Sprintf("p%d", i), g, fmt.Sprintf("19%d0-01-01", 4+i%5)))
	}
	for i := range 6 {
		bodies = append(bodies, condition(fmt.Sprintf("c%d", i), fmt.Sprintf("p%d", i), "44054006", fmt.Sprintf("202%d-06-01", 3+i%2)))
	}
	bodies = append(bodies, condition("c6", "p6", "195967001", "2024-02-01"))
	bodies = append(bodies, group("g1", "p0", "p1", "p2", "p3"), group("g2", "p4", "p5", "p6"))
	f.put(t, t0.Add(-time.Hour), bodies...)
}

// create posts a cohort and waits for its evaluation.
func (f *fixture) create(t *testing.T, owner, body string) *bulk.Cohort {
	t.Helper()
	c, err := f.svc.Create(context.Background(), bulk.CohortRequest{Owner: owner, Body: []byte(body), BaseURL: "https://fhir.example"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if r := f.wait(t); r.err != nil || r.run.CohortID != c.ID {
		t.Fatalf("run %+v: %v", r.run, r.err)
	}
	got, err := f.cohorts.GetCohort(context.Background(), owner, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (f *fixture) members(t *testing.T, id string) []string {
	t.Helper()
	ms, err := f.store.GroupMembers(context.Background(), id)
	if err != nil {
		t.Fatalf("GroupMembers(%s): %v", id, err)
	}
	return ms
}

func TestCohortCreateAndEvaluate(t *testing.T) {
	f := newFixture(t)
	f.addClient(t, "c1", "*")
	seed(t, f)
	for _, tc := range []struct {
		name     string
		filters  []string
		entities []string
		want     []string
	}{
		{"token", []string{"Condition?code=" + snomed + "|44054006"}, nil, []string{"p0", "p1", "p2", "p3", "p4", "p5"}},
		{"token and date", []string{"Condition?code=" + snomed + "|44054006&onset-date=ge2024-01-01"}, nil, []string{"p1", "p3", "p5"}},
		{"AND of two types", []string{"Condition?code=" + snomed + "|44054006", "Patient?gender=female"}, nil, []string{"p0", "p2", "p4"}},
		{"patient date", []string{"Patient?birthdate=le1950-12-31"}, nil, []string{"p0", "p1", "p5", "p6"}},
		{"bounded by a Group", []string{"Patient?gender=female"}, []string{"Group/g2"}, []string{"p4", "p6"}},
		{"bounded by Patients", []string{"Condition?code=44054006"}, []string{"Patient/p5", "Patient/p9", "https://fhir.example/Patient/p0"}, []string{"p0", "p5"}},
		{"nobody", []string{"Condition?code=" + snomed + "|195967001", "Patient?gender=male"}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.create(t, "c1", cohortGroup(tc.name, tc.filters, tc.entities...))
			if c.Status != bulk.CohortReady || c.Members != len(tc.want) {
				t.Errorf("cohort = %s with %d members (%s), want ready with %d", c.Status, c.Members, c.Failure, len(tc.want))
			}
			got, err := f.store.GroupMembers(context.Background(), c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("members (-want +got):\n%s", diff)
			}
			// The stored Group: the profile, quantity, actual,
			// members-refreshed no later than meta.lastUpdated.
			g, err := f.store.Get(context.Background(), "Group", c.ID)
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Meta struct {
					LastUpdated string   `json:"lastUpdated"`
					Profile     []string `json:"profile"`
				} `json:"meta"`
				Extension []struct {
					URL           string `json:"url"`
					ValueDateTime string `json:"valueDateTime"`
				} `json:"extension"`
				ModifierExtension []json.RawMessage `json:"modifierExtension"`
				Name              string            `json:"name"`
				Quantity          int               `json:"quantity"`
				Actual            bool              `json:"actual"`
			}
			if err := json.Unmarshal(g.Body, &body); err != nil {
				t.Fatalf("stored Group is not JSON: %v\n%s", err, g.Body)
			}
			if body.Name != tc.name || body.Quantity != len(tc.want) || body.Actual != (len(tc.want) > 0) ||
				!slices.Contains(body.Meta.Profile, bulk.CohortProfile) || len(body.ModifierExtension) != len(tc.filters) {
				t.Errorf("stored Group %s", g.Body)
			}
			lu, _ := time.Parse(time.RFC3339Nano, body.Meta.LastUpdated)
			if !lu.Equal(g.LastUpdated) {
				t.Errorf("meta.lastUpdated %s, stored at %v", body.Meta.LastUpdated, g.LastUpdated)
			}
			if len(body.Extension) == 0 || body.Extension[0].URL != bulk.MembersRefreshedURL {
				t.Fatalf("no members-refreshed extension: %s", g.Body)
			}
			refreshed, _ := time.Parse(time.RFC3339Nano, body.Extension[0].ValueDateTime)
			if refreshed.After(lu) || !refreshed.Equal(c.RefreshedAt) {
				t.Errorf("members-refreshed %v, lastUpdated %v, cohort RefreshedAt %v: want refreshed = RefreshedAt <= lastUpdated", refreshed, lu, c.RefreshedAt)
			}
		})
	}
}

func TestCohortDefinitionErrors(t *testing.T) {
	f := newFixture(t)
	f.addClient(t, "c1", "*")
	seed(t, f)
	good := cohortGroup("x", []string{"Patient?gender=female"})
	edit := func(from, to string) string { return strings.Replace(good, from, to, 1) }
	for _, tc := range []struct {
		name, body, code, fragment string
	}{
		{"NotJSON", "{", bulk.EINVALID, "not a JSON Group"},
		{"NotGroup", `{"resourceType":"Patient"}`, bulk.EINVALID, "resourceType Group"},
		{"NoType", edit(`"type":"person",`, ""), bulk.EINVALID, "Group.type is required"},
		{"Practitioners", edit(`"type":"person"`, `"type":"practitioner"`), bulk.EUNSUPPORTED, "practitioner"},
		{"NoName", edit(`"name":"x"`, `"name":""`), bulk.EINVALID, "Group.name"},
		{"Characteristic", edit(`"type":"person"`, `"type":"person","characteristic":[{"code":{"text":"x"},"valueBoolean":true,"exclude":false}]`), bulk.EINVALID, "characteristic"},
		{"ActualWithoutMembers", edit(`"actual":false`, `"actual":true`), bulk.EINVALID, "actual"},
		{"NoActual", edit(`"actual":false,`, ""), bulk.EINVALID, "actual"},
		{"NoFilter", edit(`"modifierExtension":[`, `"modifierExtension":[],"x":[`), bulk.EINVALID, "at least one member-filter"},
		{"UnknownModifier", edit(`"modifierExtension":[`, `"modifierExtension":[{"url":"https://example.org/x","valueBoolean":true},`), bulk.EUNSUPPORTED, "https://example.org/x"},
		{"Language", edit(`application/x-fhir-query`, `text/fhirpath`), bulk.EINVALID, "language"},
		{"UnsupportedParameter", cohortGroup("x", []string{"Condition?bogus-param=1"}), bulk.EUNSUPPORTED, "bogus-param"},
		{"ResultParameter", cohortGroup("x", []string{"Patient?gender=female&_count=5"}), bulk.EINVALID, "_count"},
		{"UnsupportedModifier", cohortGroup("x", []string{"Patient?gender:above=female"}), bulk.EUNSUPPORTED, ":above"},
		{"NotCompartment", cohortGroup("x", []string{"Practitioner?name=x"}), bulk.EUNSUPPORTED, "Practitioner"},
		{"GroupFilter", cohortGroup("x", []string{"Group?type=person"}), bulk.EUNSUPPORTED, "Group"},
		{"PractitionerMember", cohortGroup("x", []string{"Patient?gender=male"}, "Practitioner/d1"), bulk.EUNSUPPORTED, "Practitioner"},
		{"OtherServer", cohortGroup("x", []string{"Patient?gender=male"}, "https://elsewhere.example/Patient/p1"), bulk.EINVALID, "not on this server"},
		{"UnknownGroup", cohortGroup("x", []string{"Patient?gender=male"}, "Group/nope"), bulk.EINVALID, "Group/nope"},
		{"OnlyInactiveMembers", strings.Replace(cohortGroup("x", []string{"Patient?gender=female"}, "Patient/p1"), `{"reference":"Patient/p1"}`, `{"reference":"Patient/p1"},"inactive":true`, 1), bulk.EINVALID, "inactive"},
		{"TooLarge", edit(`"name":"x"`, `"name":"x","text":{"status":"generated","div":"`+strings.Repeat("x", cohort.MaxDefinitionBytes)+`"}`), bulk.EINVALID, "at most"},
		{"RefreshTooOften", edit(`"type":"person"`, `"type":"person","extension":[{"url":"`+bulk.RefreshIntervalURL+`","valueDuration":{"value":1,"code":"min"}}]`), bulk.EINVALID, "shorter"},
		{"RefreshNoUnit", edit(`"type":"person"`, `"type":"person","extension":[{"url":"`+bulk.RefreshIntervalURL+`","valueDuration":{"value":1}}]`), bulk.EINVALID, "valueDuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Create(context.Background(), bulk.CohortRequest{Owner: "c1", Body: []byte(tc.body), BaseURL: "https://fhir.example"})
			if bulk.ErrorCode(err) != tc.code || !strings.Contains(bulk.ErrorMessage(err), tc.fragment) {
				t.Errorf("Create = %v; want %s naming %q", err, tc.code, tc.fragment)
			}
			if strings.Contains(bulk.ErrorMessage(err), "_typeFilter") {
				t.Errorf("message %q speaks of _typeFilter, not member-filter", bulk.ErrorMessage(err))
			}
		})
	}
	var n int
	_ = f.cohorts.ListCohorts(context.Background(), "", func(*bulk.Cohort) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d cohorts stored by refused requests", n)
	}
}

// TestCohortScopes: a filter on a type the token may not read, or a
// bounding Group without Group read, is refused; scope restrictions narrow
// what a filter sees.
func TestCohortScopes(t *testing.T) {
	f := newFixture(t)
	f.addClient(t, "c1", "*")
	seed(t, f)
	reads := func(types ...string) func(string) error {
		return func(typ string) error {
			if slices.Contains(types, typ) {
				return nil
			}
			return bulk.Errorf(bulk.EFORBIDDEN, "no %s", typ)
		}
	}
	ctx := context.Background()
	_, err := f.svc.Create(ctx, bulk.CohortRequest{Owner: "c1", Body: []byte(cohortGroup("x", []string{"Condition?code=44054006"})), Reads: reads("Patient")})
	if bulk.ErrorCode(err) != bulk.EFORBIDDEN {
		t.Errorf("Condition filter without Condition read = %v, want %s", err, bulk.EFORBIDDEN)
	}
	_, err = f.svc.Create(ctx, bulk.CohortRequest{Owner: "c1", Body: []byte(cohortGroup("x", []string{"Patient?gender=male"}, "Group/g1")), Reads: reads("Patient")})
	if bulk.ErrorCode(err) != bulk.EFORBIDDEN {
		t.Errorf("bounding Group without Group read = %v, want %s", err, bulk.EFORBIDDEN)
	}
	// system/Condition.rs?onset-date=ge2024-01-01: only those Conditions count.
	c, err := f.svc.Create(ctx, bulk.CohortRequest{Owner: "c1", Body: []byte(cohortGroup("x", []string{"Condition?code=44054006"})),
		Reads: reads("Patient", "Condition"), Restrictions: map[string][]string{"Condition": {"onset-date=ge2024-01-01"}, "Patient": {}}})
	if err != nil {
		t.Fatal(err)
	}
	f.wait(t)
	if diff := cmp.Diff([]string{"p1", "p3", "p5"}, f.members(t, c.ID)); diff != "" {
		t.Errorf("members under a restricted scope (-want +got):\n%s", diff)
	}
}

// TestCohortContract: a client limited to one Group gets cohorts within
// it, whatever the filters say; may bound only by its Groups; and counts
// its cohorts among its Groups only while they are within its contract.
func TestCohortContract(t *testing.T) {
	f := newFixture(t)
	f.addClient(t, "lim", "g1")
	f.addClient(t, "all", "*")
	seed(t, f)
	ctx := context.Background()

	// Patient?gender=female would be p0 p2 p4 p6 p8: the contract keeps g1's.
	c := f.create(t, "lim", cohortGroup("women", []string{"Patient?gender=female"}))
	if diff := cmp.Diff([]string{"p0", "p2"}, f.members(t, c.ID)); diff != "" {
		t.Errorf("members of a contract-limited client's cohort (-want +got):\n%s", diff)
	}
	if !c.Bounded || !slices.Equal(c.Bound, []string{"g1"}) {
		t.Errorf("cohort bound = %v %v, want g1", c.Bounded, c.Bound)
	}
	// Bounding by a Group outside the contract is refused (its overlap
	// with the contract's members would say who is in it).
	if _, err := f.svc.Create(ctx, bulk.CohortRequest{Owner: "lim", Body: []byte(cohortGroup("x", []string{"Patient?gender=female"}, "Group/g2"))}); bulk.ErrorCode(err) != bulk.EFORBIDDEN {
		t.Errorf("bounding Group outside the contract = %v, want %s", err, bulk.EFORBIDDEN)
	}
	// Its own cohort may bound another.
	c2 := f.create(t, "lim", cohortGroup("women with diabetes", []string{"Condition?code=44054006"}, "Group/"+c.ID))
	if diff := cmp.Diff([]string{"p0", "p2"}, f.members(t, c2.ID)); diff != "" {
		t.Errorf("members bounded by an own cohort (-want +got):\n%s", diff)
	}
	// An unlimited client's cohort is not bounded.
	ca := f.create(t, "all", cohortGroup("women", []string{"Patient?gender=female"}))
	if diff := cmp.Diff([]string{"p0", "p2", "p4", "p6", "p8"}, f.members(t, ca.ID)); diff != "" {
		t.Errorf("members of an unlimited client's cohort (-want +got):\n%s", diff)
	}

	cc := cohort.ContractClients{ClientStore: f.clients, Cohorts: f.cohorts, Groups: f.store}
	groups := func(id string) []string {
		cl, err := cc.GetClient(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return cl.Groups
	}
	if diff := cmp.Diff([]string{"g1", c.ID, c2.ID}, groups("lim"), sortStrings); diff != "" {
		t.Errorf("lim's Groups with its cohorts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"*"}, groups("all")); diff != "" {
		t.Errorf("all's Groups (-want +got):\n%s", diff)
	}
	// The operator moves lim to g2: its cohorts, computed within g1, are
	// no longer its Groups until computed again, and then within g2.
	cl, _ := f.clients.GetClient(ctx, "lim")
	cl.Groups = []string{"g2"}
	if err := f.clients.UpdateClient(ctx, cl); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"g2"}, groups("lim")); diff != "" {
		t.Errorf("lim's Groups after its contract changed (-want +got):\n%s", diff)
	}
	if _, err := f.svc.Refresh(ctx, "lim", c.ID); err != nil {
		t.Fatal(err)
	}
	f.wait(t)
	if diff := cmp.Diff([]string{"p4", "p6"}, f.members(t, c.ID)); diff != "" {
		t.Errorf("members after the refresh under the new contract (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"g2", c.ID}, groups("lim"), sortStrings); diff != "" {
		t.Errorf("lim's Groups after the refresh (-want +got):\n%s", diff)
	}
	// c2 is bounded by c, which is within the contract again, but was
	// computed under g1: its refresh is within g2, bounded by c's new
	// members (p4 p6), of whom p4 has diabetes.
	if _, err := f.svc.Refresh(ctx, "lim", c2.ID); err != nil {
		t.Fatal(err)
	}
	f.wait(t)
	if diff := cmp.Diff([]string{"p4"}, f.members(t, c2.ID)); diff != "" {
		t.Errorf("c2 members after its refresh within g2 (-want +got):\n%s", diff)
	}
	// g2 loses p6: c (p4 p6) would still export p6, so it is out of the
	// contract until computed again.
	f.clock.Add(time.Minute)
	f.put(t, f.clock.Now(), group("g2", "p4", "p5"))
	if diff := cmp.Diff([]string{"g2"}, groups("lim")); diff != "" {
		t.Errorf("lim's Groups after g2 changed (-want +got):\n%s", diff)
	}
	if _, err := f.svc.Refresh(ctx, "lim", c.ID); err != nil {
		t.Fatal(err)
	}
	f.wait(t)
	if diff := cmp.Diff([]string{"p4"}, f.members(t, c.ID)); diff != "" {
		t.Errorf("members after g2 changed and a refresh (-want +got):\n%s", diff)
	}
	if !slices.Contains(groups("lim"), c.ID) {
		t.Errorf("lim's Groups after the refresh lack its cohort %s", c.ID)
	}
}

var sortStrings = cmp.Transformer("sort", func(ss []string) []string { return slices.Sorted(slices.Values(ss)) })

// TestCohortRefreshKeepsJoinTimes: a periodic refresh recomputes the
// members; those who stay keep the time they joined (Group _since), new
// ones join at the refresh.
func TestCohortRefreshKeepsJoinTimes(t *testing.T) {
	f := newFixture(t)
	f.addClient(t, "c1", "*")
	seed(t, f)
	ctx := context.Background()
	body := strings.Replace(cohortGroup("diabetes", []string{"Condition?code=44054006"}), `"type":"person"`,
		`"type":"person","extension":[{"url":"`+bulk.RefreshIntervalURL+`","valueDuration":{"value":1,"unit":"d","system":"http://unitsofmeasure.org","code":"d"}}]`, 1)
	c := f.create(t, "c1", body)
	if c.RefreshEvery != 24*time.Hour {
		t.Fatalf("RefreshEvery = %v, want 24h", c.RefreshEvery)
	}
	first, err := f.store.GroupMembership(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing is due before a day has passed.
	f.clock.Add(23 * time.Hour)
	if n, err := f.svc.RefreshDue(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("RefreshDue after 23h = %d, %v; want 0", n, err)
	}
	// p7 gets diabetes, p0's is deleted; a day later the refresh runs.
	f.put(t, f.clock.Now(), condition("c7", "p7", "44054006", "2025-01-01"))
	if err := f.store.Delete(ctx, bulk.Ref{Type: "Condition", ID: "c0"}, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(2 * time.Hour)
	if n, err := f.svc.RefreshDue(ctx, time.Hour); err != nil || n != 1 {
		t.Fatalf("RefreshDue after 25h = %d, %v; want 1", n, err)
	}
	if r := f.wait(t); r.err != nil {
		t.Fatal(r.err)
	}
	second, err := f.store.GroupMembership(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	since := map[string]time.Time{}
	for _, m := range first {
		since[m.ID] = m.Since
	}
	var ids []string
	for _, m := range second {
		ids = append(ids, m.ID)
		if old, ok := since[m.ID]; ok && !m.Since.Equal(old) {
			t.Errorf("%s joined at %v, then at %v after the refresh: a remaining member keeps its time", m.ID, old, m.Since)
		}
		if m.ID == "p7" && !m.Since.After(first[0].Since) {
			t.Errorf("p7 joined at %v, not at the refresh", m.Since)
		}
	}
	if diff := cmp.Diff([]string{"p1", "p2", "p3", "p4", "p5", "p7"}, ids); diff != "" {
		t.Errorf("members after the refresh (-want +got):\n%s", diff)
	}
	got, _ := f.cohorts.GetCohort(ctx, "c1", c.ID)
	if got.Generation != 2 || got.Status != bulk.CohortReady || !got.RefreshedAt.After(c.RefreshedAt) {
		t.Errorf("after refresh: %+v", got)
	}
	// The next one is a day after this one.
	if n, _ := f.svc.RefreshDue(ctx, time.Hour); n != 0 {
		t.Errorf("RefreshDue right after a refresh started %d", n)
	}
}

// TestCohortDelete: only the owner deletes, and deleting removes the
// Group (tombstoned) and then the definition.
func TestCohortDelete(t *testing.T) {
	f := newFixture(t)
	f.addClient(t, "c1", "*")
	f.addClient(t, "c2", "*")
	seed(t, f)
	ctx := context.Background()
	c := f.create(t, "c1", cohortGroup("x", []string{"Patient?gender=female"}))
	for _, tc := range []struct{ owner, id string }{{"c2", c.ID}, {"c1", "g1"}, {"c1", "nope"}} {
		if err := f.svc.Delete(ctx, tc.owner, tc.id); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("Delete(%s, %s) = %v, want %s", tc.owner, tc.id, err, bulk.ENOTFOUND)
		}
	}
	if _, err := f.svc.Get(ctx, "c2", c.ID); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("Get by another client = %v, want %s", err, bulk.ENOTFOUND)
	}
	if err := f.svc.Delete(ctx, "c1", c.ID); err != nil {
		t.Fatal(err)
	}
	// Deleted at once for the client, whatever the workflow does yet.
	if _, err := f.svc.Get(ctx, "c1", c.ID); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("Get after Delete = %v, want %s", err, bulk.ENOTFOUND)
	}
	if r := f.wait(t); r.err != nil {
		t.Fatal(r.err)
	}
	if _, err := f.store.Get(ctx, "Group", c.ID); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("Group after the deletion ran = %v, want %s", err, bulk.ENOTFOUND)
	}
	if _, err := f.cohorts.GetCohort(ctx, "c1", c.ID); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("definition after the deletion ran = %v, want %s", err, bulk.ENOTFOUND)
	}
	var tombs []string
	_ = f.store.Tombstones(ctx, "Group", bulk.Range{Until: t0.Add(time.Hour)}, func(tb bulk.Tombstone) error { tombs = append(tombs, tb.ID); return nil })
	if !slices.Contains(tombs, c.ID) {
		t.Errorf("no tombstone of Group/%s: %v", c.ID, tombs)
	}
	if _, err := f.svc.Refresh(ctx, "c1", c.ID); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("Refresh after Delete = %v, want %s", err, bulk.ENOTFOUND)
	}
}

// TestCohortFailure: an evaluation the owner's contract no longer allows
// fails with a client-safe reason, keeps the Group it had, and a later
// refresh clears the failure.
func TestCohortFailure(t *testing.T) {
	f := newFixture(t)
	f.addClient(t, "c1", "*")
	seed(t, f)
	ctx := context.Background()
	c := f.create(t, "c1", cohortGroup("x", []string{"Condition?code=44054006"}))
	cl, _ := f.clients.GetClient(ctx, "c1")
	cl.Types = []string{"Patient"}
	if err := f.clients.UpdateClient(ctx, cl); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, "c1", c.ID); err != nil {
		t.Fatal(err)
	}
	if r := f.wait(t); r.err == nil {
		t.Error("the run of a refused evaluation succeeded")
	}
	got, _ := f.svc.Get(ctx, "c1", c.ID)
	if got.Status != bulk.CohortFailed || got.FailureInternal || !strings.Contains(got.Failure, "does not allow Condition") {
		t.Errorf("after a refused refresh: status %s, failure %q (internal %v)", got.Status, got.Failure, got.FailureInternal)
	}
	if diff := cmp.Diff([]string{"p0", "p1", "p2", "p3", "p4", "p5"}, f.members(t, c.ID)); diff != "" {
		t.Errorf("the Group changed after a failed refresh (-want +got):\n%s", diff)
	}
	// A refresh while one is pending is a conflict.
	cl.Types = nil
	_ = f.clients.UpdateClient(ctx, cl)
	if _, err := f.svc.Refresh(ctx, "c1", c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, "c1", c.ID); bulk.ErrorCode(err) != bulk.ECONFLICT {
		// It may have finished already; then it is ready.
		if g, _ := f.svc.Get(ctx, "c1", c.ID); g.Status == bulk.CohortPending {
			t.Errorf("second Refresh while pending = %v, want %s", err, bulk.ECONFLICT)
		}
	}
	f.wait(t)
	if got, _ := f.svc.Get(ctx, "c1", c.ID); got.Status != bulk.CohortReady || got.Failure != "" {
		t.Errorf("after a good refresh: %s %q", got.Status, got.Failure)
	}
}

// TestCohortRecover: runs a stopped process left pending start again.
func TestCohortRecover(t *testing.T) {
	f := newFixture(t)
	f.addClient(t, "c1", "*")
	seed(t, f)
	ctx := context.Background()
	// A definition stored as pending, as a crash after CreateCohort leaves it.
	c := &bulk.Cohort{ID: "abc", Owner: "c1", Group: json.RawMessage(`{"resourceType":"Group","type":"person","name":"x"}`), Name: "x",
		Filters: []string{"Patient?gender=male"}, Status: bulk.CohortPending, Generation: 1, CreatedAt: t0, RequestedAt: t0}
	if err := f.cohorts.CreateCohort(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if r := f.wait(t); r.err != nil {
		t.Fatal(r.err)
	}
	if diff := cmp.Diff([]string{"p1", "p3", "p5", "p7", "p9"}, f.members(t, "abc")); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
}

// TestCohortLimitPerClient: a client may hold MaxPerClient cohorts; one
// more is 429 (ETOOMANYREQUESTS) until it deletes one, and another
// client's count is its own.
func TestCohortLimitPerClient(t *testing.T) {
	f := newFixture(t)
	f.svc.MaxPerClient = 2
	f.addClient(t, "c1", "*")
	f.addClient(t, "c2", "*")
	seed(t, f)
	ctx := context.Background()
	body := cohortGroup("x", []string{"Patient?gender=female"})
	first := f.create(t, "c1", body)
	f.create(t, "c1", body)
	if _, err := f.svc.Create(ctx, bulk.CohortRequest{Owner: "c1", Body: []byte(body)}); bulk.ErrorCode(err) != bulk.ETOOMANYREQUESTS {
		t.Fatalf("third cohort of c1: %v, want %s", err, bulk.ETOOMANYREQUESTS)
	}
	f.create(t, "c2", body)
	if err := f.svc.Delete(ctx, "c1", first.ID); err != nil {
		t.Fatal(err)
	}
	if r := f.wait(t); r.err != nil {
		t.Fatal(r.err)
	}
	f.create(t, "c1", body)
}

// hookSource calls during the first Scan, mid-evaluation.
type hookSource struct {
	bulk.ResourceSource
	once   sync.Once
	during func()
}

func (h *hookSource) Scan(ctx context.Context, req bulk.ScanRequest, fn bulk.Visit) error {
	h.once.Do(h.during)
	return h.ResourceSource.Scan(ctx, req, fn)
}

type startNothing struct{}

func (startNothing) StartCohort(context.Context, bulk.CohortRun) error { return nil }

// TestCohortRunSuperseded: a run whose cohort got a newer request while it
// computed (a restart of a run thought lost, a deletion) writes no Group
// over what the newer run writes; and a run of a deleted cohort removes a
// Group left behind, so no Group outlives its definition.
func TestCohortRunSuperseded(t *testing.T) {
	f := newFixture(t)
	f.addClient(t, "c1", "*")
	seed(t, f)
	ctx := context.Background()
	svc := *f.svc
	svc.Workflow = startNothing{}
	c, err := svc.Create(ctx, bulk.CohortRequest{Owner: "c1", Body: []byte(cohortGroup("x", []string{"Patient?gender=female"}))})
	if err != nil {
		t.Fatal(err)
	}
	svc.Evaluator.Source = &hookSource{ResourceSource: f.store, during: func() {
		cur, err := f.cohorts.GetCohort(ctx, "c1", c.ID)
		if err != nil {
			t.Error(err)
			return
		}
		cur.Generation++ // RefreshDue restarting it
		if err := f.cohorts.UpdateCohort(ctx, cur); err != nil {
			t.Error(err)
		}
	}}
	if err := svc.Run(ctx, bulk.CohortRun{Owner: "c1", CohortID: c.ID, Generation: c.Generation}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Get(ctx, "Group", c.ID); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("superseded run wrote Group/%s (%v)", c.ID, err)
	}

	// A Group whose definition is gone (a late write, or a crash
	// between a deletion's steps) goes with the next run of that cohort.
	done := f.create(t, "c1", cohortGroup("y", []string{"Patient?gender=female"}))
	if err := f.cohorts.DeleteCohort(ctx, "c1", done.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Run(ctx, bulk.CohortRun{Owner: "c1", CohortID: done.ID, Generation: done.Generation + 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Get(ctx, "Group", done.ID); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("Group/%s outlived its definition (%v)", done.ID, err)
	}
}

// TestCohortLookback: a client whose contract limits exports to the last N
// days cannot select patients by older data (requirements 1.6).
func TestCohortLookback(t *testing.T) {
	f := newFixture(t)
	if err := f.clients.CreateClient(context.Background(), &bulk.Client{ID: "c1", Groups: []string{"*"},
		Scopes: []string{"system/*.rs", "system/Group.cud"}, MaxLookback: 30 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	seed(t, f) // an hour old
	f.put(t, t0.Add(-90*24*time.Hour), condition("old", "p8", "44054006", "2020-01-01"))
	c := f.create(t, "c1", cohortGroup("diabetes", []string{"Condition?code=http://snomed.info/sct|44054006"}))
	if got, want := f.members(t, c.ID), []string{"p0", "p1", "p2", "p3", "p4", "p5"}; !slices.Equal(got, want) {
		t.Errorf("members %v, want %v (p8's Condition is older than the look-back)", got, want)
	}
}
