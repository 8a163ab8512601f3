package fhir_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/fhir"
)

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		in      string
		typ, id string
		ok      bool
	}{
		{"Patient/123", "Patient", "123", true},
		{"Patient/a-b.c", "Patient", "a-b.c", true},
		{"Observation/e6dde18e-af01-4f2f-b74a-1ec7d0368f93", "Observation", "e6dde18e-af01-4f2f-b74a-1ec7d0368f93", true},
		{"Patient/123/_history/4", "Patient", "123", true},
		{"https://host/fhir/Patient/123", "Patient", "123", true},
		{"http://host:8080/Patient/123", "Patient", "123", true},
		{"https://host/fhir/r4/Patient/123/_history/7", "Patient", "123", true},
		{"https://host/fhir/Patient/123/_history/", "", "", false},
		{"https://host/fhir/Patient", "", "", false},
		{"https://host", "", "", false},
		{"https:///Patient/1", "", "", false},
		{"ftp://host/Patient/1", "", "", false},
		{"#p1", "", "", false},
		{"urn:uuid:3b1a9cb0-e3d3-4bce-8b20-864c3dc7e8c0", "", "", false},
		{"urn:oid:1.2.3", "", "", false},
		{"Patient?identifier=http://x|1", "", "", false},
		{"Patient/", "", "", false},
		{"Patient", "", "", false},
		{"/Patient/1", "", "", false},
		{"fhir/Patient/1", "", "", false},
		{"Patient/1/2", "", "", false},
		{"Patient/_history/1", "", "", false},
		{"Foo/1", "", "", false},
		{"patient/1", "", "", false},
		{"Patient/has space", "", "", false},
		{"Patient/" + strings.Repeat("x", 64), "Patient", strings.Repeat("x", 64), true},
		{"Patient/" + strings.Repeat("x", 65), "", "", false},
		{"", "", "", false},
	} {
		typ, id, ok := fhir.ParseReference(tc.in)
		if typ != tc.typ || id != tc.id || ok != tc.ok {
			t.Errorf("ParseReference(%q) = %q, %q, %v, want %q, %q, %v", tc.in, typ, id, ok, tc.typ, tc.id, tc.ok)
		}
	}
}

func TestIsID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"a", true},
		{"A-1.b", true},
		{strings.Repeat("9", 64), true},
		{strings.Repeat("9", 65), false},
		{"", false},
		{"a_b", false},
		{"a/b", false},
		{"é", false},
	} {
		if got := fhir.IsID(tc.in); got != tc.want {
			t.Errorf("IsID(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestEachReference(t *testing.T) {
	body := `{"resourceType":"Encounter","subject":{"reference":"Patient/p1"},` +
		`"participant":[{"individual":{"reference" : "Practitioner/d1"}},{"individual":{"display":"reference"}}],` +
		`"text":{"div":"<div>\"reference\":\"Organization/fake\"</div>"},` +
		`"extension":[{"url":"x","valueReference":{"reference":"Location/l1"}}],"reference":{"nested":1},` +
		`"contained":[{"resourceType":"Basic","author":{"reference":"Organization/o\\u002f1"}}]}`
	var got []string
	fhir.EachReference([]byte(body), func(ref string) { got = append(got, ref) })
	want := []string{"Patient/p1", "Practitioner/d1", "Location/l1"}
	if !slices.Equal(got, want) {
		t.Errorf("EachReference = %q, want %q", got, want)
	}
}
