package search_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/search"
)

var fuzzQueries = []string{
	"Observation?status=final",
	"Observation?code=http://loinc.org|2339-0,|x,sys|&category:not=laboratory",
	"Observation?date=ge2024-03-05T10:20:30.123%2B01:00&date=lt2025&_lastUpdated=sa2024",
	"Observation?patient=Patient/p1&subject:Group=g1&performer=https://x.org/fhir/Practitioner/1/_history/2",
	"Observation?value-quantity=gt1.5e2|http://unitsofmeasure.org|mg&combo-value-quantity=5||kg",
	"Patient?name:contains=Ram%C3%B3n&family:exact=A\\,B&address-city=x&birthdate=1980",
	"Patient?_profile:below=http://x&_tag:missing=true&_id=a,b",
	"Condition?onset-date=2020&onset-info=child&code:text=dia",
	"Observation?_sort=date",
	"Observation?subject.name=x",
	"Patient/1/Observation?code=x",
	"?x=1",
	"Observation%3Fstatus%3Dfinal,Condition%3Fcode%3Dx",
}

// FuzzParse: Parse never panics, fails only with EINVALID or EUNSUPPORTED
// and a message, and String round-trips.
func FuzzParse(f *testing.F) {
	for _, q := range fuzzQueries {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		_, _ = search.ParseAll([]string{q})
		flt, err := search.Parse(q)
		if err != nil {
			if c := bulk.ErrorCode(err); c != bulk.EINVALID && c != bulk.EUNSUPPORTED {
				t.Fatalf("Parse(%q) error code %q: %v", q, c, err)
			}
			if bulk.ErrorMessage(err) == "" {
				t.Fatalf("Parse(%q) error without a message", q)
			}
			return
		}
		g, err := search.Parse(flt.String())
		if err != nil || g.String() != flt.String() {
			t.Fatalf("Parse(%q).String() = %q does not round-trip: %v, %v", q, flt.String(), g, err)
		}
		for _, body := range fixtures {
			flt.Match([]byte(body))
		}
	})
}

// FuzzMatch: Match never panics on any query and any body.
func FuzzMatch(f *testing.F) {
	for _, q := range fuzzQueries {
		for _, body := range fixtures {
			f.Add(q, []byte(body))
		}
	}
	f.Add("Observation?date=2024", []byte(`{"resourceType":"Observation","effectivePeriod":{"start":5,"end":[1]}}`))
	f.Add("Observation?date=2024", []byte(`{"resourceType":"Observation","effectiveTiming":{"event":"x","repeat":{"boundsPeriod":1}}}`))
	f.Add("Observation?code=x", []byte(`{"resourceType":"Observation","code":{"coding":{"code":"x"}}}`))
	f.Add("Observation?patient=p", []byte(`{"resourceType":"Observation","subject":[[{"reference":"Patient/p"}]]}`))
	f.Add("Patient?name=a", []byte(`{"resourceType":"Patient","name":[{"given":[1,null,"a"]}]`))
	f.Fuzz(func(t *testing.T, q string, body []byte) {
		flt, err := search.Parse(q)
		if err != nil {
			return
		}
		flt.Match(body)
		search.Set{flt.Type(): {flt}}.Match(flt.Type(), body)
	})
}

// FuzzSubset: Subset never panics; a subsetted output is valid JSON, and
// an untouched one is the input.
func FuzzSubset(f *testing.F) {
	f.Add("Patient.id", "Patient", []byte(fixtures["p1"]))
	f.Add("status,effective", "Observation", []byte(fixtures["obs1"]))
	f.Add("id", "Observation", []byte(`{"resourceType":"Observation","meta":[1]}`))
	f.Add("value[x]", "Observation", []byte(" {\"valueQuantity\" : { } } "))
	f.Fuzz(func(t *testing.T, elements, typ string, body []byte) {
		e, err := search.ParseElements([]string{elements})
		if err != nil {
			if bulk.ErrorCode(err) != bulk.EINVALID {
				t.Fatalf("ParseElements(%q) error %v", elements, err)
			}
			return
		}
		in := bytes.Clone(body)
		out, ok := e.Subset(typ, body)
		if !bytes.Equal(in, body) {
			t.Fatal("Subset modified its input")
		}
		if ok && !json.Valid(out) {
			t.Fatalf("Subset(%q, %s) = %s, not valid JSON", typ, body, out)
		}
		if !ok && !bytes.Equal(out, body) {
			t.Fatalf("Subset(%q, %s) = %s, false; want the input", typ, body, out)
		}
	})
}
