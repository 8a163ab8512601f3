package cohort_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/cohort"
	"github.com/tranchehq/tranche/internal/fhir/defs"
	"github.com/tranchehq/tranche/internal/search"
)

// parseFilter parses a member-filter query with the search engine of the
// fixture's store (R4), as a cohort definition's member-filter is parsed.
func parseFilter(query string) (*search.Filter, error) { return search.For(defs.R4).Parse(query) }

// recordingSource records which types an evaluation reads, and how.
type recordingSource struct {
	bulk.ResourceSource
	mu           sync.Mutex
	scans        map[string]int // type → shard scans
	compartments map[string]int // type → compartment reads
	gets         map[string]int // type → Gets
}

func newRecording(src bulk.ResourceSource) *recordingSource {
	return &recordingSource{ResourceSource: src, scans: map[string]int{}, compartments: map[string]int{}, gets: map[string]int{}}
}

func (r *recordingSource) Scan(ctx context.Context, req bulk.ScanRequest, fn bulk.Visit) error {
	r.mu.Lock()
	r.scans[req.Type]++
	r.mu.Unlock()
	return r.ResourceSource.Scan(ctx, req, fn)
}

func (r *recordingSource) Compartment(ctx context.Context, p string, types []string, fn bulk.Visit) error {
	r.mu.Lock()
	if len(types) == 0 {
		r.compartments["(all)"]++
	}
	for _, t := range types {
		r.compartments[t]++
	}
	r.mu.Unlock()
	return r.ResourceSource.Compartment(ctx, p, types, fn)
}

func (r *recordingSource) Get(ctx context.Context, typ, id string) (*bulk.Resource, error) {
	r.mu.Lock()
	r.gets[typ]++
	r.mu.Unlock()
	return r.ResourceSource.Get(ctx, typ, id)
}

func (r *recordingSource) List(ctx context.Context, typ, after string, fn bulk.Visit) error {
	panic("an evaluation never lists a type")
}

// TestEvaluatorIsIndexDriven: a Condition filter scans Condition only (all
// of its shards), never another type; a second filter on a larger type
// reads only the candidates' compartments (or the candidate Patients
// themselves); a filter that leaves nobody ends the evaluation.
func TestEvaluatorIsIndexDriven(t *testing.T) {
	f := newFixture(t)
	var bodies []string
	for i := range 200 {
		g := "male"
		if i%2 == 0 {
			g = "female"
		}
		id := fmt.Sprintf("p%03d", i)
		bodies = append(bodies, patient(id, g, "1960-01-01"),
			fmt.Sprintf(`{"resourceType":"Observation","id":"o%03d","status":"final","subject":{"reference":"Patient/%s"},"code":{"coding":[{"system":"http://loinc.org","code":"8302-2"}]}}`, i, id),
			fmt.Sprintf(`{"resourceType":"Encounter","id":"e%03d","status":"finished","subject":{"reference":"Patient/%s"}}`, i, id))
		if i%20 == 0 {
			bodies = append(bodies, condition(fmt.Sprintf("c%03d", i), id, "44054006", "2024-01-01"))
		}
	}
	f.put(t, t0, bodies...)
	parse := func(qs ...string) []*search.Filter {
		var fs []*search.Filter
		for _, q := range qs {
			fl, err := parseFilter(q)
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, fl)
		}
		return fs
	}
	for _, tc := range []struct {
		name         string
		filters      []string
		want         []string
		scans        map[string]int
		compartments map[string]int
		gets         map[string]int
	}{
		{name: "condition", filters: []string{"Condition?code=" + snomed + "|44054006"},
			want:  []string{"p000", "p020", "p040", "p060", "p080", "p100", "p120", "p140", "p160", "p180"},
			scans: map[string]int{"Condition": 4}},
		{name: "condition then patients", filters: []string{"Patient?gender=female", "Condition?code=44054006"},
			want:  []string{"p000", "p020", "p040", "p060", "p080", "p100", "p120", "p140", "p160", "p180"},
			scans: map[string]int{"Condition": 4}, gets: map[string]int{"Patient": 10}},
		{name: "condition then observations", filters: []string{"Observation?code=8302-2", "Condition?code=44054006"},
			want:  []string{"p000", "p020", "p040", "p060", "p080", "p100", "p120", "p140", "p160", "p180"},
			scans: map[string]int{"Condition": 4}, compartments: map[string]int{"Observation": 10}},
		{name: "nobody left", filters: []string{"Condition?code=nope", "Observation?code=8302-2", "Encounter?status=finished"},
			scans: map[string]int{"Condition": 4}},
		{name: "patients", filters: []string{"Patient?gender=male&birthdate=lt1961"},
			want:  nil,
			scans: map[string]int{"Patient": 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newRecording(f.store)
			ev := &cohort.Evaluator{Source: src}
			got, st, err := ev.Members(context.Background(), cohort.Criteria{Filters: parse(tc.filters...), AsOf: t0.Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if tc.name == "patients" {
				for i := 1; i < 200; i += 2 {
					want = append(want, fmt.Sprintf("p%03d", i))
				}
			}
			if diff := cmp.Diff(want, got, cmpEmpty); diff != "" {
				t.Errorf("members (-want +got):\n%s", diff)
			}
			for _, c := range []struct {
				what      string
				got, want map[string]int
			}{{"scans", src.scans, tc.scans}, {"compartment reads", src.compartments, tc.compartments}, {"gets", src.gets, tc.gets}} {
				if diff := cmp.Diff(c.want, c.got, cmpEmpty); diff != "" {
					t.Errorf("%s by type (-want +got):\n%s", c.what, diff)
				}
			}
			if slices.Contains(st.Scanned, "Observation") || slices.Contains(st.Scanned, "Encounter") {
				t.Errorf("stats: scanned %v", st.Scanned)
			}
		})
	}
}

var cmpEmpty = cmpopts.EquateEmpty()

// TestEvaluatorSnapshot: resources stored after the snapshot time are not
// read.
func TestEvaluatorSnapshot(t *testing.T) {
	f := newFixture(t)
	f.put(t, t0, patient("a", "female", "1970-01-01"))
	f.put(t, t0.Add(time.Minute), patient("b", "female", "1970-01-01"))
	fl, _ := parseFilter("Patient?gender=female")
	got, _, err := (&cohort.Evaluator{Source: f.store}).Members(context.Background(), cohort.Criteria{Filters: []*search.Filter{fl}, AsOf: t0})
	if err != nil || !slices.Equal(got, []string{"a"}) {
		t.Errorf("Members as of t0 = %v, %v; want [a]", got, err)
	}
}

// TestEvaluatorEscapedCodes: the substring prefilter never hides a match:
// a code written with JSON escapes, a boolean and a number token, and
// OR-ed codes all match as search.Filter.Match says.
func TestEvaluatorEscapedCodes(t *testing.T) {
	f := newFixture(t)
	f.put(t, t0,
		patient("a", "female", "1970-01-01"), patient("b", "male", "1970-01-01"), patient("c", "male", "1970-01-01"),
		`{"resourceType":"Condition","id":"x1","subject":{"reference":"Patient/a"},"code":{"coding":[{"system":"http://snomed.info/sct","code":"\u0034\u0034054006"}]}}`,
		`{"resourceType":"Condition","id":"x2","subject":{"reference":"Patient/b"},"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]}}`,
		`{"resourceType":"Patient","id":"d","gender":"fem\u0061le","active":true}`,
	)
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"Condition?code=" + snomed + "|44054006", []string{"a"}},
		{"Condition?code=44054006,38341003", []string{"a", "b"}},
		{"Condition?code=" + snomed + "|", []string{"a", "b"}},
		{"Patient?gender=female", []string{"a", "d"}},
		{"Patient?active=true", []string{"d"}},
		{"Patient?gender:not=female", []string{"b", "c"}},
	} {
		fl, err := parseFilter(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := (&cohort.Evaluator{Source: f.store}).Members(context.Background(), cohort.Criteria{Filters: []*search.Filter{fl}, AsOf: t0})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.query, diff)
		}
	}
}
