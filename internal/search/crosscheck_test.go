package search_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/generate"
	"github.com/tranchehq/tranche/internal/search"
)

// generated holds a small generated data set in memory, by type, one
// compact JSON resource per entry.
func generated(t testing.TB) map[string][][]byte {
	t.Helper()
	bufs := make(map[string]*bytes.Buffer)
	opts := generate.Options{Patients: 120, Seed: 7, Base: time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)}
	_, err := generate.Stream(context.Background(), opts, func(typ string) (io.Writer, error) {
		if bufs[typ] == nil {
			bufs[typ] = new(bytes.Buffer)
		}
		return bufs[typ], nil
	}, nil)
	if err != nil {
		t.Fatalf("generate.Stream: %v", err)
	}
	out := make(map[string][][]byte)
	for typ, b := range bufs {
		for _, line := range bytes.Split(b.Bytes(), []byte("\n")) {
			if len(line) > 0 {
				out[typ] = append(out[typ], line)
			}
		}
	}
	return out
}

// Helpers for the hand-written predicates over decoded JSON.

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

func obj(m map[string]any, key string) map[string]any {
	o, _ := m[key].(map[string]any)
	return o
}

func list(m map[string]any, key string) []any {
	l, _ := m[key].([]any)
	return l
}

// hasCoding reports whether the CodeableConcept (or list of them) at key has
// a coding with the system (any if empty) and code.
func hasCoding(m map[string]any, key, system, code string) bool {
	var ccs []any
	switch v := m[key].(type) {
	case []any:
		ccs = v
	case map[string]any:
		ccs = []any{v}
	}
	for _, cc := range ccs {
		ccm, _ := cc.(map[string]any)
		for _, c := range list(ccm, "coding") {
			cm, _ := c.(map[string]any)
			if str(cm, "code") == code && (system == "" || str(cm, "system") == system) {
				return true
			}
		}
	}
	return false
}

func instant(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("bad instant %q in generated data: %v", s, err)
	}
	return v
}

func day(s string) time.Time {
	v, _ := time.Parse(time.DateOnly, s)
	return v
}

// TestCrossCheck compares the engine with hand-written predicates over
// decoded JSON on generated data: each query must select exactly the
// resources its predicate selects.
func TestCrossCheck(t *testing.T) {
	data := generated(t)
	jun2025 := day("2025-06-01")

	for _, tc := range []struct {
		query string
		pred  func(t *testing.T, r map[string]any) bool
		// all: the query is allowed to select every resource (the generator
		// writes one status only).
		all bool
	}{
		{"Observation?status=final", func(_ *testing.T, r map[string]any) bool {
			return str(r, "status") == "final"
		}, true},
		{"Observation?category=laboratory", func(_ *testing.T, r map[string]any) bool {
			return hasCoding(r, "category", "", "laboratory")
		}, false},
		{"Observation?date=ge2025-06", func(t *testing.T, r map[string]any) bool {
			// ge2025-06: the instant lies in June 2025 or later.
			return !instant(t, str(r, "effectiveDateTime")).Before(jun2025)
		}, false},
		{"Observation?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs&date=lt2024-07", func(t *testing.T, r map[string]any) bool {
			return hasCoding(r, "category", "http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs") &&
				instant(t, str(r, "effectiveDateTime")).Before(day("2024-07-01"))
		}, false},
		{"Observation?code=http://loinc.org|29463-7,http://loinc.org|8302-2", func(_ *testing.T, r map[string]any) bool {
			return hasCoding(r, "code", "http://loinc.org", "29463-7") || hasCoding(r, "code", "http://loinc.org", "8302-2")
		}, false},
		{"Observation?value-quantity=gt100", func(_ *testing.T, r map[string]any) bool {
			v, ok := obj(r, "valueQuantity")["value"].(float64)
			return ok && v > 100
		}, false},
		{"Observation?category:not=vital-signs&value-quantity:missing=false", func(_ *testing.T, r map[string]any) bool {
			return !hasCoding(r, "category", "", "vital-signs") && r["valueQuantity"] != nil
		}, false},
		{"Condition?clinical-status=active", func(_ *testing.T, r map[string]any) bool {
			return hasCoding(r, "clinicalStatus", "", "active")
		}, false},
		{"Condition?onset-date=ge2025-01-01&onset-date=lt2025-04", func(t *testing.T, r map[string]any) bool {
			on := instant(t, str(r, "onsetDateTime"))
			return !on.Before(day("2025-01-01")) && on.Before(day("2025-04-01"))
		}, false},
		{"MedicationRequest?status=active,stopped&authoredon=le2025-03-15", func(t *testing.T, r map[string]any) bool {
			s := str(r, "status")
			return (s == "active" || s == "stopped") && instant(t, str(r, "authoredOn")).Before(day("2025-03-16"))
		}, false},
		{"Encounter?date=2025-02", func(t *testing.T, r map[string]any) bool {
			p := obj(r, "period")
			start, end := instant(t, str(p, "start")), instant(t, str(p, "end"))
			return !start.Before(day("2025-02-01")) && end.Before(day("2025-03-01"))
		}, false},
		{"Procedure?date=ge2025-01", func(t *testing.T, r map[string]any) bool {
			p := obj(r, "performedPeriod")
			start, end := instant(t, str(p, "start")), instant(t, str(p, "end"))
			// Some of the period lies after January, or all of it in it.
			return !end.Before(day("2025-02-01")) || (!start.Before(day("2025-01-01")))
		}, false},
		{"Immunization?date=2024", func(t *testing.T, r map[string]any) bool {
			return instant(t, str(r, "occurrenceDateTime")).Year() == 2024
		}, false},
		{"Claim?created=ge2025-01-01", func(t *testing.T, r map[string]any) bool {
			return !instant(t, str(r, "created")).Before(day("2025-01-01"))
		}, false},
		{"Observation?_lastUpdated=ge2025-06", func(t *testing.T, r map[string]any) bool {
			return !instant(t, str(obj(r, "meta"), "lastUpdated")).Before(jun2025)
		}, false},
		{"Patient?gender=female&birthdate=lt2000", func(_ *testing.T, r map[string]any) bool {
			return str(r, "gender") == "female" && day(str(r, "birthDate")).Before(day("2000-01-01"))
		}, false},
		{"Patient?family=wa,sm", func(_ *testing.T, r map[string]any) bool {
			for _, n := range list(r, "name") {
				f := strings.ToLower(str(n.(map[string]any), "family"))
				if strings.HasPrefix(f, "wa") || strings.HasPrefix(f, "sm") {
					return true
				}
			}
			return false
		}, false},
		{"DiagnosticReport?category=LAB&issued=ge2025", func(t *testing.T, r map[string]any) bool {
			return hasCoding(r, "category", "", "LAB") && !instant(t, str(r, "issued")).Before(day("2025-01-01"))
		}, false},
	} {
		t.Run(tc.query, func(t *testing.T) {
			f, err := search.Parse(tc.query)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tc.query, err)
			}
			resources := data[f.Type()]
			if len(resources) == 0 {
				t.Fatalf("no generated %s", f.Type())
			}
			n := 0
			for _, body := range resources {
				var r map[string]any
				if err := json.Unmarshal(body, &r); err != nil {
					t.Fatalf("generated %s is not JSON: %v", f.Type(), err)
				}
				want := tc.pred(t, r)
				if got := f.Match(body); got != want {
					t.Errorf("Match(%s) = %v, want %v", body, got, want)
				}
				if want {
					n++
				}
			}
			t.Logf("%d of %d match", n, len(resources))
			if n == 0 || (n == len(resources) && !tc.all) {
				t.Errorf("%d of %d match: the check is not discriminating", n, len(resources))
			}
		})
	}

	// A first Patient reference, and OR across two filters of one type.
	t.Run("Set", func(t *testing.T) {
		var first map[string]any
		if err := json.Unmarshal(data["Observation"][0], &first); err != nil {
			t.Fatal(err)
		}
		pat := str(obj(first, "subject"), "reference")
		s, err := search.ParseAll([]string{"Observation?patient=" + pat, "Observation%3Fcategory%3Dlaboratory%26date%3Dge2025-06"})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, body := range data["Observation"] {
			var r map[string]any
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			want := str(obj(r, "subject"), "reference") == pat ||
				(hasCoding(r, "category", "", "laboratory") && !instant(t, str(r, "effectiveDateTime")).Before(jun2025))
			if got := s.Match("Observation", body); got != want {
				t.Errorf("Set.Match(%s) = %v, want %v", body, got, want)
			}
			if want {
				n++
			}
		}
		if n == 0 || n == len(data["Observation"]) {
			t.Errorf("%d of %d match: the check is not discriminating", n, len(data["Observation"]))
		}
		for _, body := range data["Condition"] {
			if !s.Match("Condition", body) {
				t.Fatal("Set.Match filtered an unfiltered type")
			}
		}
	})
}
