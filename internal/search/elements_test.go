package search_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/search"
)

const subsetted = `{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}`

func TestParseElements_Errors(t *testing.T) {
	for _, tc := range []struct {
		values  []string
		mention string
	}{
		{[]string{"Patient.name.given"}, "nested"},
		{[]string{"name.given"}, "nested"},
		{[]string{"Foo.id"}, `"Foo"`},
		{[]string{".id"}, `""`},
		{[]string{"Patient."}, "Patient."},
		{[]string{"Name"}, "Name"},
		{[]string{"Patient"}, "Patient"},
		{[]string{"id,na me"}, "na me"},
		{[]string{"id", "Patient.*"}, "Patient.*"},
		{[]string{"value[y]"}, "value[y]"},
	} {
		_, err := search.ParseElements(tc.values)
		if bulk.ErrorCode(err) != bulk.EINVALID || !strings.Contains(bulk.ErrorMessage(err), tc.mention) {
			t.Errorf("ParseElements(%q) = %v, want EINVALID mentioning %q", tc.values, err, tc.mention)
		}
	}
}

func TestElements_Subset(t *testing.T) {
	const (
		patient = `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2024-01-01T00:00:00Z"},"identifier":[{"value":"1"}],"name":[{"family":"Walker"}],"gender":"male","_gender":{"extension":[]},"birthDate":"1980"}`
		obs     = `{"resourceType":"Observation","id":"o1","status":"final","_status":{"id":"s"},"category":[{"text":"x"}],"code":{"text":"c"},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024","valueQuantity":{"value":1}}`
		medReq  = `{"resourceType":"MedicationRequest","id":"m1","meta":{"tag":[{"code":"a"}]},"status":"active","statusReason":{"text":"r"},"intent":"order","medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/p1"},"authoredOn":"2024"}`
	)
	for _, tc := range []struct {
		name     string
		elements []string
		typ      string
		body     string
		want     string // empty: unchanged and not subsetted
	}{
		{"R21 Patient.id", []string{"Patient.id"}, "Patient", patient,
			`{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2024-01-01T00:00:00Z","tag":[` + subsetted + `]}}`},
		{"other type unchanged", []string{"Patient.id"}, "Observation", obs, ""},
		{"order kept, primitive extension follows", []string{"gender,Patient.identifier", "birthDate"}, "Patient", patient,
			`{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2024-01-01T00:00:00Z","tag":[` + subsetted + `]},"identifier":[{"value":"1"}],"gender":"male","_gender":{"extension":[]},"birthDate":"1980"}`},
		{"R22 bare element, mandatory kept, meta added", []string{"subject"}, "Observation", obs,
			`{"resourceType":"Observation","id":"o1","meta":{"tag":[` + subsetted + `]},"status":"final","_status":{"id":"s"},"code":{"text":"c"},"subject":{"reference":"Patient/p1"}}`},
		{"choice by base name", []string{"Observation.effective", "Observation.value[x]"}, "Observation", obs,
			`{"resourceType":"Observation","id":"o1","meta":{"tag":[` + subsetted + `]},"status":"final","_status":{"id":"s"},"code":{"text":"c"},"effectiveDateTime":"2024","valueQuantity":{"value":1}}`},
		{"choice variant by name", []string{"valueQuantity"}, "Observation", obs,
			`{"resourceType":"Observation","id":"o1","meta":{"tag":[` + subsetted + `]},"status":"final","_status":{"id":"s"},"code":{"text":"c"},"valueQuantity":{"value":1}}`},
		{"mandatory choice, status is not statusReason, tag appended", []string{"MedicationRequest.id"}, "MedicationRequest", medReq,
			`{"resourceType":"MedicationRequest","id":"m1","meta":{"tag":[{"code":"a"},` + subsetted + `]},"status":"active","intent":"order","medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/p1"}}`},
		{"already tagged", []string{"id"}, "Patient", `{"resourceType":"Patient","meta":{"tag":[` + subsetted + `]},"id":"p","gender":"male"}`,
			`{"resourceType":"Patient","meta":{"tag":[` + subsetted + `]},"id":"p"}`},
		{"meta not an object", []string{"id"}, "Patient", `{"resourceType":"Patient","id":"p","meta":5}`,
			`{"resourceType":"Patient","id":"p","meta":{"tag":[` + subsetted + `]}}`},
		{"tag not an array", []string{"id"}, "Patient", `{"resourceType":"Patient","id":"p","meta":{"tag":{"code":"x"}}}`,
			`{"resourceType":"Patient","id":"p","meta":{"tag":[` + subsetted + `]}}`},
		{"no id", []string{"gender"}, "Patient", `{"gender":"male","resourceType":"Patient","name":[]}`,
			`{"gender":"male","resourceType":"Patient","meta":{"tag":[` + subsetted + `]}}`},
		{"nothing kept", []string{"gender"}, "Patient", `{"name":[]}`,
			`{"meta":{"tag":[` + subsetted + `]}}`},
		{"whitespace compacted", []string{"Patient.gender"}, "Patient", "{ \"resourceType\" : \"Patient\",\n \"id\": \"p\", \"gender\": \"male\", \"name\": [ { \"text\": \"A B\" } ] }",
			`{"resourceType":"Patient","id":"p","meta":{"tag":[` + subsetted + `]},"gender":"male"}`},
		{"invalid JSON unchanged", []string{"id"}, "Patient", `{"resourceType":"Patient",`, ""},
		{"not an object unchanged", []string{"id"}, "Patient", `[1]`, ""},
		{"no elements", nil, "Patient", patient, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := search.ParseElements(tc.elements)
			if err != nil {
				t.Fatalf("ParseElements(%q) error: %v", tc.elements, err)
			}
			got, ok := e.Subset(tc.typ, []byte(tc.body))
			if tc.want == "" {
				if ok || string(got) != tc.body {
					t.Errorf("Subset(%s) = %s, %v; want it unchanged", tc.body, got, ok)
				}
				return
			}
			if !ok || string(got) != tc.want {
				t.Errorf("Subset(%s)\n got %s, %v\nwant %s", tc.body, got, ok, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("Subset output is not valid JSON: %s", got)
			}
		})
	}
}

func TestElements_SubsetDoesNotAlias(t *testing.T) {
	e, err := search.ParseElements([]string{"Patient.gender"})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"resourceType":"Patient","id":"p","gender":"male"}`)
	got, _ := e.Subset("Patient", body)
	want := string(got)
	for i := range body {
		body[i] = 'x'
	}
	if string(got) != want {
		t.Error("Subset output aliases its input")
	}
}
