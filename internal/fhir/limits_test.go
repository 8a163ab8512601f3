package fhir_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/search"
)

// withEngine is in with the kick-off's real _typeFilter and _elements
// hooks, as the API passes them.
func withEngine(in fhir.KickoffInput) fhir.KickoffInput {
	in.TypeFilter, in.Element = search.Canonical, search.CheckElement
	return in
}

func orValues(n int) string {
	vals := make([]string, n)
	for i := range vals {
		vals[i] = fmt.Sprintf("c%d", i)
	}
	return "Observation?code=" + strings.Join(vals, ",")
}

// TestKickoffLimits: the requests an attack run used to burn 20 s of CPU
// each (40,000 comma-OR values in one _typeFilter, 20,000 _elements names)
// are refused with a 400 that names the limit, under lenient handling too,
// and requests at the limits are accepted.
func TestKickoffLimits(t *testing.T) {
	elements := make([]string, 20_000)
	for i := range elements {
		elements[i] = fmt.Sprintf("e%d", i)
	}
	for _, tc := range []struct {
		name  string
		query url.Values
		want  string // in the message
	}{
		{"40,000 OR values", url.Values{"_typeFilter": {orValues(40_000)}}, "at most 65536"},
		{"20,000 _elements", url.Values{"_elements": {strings.Join(elements, ",")}}, "more than 500"},
		{"20,000 _elements repeated", url.Values{"_elements": elements}, "at most 1000 values"},
		{"101 _typeFilter queries", url.Values{"_typeFilter": func() []string {
			var qs []string
			for i := range 101 {
				qs = append(qs, fmt.Sprintf("Observation?code=c%d", i))
			}
			return qs
		}()}, "more than 100 queries"},
		{"301 _type entries", url.Values{"_type": {strings.Repeat("Patient,", 301)}}, "more than 300 types"},
	} {
		for _, lenient := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s lenient=%v", tc.name, lenient), func(t *testing.T) {
				in := withEngine(fhir.KickoffInput{Method: "GET", Level: bulk.LevelSystem, Query: tc.query, Lenient: lenient})
				_, err := fhir.ParseKickoff(in)
				if bulk.ErrorCode(err) != bulk.EINVALID || !strings.Contains(bulk.ErrorMessage(err), tc.want) {
					t.Errorf("ParseKickoff = %v, want EINVALID naming the limit (%q)", err, tc.want)
				}
			})
		}
	}

	// At the limits: accepted.
	in := withEngine(fhir.KickoffInput{Method: "GET", Level: bulk.LevelSystem, Query: url.Values{
		"_typeFilter": {orValues(1500)}, "_elements": {strings.Join(elements[:500], ",")},
	}})
	if _, err := fhir.ParseKickoff(in); err != nil {
		t.Errorf("a request at the limits: %v", err)
	}
	patients := make([]string, fhir.MaxPatients+1)
	for i := range patients {
		patients[i] = fmt.Sprintf(`{"name":"patient","valueReference":{"reference":"Patient/p%d"}}`, i)
	}
	body := `{"resourceType":"Parameters","parameter":[` + strings.Join(patients, ",") + `]}`
	_, err := fhir.ParseKickoff(fhir.KickoffInput{Method: "POST", Level: bulk.LevelPatient, Body: []byte(body)})
	if bulk.ErrorCode(err) != bulk.EINVALID || !strings.Contains(bulk.ErrorMessage(err), "at most") {
		t.Errorf("%d patients = %v, want EINVALID naming the limit", len(patients), err)
	}
}

// BenchmarkParseKickoffWorst parses the worst request the limits accept:
// a POST body of 64 KiB of _typeFilter comma-OR values (about 9,000), 500
// _elements and every _type, padded to 1 MiB (half the default
// MaxBodyBytes) with _type values of 299 repeats each; a 10,000-patient
// list comes alone in BenchmarkParseKickoffPatients. Goal (issue 14):
// under 50 ms each.
func BenchmarkParseKickoffWorst(b *testing.B) {
	var params []map[string]any
	value := orValues(1)
	for len(value) < fhir.MaxTypeFilterBytes/4-10 {
		value += fmt.Sprintf(",c%d", len(value))
	}
	for range 4 {
		params = append(params, map[string]any{"name": "_typeFilter", "valueString": value})
	}
	for i := range fhir.MaxElements {
		params = append(params, map[string]any{"name": "_elements", "valueString": fmt.Sprintf("Observation.e%d", i)})
	}
	params = append(params, map[string]any{"name": "_type", "valueString": strings.Join(fhir.ResourceTypes, ",")})
	pad := strings.TrimSuffix(strings.Repeat("Patient,", fhir.MaxTypes-1), ",")
	body, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": params})
	for len(body)+len(pad)+40 < 1<<20 {
		params = append(params, map[string]any{"name": "_type", "valueString": pad})
		body, _ = json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": params})
	}
	b.Logf("body %d bytes, %d parameters", len(body), len(params))
	in := withEngine(fhir.KickoffInput{Method: "POST", Level: bulk.LevelSystem, Body: body})
	b.ResetTimer()
	for range b.N {
		if _, err := fhir.ParseKickoff(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseKickoffPatients parses a POST naming MaxPatients patients.
func BenchmarkParseKickoffPatients(b *testing.B) {
	patients := make([]string, fhir.MaxPatients)
	for i := range patients {
		patients[i] = fmt.Sprintf(`{"name":"patient","valueReference":{"reference":"Patient/p%d"}}`, i)
	}
	body := []byte(`{"resourceType":"Parameters","parameter":[` + strings.Join(patients, ",") + `]}`)
	in := fhir.KickoffInput{Method: "POST", Level: bulk.LevelPatient, Body: body}
	for range b.N {
		if _, err := fhir.ParseKickoff(in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFutureSince: a _since after the server's now is 400, or ignored and
// named under lenient handling (issue 15 item 2).
func TestFutureSince(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	q := url.Values{"_since": {"2026-06-01T12:00:01Z"}}
	_, err := fhir.ParseKickoff(fhir.KickoffInput{Method: "GET", Level: bulk.LevelSystem, Query: q, Now: now})
	if bulk.ErrorCode(err) != bulk.EINVALID || !strings.Contains(bulk.ErrorMessage(err), "after the server's current time") {
		t.Errorf("future _since = %v, want EINVALID saying so", err)
	}
	req, err := fhir.ParseKickoff(fhir.KickoffInput{Method: "GET", Level: bulk.LevelSystem, Query: q, Now: now, Lenient: true})
	if err != nil || !req.Since.IsZero() || len(req.Ignored) != 1 || !strings.Contains(req.Ignored[0], "_since") {
		t.Errorf("lenient future _since = %+v, %v; want it ignored and named", req, err)
	}
	if req, err := fhir.ParseKickoff(fhir.KickoffInput{Method: "GET", Level: bulk.LevelSystem, Query: url.Values{"_since": {"2026-06-01T12:00:00Z"}}, Now: now}); err != nil || req.Since.IsZero() {
		t.Errorf("_since equal to now = %+v, %v; want accepted", req, err)
	}
}
