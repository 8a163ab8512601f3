package search_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/search"
)

// Small hand-written resources, by id.
var fixtures = map[string]string{
	"obs1": `{"resourceType":"Observation","id":"obs1",` +
		`"meta":{"lastUpdated":"2024-03-05T10:20:30.123Z","tag":[{"system":"http://example.org/tags","code":"synthetic"}],` +
		`"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}],` +
		`"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"],"source":"http://example.org/src#a"},` +
		`"identifier":[{"system":"urn:ids","value":"A-1"}],"status":"final",` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}],"text":"Laboratory"}],` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"2339-0","display":"Glucose"}],"text":"Glucose [Mass/volume] in Blood"},` +
		`"subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"},"effectiveDateTime":"2024-03-05T10:00:00Z",` +
		`"performer":[{"reference":"https://example.org/fhir/Practitioner/dr1"}],` +
		`"valueQuantity":{"value":105.5,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}}`,
	"obs2": `{"resourceType":"Observation","id":"obs2","meta":{"lastUpdated":"2025-01-01T00:00:00Z"},` +
		`"identifier":[{"system":"urn:ids","value":"A,1"}],"status":"amended",` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],` +
		`"code":{"coding":[{"system":"http://snomed.info/sct","code":"271649006"},{"system":"http://loinc.org","code":"8480-6"}]},` +
		`"subject":{"reference":"Group/g1"},"focus":[{"reference":"urn:uuid:1234"}],` +
		`"effectivePeriod":{"start":"2024-03-01","end":"2024-03-10"},` +
		`"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"260385009"}],"text":"Negative"}}`,
	"p1": `{"resourceType":"Patient","id":"p1","active":true,` +
		`"identifier":[{"system":"http://hospital.example.org/mrn","value":"MRN1"}],` +
		`"name":[{"family":"Walker","given":["Ramón","James"],"prefix":["Mr."]}],` +
		`"telecom":[{"system":"phone","value":"555-393-2066"},{"system":"email","value":"r@example.org"}],` +
		`"gender":"male","birthDate":"1980-05-17",` +
		`"address":[{"line":["3322 Main Terrace"],"city":"Chicopee","state":"MA","postalCode":"01013"}],` +
		`"communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"en-US"}]}}]}`,
	"p2": `{"resourceType":"Patient","id":"p2","name":[{"text":"Élodie Fontaine","family":"Fontaine","given":["Élodie"]}],` +
		`"gender":"female","birthDate":"1975","deceasedDateTime":"2020-01-02",` +
		`"address":[{"city":"Saint-Étienne","country":"FR"}]}`,
}

// matching returns the sorted ids of the fixtures of f's type that f
// matches.
func matching(t *testing.T, query string) []string {
	t.Helper()
	f, err := search.Parse(query)
	if err != nil {
		t.Fatalf("Parse(%q) error: %v", query, err)
	}
	var ids []string
	for id, body := range fixtures {
		if f.Match([]byte(body)) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func TestFilter_Match(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  []string
	}{
		// token
		{"Observation?status=final", []string{"obs1"}},
		{"Observation?status=final,amended", []string{"obs1", "obs2"}},
		{"Observation?status=final&status=amended", nil},
		{"Observation?status=final&category=laboratory", []string{"obs1"}},
		{"Observation?status=final&category=vital-signs", nil},
		{"Observation?code=2339-0", []string{"obs1"}},
		{"Observation?code=http://loinc.org|2339-0", []string{"obs1"}},
		{"Observation?code=http%3A%2F%2Floinc.org%7C2339-0", []string{"obs1"}},
		{"Observation?code=http://snomed.info/sct|2339-0", nil},
		{"Observation?code=|2339-0", nil},
		{"Observation?code=http://loinc.org|", []string{"obs1", "obs2"}},
		{"Observation?code=http://snomed.info/sct|271649006", []string{"obs2"}},
		{"Observation?category:not=laboratory", []string{"obs2"}},
		{"Observation?category:not=laboratory,vital-signs", nil},
		{"Observation?category:text=lab", []string{"obs1"}},
		{"Observation?code:text=GLUCOSE", []string{"obs1"}},
		{"Observation?identifier=urn:ids|A-1", []string{"obs1"}},
		{`Observation?identifier=A\,1`, []string{"obs2"}},
		{"Observation?identifier=A,1", nil},
		{"Observation?value-concept=260385009", []string{"obs2"}},
		{"Observation?_id=obs1", []string{"obs1"}},
		{"Observation?_id=obs1,obs2", []string{"obs1", "obs2"}},
		{"Observation?_id:not=obs1", []string{"obs2"}},
		{"Observation?_tag=http://example.org/tags|synthetic", []string{"obs1"}},
		{"Observation?_tag=synthetic", []string{"obs1"}},
		{"Observation?_security=R", []string{"obs1"}},
		{"Patient?gender=male", []string{"p1"}},
		{"Patient?gender=male,female", []string{"p1", "p2"}},
		{"Patient?gender:not=male", []string{"p2"}},
		{"Patient?active=true", []string{"p1"}},
		{"Patient?active=false", nil},
		{"Patient?identifier=MRN1", []string{"p1"}},
		{"Patient?identifier=http://hospital.example.org/mrn|MRN1", []string{"p1"}},
		{"Patient?identifier=http://other.example.org|MRN1", nil},
		{"Patient?identifier=|MRN1", nil},
		{"Patient?identifier=http://hospital.example.org/mrn|", []string{"p1"}},
		{"Patient?phone=555-393-2066", []string{"p1"}},
		{"Patient?email=555-393-2066", nil},
		{"Patient?email=r@example.org", []string{"p1"}},
		{"Patient?telecom=r@example.org", []string{"p1"}},
		{"Patient?language=urn:ietf:bcp:47|en-US", []string{"p1"}},
		// uri
		{"Observation?_profile=http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab", []string{"obs1"}},
		{"Observation?_profile=http://hl7.org/fhir/us/core/", nil},
		{"Observation?_profile:below=http://hl7.org/fhir/us/core/", []string{"obs1"}},
		{"Observation?_source=http://example.org/src%23a", []string{"obs1"}},
		// reference
		{"Observation?patient=p1", []string{"obs1"}},
		{"Observation?patient=Patient/p1", []string{"obs1"}},
		{"Observation?patient=https://other.example.org/fhir/Patient/p1", []string{"obs1"}},
		{"Observation?patient=Patient/p2", nil},
		{"Observation?patient=g1", nil}, // a Group is not a Patient
		{"Observation?subject=Group/g1", []string{"obs2"}},
		{"Observation?subject=g1", []string{"obs2"}},
		{"Observation?subject:Group=g1", []string{"obs2"}},
		{"Observation?subject:Patient=g1", nil},
		{"Observation?subject=p1,g1", []string{"obs1", "obs2"}},
		{"Observation?performer=Practitioner/dr1", []string{"obs1"}},
		{"Observation?encounter=e1", []string{"obs1"}},
		{"Observation?focus=urn:uuid:1234", []string{"obs2"}},
		{"Patient?organization=o1", nil},
		// string
		{"Patient?name=walker", []string{"p1"}},
		{"Patient?name=RAM", []string{"p1"}},
		{"Patient?name=ramon", []string{"p1"}},
		{"Patient?name=Ram%C3%B3n", []string{"p1"}},
		{"Patient?name=elodie", []string{"p2"}},
		{"Patient?name=%C3%A9lodie%20f", []string{"p2"}}, // text
		{"Patient?name=mr", []string{"p1"}},
		{"Patient?name=alker", nil},
		{"Patient?name:contains=alker", []string{"p1"}},
		{"Patient?name:exact=Walker", []string{"p1"}},
		{"Patient?name:exact=walker", nil},
		{"Patient?family=Walk", []string{"p1"}},
		{"Patient?given=james", []string{"p1"}},
		{"Patient?given=fontaine", nil},
		{"Patient?address=3322", []string{"p1"}},
		{"Patient?address=main", nil},
		{"Patient?address:contains=terrace", []string{"p1"}},
		{"Patient?address=chicopee", []string{"p1"}},
		{"Patient?address-city=saint-etienne", []string{"p2"}},
		{"Patient?address-state=ma", []string{"p1"}},
		{"Patient?address-postalcode=010", []string{"p1"}},
		{"Patient?address-country=FR", []string{"p2"}},
		{"Observation?value-string=neg", []string{"obs2"}},
		// quantity
		{"Observation?value-quantity=105.5", []string{"obs1"}},
		{"Observation?value-quantity=105", nil},
		{"Observation?value-quantity=106", []string{"obs1"}}, // [105.5, 106.5)
		{"Observation?value-quantity=gt100", []string{"obs1"}},
		{"Observation?value-quantity=lt100", nil},
		{"Observation?value-quantity=ge105.5", []string{"obs1"}},
		{"Observation?value-quantity=le105.4", nil},
		{"Observation?value-quantity=ne105.5", nil},
		{"Observation?value-quantity=1.055e2", []string{"obs1"}},
		{"Observation?value-quantity=105.5|http://unitsofmeasure.org|mg/dL", []string{"obs1"}},
		{"Observation?value-quantity=105.5||mg/dL", []string{"obs1"}},
		{"Observation?value-quantity=105.5|http://unitsofmeasure.org|g", nil},
		{"Observation?combo-value-quantity=gt1", []string{"obs1"}},
		// date (more in TestDatePrefixes)
		{"Observation?date=2024-03", []string{"obs1", "obs2"}},
		{"Observation?date=2024-03-05", []string{"obs1"}},
		{"Observation?date=ge2024-03-05&date=lt2024-03-06", []string{"obs1", "obs2"}}, // obs2's period overlaps both
		{"Observation?date=sa2024-03-04&date=eb2024-03-06", []string{"obs1"}},
		{"Observation?_lastUpdated=2024-03-05", []string{"obs1"}},
		{"Observation?_lastUpdated=gt2024-06", []string{"obs2"}},
		{"Observation?_lastUpdated=2024-03-05T10:20:30.123Z", []string{"obs1"}},
		{"Observation?_lastUpdated=2024-03-05T10:20:30Z", []string{"obs1"}},
		{"Observation?_lastUpdated=2024-03-05T11:20:30%2B01:00", []string{"obs1"}},
		{"Observation?_lastUpdated=2024-03-05T11:20:30+01:00", []string{"obs1"}}, // '+' decoded as a space
		{"Patient?birthdate=1980", []string{"p1"}},
		{"Patient?birthdate=1975", []string{"p2"}},
		{"Patient?birthdate=1975-06", nil},
		{"Patient?birthdate=lt1976", []string{"p2"}},
		{"Patient?death-date=2020", []string{"p2"}},
		// :missing
		{"Observation?patient:missing=true", []string{"obs2"}},
		{"Observation?patient:missing=false", []string{"obs1"}},
		{"Observation?subject:missing=true", nil},
		{"Observation?encounter:missing=true", []string{"obs2"}},
		{"Observation?value-quantity:missing=false", []string{"obs1"}},
		{"Observation?date:missing=false", []string{"obs1", "obs2"}},
		{"Patient?death-date:missing=true", []string{"p1"}},
		{"Patient?gender:missing=true", nil},
		{"Patient?name:missing=false", []string{"p1", "p2"}},
		{"Patient?_profile:missing=true", []string{"p1", "p2"}},
		// empty values are ignored; no criteria match everything
		{"Observation?status=&code=2339-0", []string{"obs1"}},
		{"Observation?", []string{"obs1", "obs2"}},
		{"Observation?status", []string{"obs1", "obs2"}},
		{"Patient?_id=p1&&", []string{"p1"}},
	} {
		if diff := cmp.Diff(tc.want, matching(t, tc.query)); diff != "" {
			t.Errorf("Parse(%q).Match ids (-want +got):\n%s", tc.query, diff)
		}
	}
}

// TestDatePrefixes checks every prefix against instants, partial dates,
// Periods (closed and open) and Timings, by the R4 range rules.
func TestDatePrefixes(t *testing.T) {
	const (
		instant = `"effectiveDateTime":"2024-03-05T10:00:00Z"`                  // [10:00:00, 10:00:01)
		month   = `"effectiveDateTime":"2024-03"`                               // all of March
		period  = `"effectivePeriod":{"start":"2024-03-01","end":"2024-03-10"}` // [03-01, 03-11)
		from    = `"effectivePeriod":{"start":"2024-03-01"}`
		until   = `"effectivePeriod":{"end":"2024-03-10"}`
		timing  = `"effectiveTiming":{"event":["2024-03-01T10:00:00Z","2024-03-20T10:00:00Z"]}`
		instnt  = `"effectiveInstant":"2024-03-05T10:00:00.000Z"`
	)
	for _, tc := range []struct {
		value, search string
		want          bool
	}{
		{instant, "2024-03-05", true},
		{instant, "eq2024-03-05", true},
		{instant, "eq2024-03", true},
		{instant, "eq2024", true},
		{instant, "eq2024-03-06", false},
		{instant, "eq2024-03-05T10:00Z", true},
		{instant, "eq2024-03-05T10:00:00Z", true},
		{instant, "eq2024-03-05T11:00:00%2B01:00", true},
		{instant, "eq2024-03-05T10:00:00.5Z", false},
		{instant, "ne2024-03-05", false},
		{instant, "ne2024-03-06", true},
		{instant, "gt2024-03-04", true},
		{instant, "gt2024-03-05", false},
		{instant, "gt2024-03-05T09:59:59Z", true},
		{instant, "lt2024-03-06", true},
		{instant, "lt2024-03-05", false},
		{instant, "lt2024-03-05T10:00:01Z", true},
		{instant, "ge2024-03-05", true},
		{instant, "ge2024-03-04", true},
		{instant, "ge2024-03-06", false},
		{instant, "le2024-03-05", true},
		{instant, "le2024-03-04", false},
		{instant, "le2024-03-06", true},
		{instant, "sa2024-03-04", true},
		{instant, "sa2024-03-05", false},
		{instant, "eb2024-03-06", true},
		{instant, "eb2024-03-05", false},
		{instnt, "2024-03-05T10:00:00Z", true},
		{month, "eq2024-03-05", false},
		{month, "eq2024", true},
		{month, "ge2024-03-15", true}, // the rest of March lies above the day
		{month, "lt2024-03-15", true},
		{month, "gt2024-03", false},
		{month, "sa2024-02", true},
		{period, "eq2024-03", true},
		{period, "eq2024-03-05", false},
		{period, "ne2024-03-05", true},
		{period, "gt2024-03-05", true},
		{period, "lt2024-03-05", true},
		{period, "ge2024-03-09", true},
		{period, "ge2024-03-10", false}, // neither above 03-10 nor within it
		{period, "le2024-02", false},
		{period, "le2024-03-01", false},
		{period, "le2024-03-02", true},
		{period, "sa2024-02", true},
		{period, "sa2024-03-01", false},
		{period, "eb2024-04", true},
		{period, "eb2024-03-10", false},
		{period, "eb2024-03-11", true},
		{from, "gt2030", true},
		{from, "eq2024-03", false},
		{from, "lt2024-03-01", false},
		{from, "sa2024-02", true},
		{from, "eb2030", false},
		{until, "lt1990", true},
		{until, "gt2024-03-10", false},
		{until, "eb2024-03-11", true},
		{timing, "eq2024-03", true},
		{timing, "eq2024-03-01", false},
		{timing, "gt2024-03-19", true},
		{timing, "lt2024-03-02", true},
		{timing, "sa2024-02-29", true},
		{`"effectivePeriod":{}`, "gt2000", false},
		{`"effectivePeriod":{"start":"garbage"}`, "gt2000", false},
		{`"effectiveDateTime":"garbage"`, "ne2000", false},
		{`"effectiveDateTime":20240305`, "ne2000", false},
	} {
		body := `{"resourceType":"Observation","id":"x",` + tc.value + `}`
		q := "Observation?date=" + tc.search
		f, err := search.Parse(q)
		if err != nil {
			t.Errorf("Parse(%q) error: %v", q, err)
			continue
		}
		if got := f.Match([]byte(body)); got != tc.want {
			t.Errorf("Parse(%q).Match({%s}) = %v, want %v", q, tc.value, got, tc.want)
		}
	}
}

func TestChoiceCasts(t *testing.T) {
	// onset-date reads only onsetDateTime and onsetPeriod; onset-info only
	// onsetString.
	cond := func(onset string) []byte {
		return []byte(`{"resourceType":"Condition","id":"c","subject":{"reference":"Patient/p"},` + onset + `}`)
	}
	for _, tc := range []struct {
		body  []byte
		query string
		want  bool
	}{
		{cond(`"onsetDateTime":"2020-05-01"`), "Condition?onset-date=2020", true},
		{cond(`"onsetPeriod":{"start":"2020-05-01","end":"2020-06-01"}`), "Condition?onset-date=2020", true},
		{cond(`"onsetString":"2020"`), "Condition?onset-date=2020", false},
		{cond(`"onsetString":"childhood"`), "Condition?onset-info=child", true},
		{cond(`"onsetDateTime":"2020"`), "Condition?onset-info=2020", false},
		{cond(`"onsetAge":{"value":42,"unit":"a","system":"http://unitsofmeasure.org","code":"a"}`), "Condition?onset-age=ge40", true},
		{cond(`"onsetDateTime":"2020"`), "Condition?patient=p", true},
		{[]byte(`{"resourceType":"MedicationRequest","id":"m","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"308192"}]}}`), "MedicationRequest?code=308192", true},
		{[]byte(`{"resourceType":"MedicationRequest","id":"m","medicationReference":{"reference":"Medication/308192"}}`), "MedicationRequest?code=308192", false},
		{[]byte(`{"resourceType":"MedicationRequest","id":"m","medicationReference":{"reference":"Medication/308192"}}`), "MedicationRequest?medication=308192", true},
		{[]byte(`{"resourceType":"Procedure","id":"p","performedPeriod":{"start":"2023-10-19T19:00:27Z","end":"2023-10-19T19:10:27Z"}}`), "Procedure?date=2023-10-19", true},
		{[]byte(`{"resourceType":"Immunization","id":"i","occurrenceDateTime":"2024-02-25T19:00:26Z"}`), "Immunization?date=ge2024-02", true},
		{[]byte(`{"resourceType":"Provenance","id":"v","target":[{"reference":"Patient/p"}],"occurredPeriod":{"start":"2020"}}`), "Provenance?when=2020", false},
		{[]byte(`{"resourceType":"Provenance","id":"v","target":[{"reference":"Observation/o"},{"reference":"Patient/p"}]}`), "Provenance?patient=p", true},
		{[]byte(`{"resourceType":"Encounter","id":"e","participant":[{"individual":{"reference":"RelatedPerson/x"}},{"individual":{"reference":"Practitioner/x"}}]}`), "Encounter?practitioner=x", true},
		{[]byte(`{"resourceType":"Encounter","id":"e","participant":[{"individual":{"reference":"RelatedPerson/x"}}]}`), "Encounter?practitioner=x", false},
		{[]byte(`{"resourceType":"Group","id":"g","characteristic":[{"valueBoolean":true}]}`), "Group?value=true", true},
		{[]byte(`{"resourceType":"Group","id":"g","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/a"}}]}`), "Group?member=Patient/a&actual=true&type=person", true},
		{[]byte(`{"resourceType":"DocumentReference","id":"d","masterIdentifier":{"system":"urn:x","value":"m1"}}`), "DocumentReference?identifier=urn:x|m1", true},
		{[]byte(`{"resourceType":"CarePlan","id":"c","activity":[{"detail":{"scheduledTiming":{"repeat":{"boundsPeriod":{"start":"2024-01-01","end":"2024-12-31"}}}}}]}`), "CarePlan?activity-date=2024", true},
		// A body of another type, or not an object, never matches.
		{[]byte(`{"resourceType":"Patient","id":"c"}`), "Condition?", false},
		{[]byte(`[1,2]`), "Condition?", false},
		{[]byte(``), "Condition?", false},
	} {
		f, err := search.Parse(tc.query)
		if err != nil {
			t.Errorf("Parse(%q) error: %v", tc.query, err)
			continue
		}
		if got := f.Match(tc.body); got != tc.want {
			t.Errorf("Parse(%q).Match(%s) = %v, want %v", tc.query, tc.body, got, tc.want)
		}
	}
}

func TestParse_Errors(t *testing.T) {
	for _, tc := range []struct {
		query, code, mention string
	}{
		{"Observation", bulk.EINVALID, "_typeFilter"},
		{"", bulk.EINVALID, "_typeFilter"},
		{"?code=x", bulk.EINVALID, "resource type"},
		{"Patient/1/Observation?code=x", bulk.EINVALID, "compartment"},
		{"http://example.org/fhir/Observation?code=x", bulk.EINVALID, "compartment"},
		{"Foo?code=x", bulk.EINVALID, `"Foo"`},
		{"observation?code=x", bulk.EINVALID, `"observation"`},
		{"Observation?_include=Observation:subject", bulk.EINVALID, "_include"},
		{"Observation?_include:iterate=Observation:subject", bulk.EINVALID, "_include"},
		{"Observation?_revinclude=Provenance:target", bulk.EINVALID, "_revinclude"},
		{"Observation?_sort=date", bulk.EINVALID, "_sort"},
		{"Observation?_count=10", bulk.EINVALID, "_count"},
		{"Observation?_elements=id", bulk.EINVALID, "_elements"},
		{"Observation?_summary=true", bulk.EINVALID, "_summary"},
		{"Observation?_total=accurate", bulk.EINVALID, "_total"},
		{"Observation?_contained=true", bulk.EINVALID, "_contained"},
		{"Observation?_containedType=contained", bulk.EINVALID, "_containedType"},
		{"Observation?_type=Patient", bulk.EINVALID, "_type"},
		{"Observation?foo=x", bulk.EUNSUPPORTED, `"foo"`},
		{"Observation?status=final&foo=", bulk.EUNSUPPORTED, `"foo"`},
		{"Bundle?composition=Composition/1", bulk.EUNSUPPORTED, `"composition"`}, // Bundle.entry[0].resource is not a path
		{"Location?near=42.25|-83.69|10|km", bulk.EUNSUPPORTED, `"near"`},
		{"Observation?patient=MedicationOrder/1", bulk.EINVALID, `"patient"`}, // a DSTU2 type
		{"Observation?code-value-quantity=x$1", bulk.EUNSUPPORTED, "code-value-quantity"},
		{"Patient?phonetic=x", bulk.EUNSUPPORTED, "phonetic"},
		{"Patient?deceased=true", bulk.EUNSUPPORTED, "deceased"},
		{"Observation?_text=x", bulk.EUNSUPPORTED, "_text"},
		{"Observation?_format=json", bulk.EUNSUPPORTED, "_format"},
		{"Observation?code:in=http://example.org/vs", bulk.EUNSUPPORTED, "code"},
		{"Observation?code:below=x", bulk.EUNSUPPORTED, "code"},
		{"Observation?code:=x", bulk.EUNSUPPORTED, "code"},
		{"Observation?date:not=2024", bulk.EUNSUPPORTED, "date"},
		{"Observation?subject:identifier=x", bulk.EUNSUPPORTED, "subject"},
		{"Observation?subject.name=x", bulk.EUNSUPPORTED, "subject.name"},
		{"Observation?subject:Patient.name=x", bulk.EUNSUPPORTED, "subject:Patient.name"},
		{"Observation?_has:Observation:patient:code=x", bulk.EUNSUPPORTED, "_has"},
		{"Observation?date=yesterday", bulk.EINVALID, `"date"`},
		{"Observation?date=2024-13", bulk.EINVALID, `"date"`},
		{"Observation?date=xx2024", bulk.EINVALID, `"date"`},
		{"Observation?date=2024,nope", bulk.EINVALID, `"date"`},
		{"Observation?date=ap2024", bulk.EUNSUPPORTED, `"date"`},
		{"Observation?value-quantity=ap5", bulk.EUNSUPPORTED, "value-quantity"},
		{"Observation?value-quantity=abc", bulk.EINVALID, "value-quantity"},
		{"Observation?value-quantity=1|2", bulk.EINVALID, "value-quantity"},
		{"Observation?value-quantity=1e99999", bulk.EINVALID, "value-quantity"},
		{"Observation?status:missing=maybe", bulk.EINVALID, "status:missing"},
		{"Observation?patient=Foo/1", bulk.EINVALID, `"patient"`},
		{"Observation?patient=a%20b", bulk.EINVALID, `"patient"`},
		{"Observation?subject:Group=Patient/1", bulk.EINVALID, "subject:Group"},
		{"Observation?code=%zz", bulk.EINVALID, `"code"`},
		{"Observation?%zz=1", bulk.EINVALID, "%zz"},
		{"Observation?=x", bulk.EINVALID, "without a name"},
	} {
		_, err := search.Parse(tc.query)
		if got := bulk.ErrorCode(err); got != tc.code {
			t.Errorf("Parse(%q) code = %q (%v), want %q", tc.query, got, err, tc.code)
			continue
		}
		if msg := bulk.ErrorMessage(err); !strings.Contains(msg, tc.mention) {
			t.Errorf("Parse(%q) message = %q, want it to mention %q", tc.query, msg, tc.mention)
		}
	}
}

func TestFilter_String(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{"Observation?code=http%3A%2F%2Floinc.org%7C2339-0&status=", "Observation?code=http://loinc.org|2339-0"},
		{"Patient?name=Mary+Ann&_id=a,b", "Patient?name=Mary%20Ann&_id=a,b"},
		{`Observation?identifier=A\,1&date=ge2024-01-01T00:00:00%2B01:00`, `Observation?identifier=A\,1&date=ge2024-01-01T00:00:00%2B01:00`},
		{"Observation?", "Observation?"},
	} {
		f, err := search.Parse(tc.query)
		if err != nil {
			t.Fatalf("Parse(%q) error: %v", tc.query, err)
		}
		if got := f.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.query, got, tc.want)
		}
		if f.Type() != strings.SplitN(tc.query, "?", 2)[0] {
			t.Errorf("Parse(%q).Type() = %q", tc.query, f.Type())
		}
		g, err := search.Parse(f.String())
		if err != nil || g.String() != f.String() {
			t.Errorf("Parse(%q) = %v, %v; want String %q", f.String(), g, err, f.String())
		}
	}
}

// setStrings renders a Set for comparison.
func setStrings(s search.Set) map[string][]string {
	m := make(map[string][]string)
	for typ, fs := range s {
		for _, f := range fs {
			m[typ] = append(m[typ], f.String())
		}
	}
	return m
}

func TestParseAll(t *testing.T) {
	want := map[string][]string{
		"Observation": {"Observation?status=final,amended", "Observation?category=laboratory"},
		"Condition":   {"Condition?clinical-status=active&category=problem-list-item"},
	}
	for _, tc := range []struct {
		name   string
		values []string
	}{
		{"v3 repeats", []string{
			"Observation?status=final,amended",
			"Condition?clinical-status=active&category=problem-list-item",
			"Observation?category=laboratory",
		}},
		{"v2 encoded list", []string{
			"Observation%3Fstatus%3Dfinal%2Camended,Condition%3Fclinical-status%3Dactive%26category%3Dproblem-list-item,Observation%3Fcategory%3Dlaboratory",
		}},
		{"v2 lowercase escapes", []string{
			"Observation%3fstatus%3dfinal%2camended,Condition%3fclinical-status%3dactive%26category%3dproblem-list-item,Observation%3fcategory%3dlaboratory",
		}},
		{"v2 list decoded once by the HTTP layer", []string{
			"Observation?status=final,amended,Condition?clinical-status=active&category=problem-list-item,Observation?category=laboratory",
		}},
		{"v2 repeated lists", []string{
			"Observation%3Fstatus%3Dfinal%2Camended",
			"Condition%3Fclinical-status%3Dactive%26category%3Dproblem-list-item,Observation%3Fcategory%3Dlaboratory",
		}},
		{"v2 query values percent-encoded twice", []string{
			"Observation%3Fstatus%3Dfinal%252Camended,Condition%3Fclinical-status%3Dactive%26category%3Dproblem-list-item",
			"Observation?category=laboratory",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := search.ParseAll(tc.values)
			if err != nil {
				t.Fatalf("ParseAll(%q) error: %v", tc.values, err)
			}
			if diff := cmp.Diff(want, setStrings(s)); diff != "" {
				t.Errorf("ParseAll(%q) (-want +got):\n%s", tc.values, diff)
			}
			if got := s.Types(); !slices.Equal(got, []string{"Condition", "Observation"}) {
				t.Errorf("Types() = %q", got)
			}
		})
	}

	t.Run("Errors", func(t *testing.T) {
		for _, tc := range []struct {
			values  []string
			code    string
			mention string
		}{
			{[]string{"Observation?status=final", "Observation?_sort=date"}, bulk.EINVALID, "_sort"},
			{[]string{"Observation%3Fcode%3D%zz"}, bulk.EINVALID, "percent-encoded"},
			{[]string{"Observation?status=final,Condition?nope=1"}, bulk.EUNSUPPORTED, "nope"},
			{[]string{"Observation?status=final,Foo?x=1"}, bulk.EINVALID, "Foo"},
			{[]string{"code=x"}, bulk.EINVALID, "_typeFilter"},
		} {
			_, err := search.ParseAll(tc.values)
			if got := bulk.ErrorCode(err); got != tc.code || !strings.Contains(bulk.ErrorMessage(err), tc.mention) {
				t.Errorf("ParseAll(%q) = %v, want %s mentioning %q", tc.values, err, tc.code, tc.mention)
			}
		}
	})

	t.Run("Empty", func(t *testing.T) {
		s, err := search.ParseAll(nil)
		if err != nil || len(s) != 0 || len(s.Types()) != 0 {
			t.Errorf("ParseAll(nil) = %v, %v; want an empty set", s, err)
		}
		if !s.Match("Observation", []byte(fixtures["obs1"])) {
			t.Error("an empty set filters out resources")
		}
	})
}

func TestSet_Match(t *testing.T) {
	s, err := search.ParseAll([]string{"Observation?status=amended", "Observation?category=laboratory", "Patient?gender=female"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		typ, id string
		want    bool
	}{
		{"Observation", "obs1", true}, // second filter (R27: OR)
		{"Observation", "obs2", true}, // first filter
		{"Patient", "p1", false},
		{"Patient", "p2", true},
	} {
		if got := s.Match(tc.typ, []byte(fixtures[tc.id])); got != tc.want {
			t.Errorf("Set.Match(%s, %s) = %v, want %v", tc.typ, tc.id, got, tc.want)
		}
	}
	// R28: a type without a filter is not filtered.
	if !s.Match("Condition", []byte(`{"resourceType":"Condition","id":"c"}`)) {
		t.Error("Set.Match(Condition) = false for an unfiltered type")
	}
}

func TestSupported(t *testing.T) {
	sup := search.Supported()
	if got, want := len(sup), 146; got != want {
		t.Errorf("len(Supported()) = %d, want %d (every R4 type)", got, want)
	}
	common := []search.Param{
		{Name: "_id", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/Resource-id"},
		{Name: "_lastUpdated", Type: "date", Definition: "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"},
		{Name: "_profile", Type: "uri", Definition: "http://hl7.org/fhir/SearchParameter/Resource-profile"},
		{Name: "_security", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/Resource-security"},
		{Name: "_source", Type: "uri", Definition: "http://hl7.org/fhir/SearchParameter/Resource-source"},
		{Name: "_tag", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/Resource-tag"},
	}
	for typ, params := range sup {
		for _, c := range common {
			if !slices.Contains(params, c) {
				t.Errorf("Supported()[%s] lacks %+v", typ, c)
			}
		}
	}
	// Every type has its own parameters, not only the types of the
	// hand-typed table that the generated definitions replaced.
	basic := append(slices.Clone(common),
		search.Param{Name: "author", Type: "reference", Definition: "http://hl7.org/fhir/SearchParameter/Basic-author"},
		search.Param{Name: "code", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/Basic-code"},
		search.Param{Name: "created", Type: "date", Definition: "http://hl7.org/fhir/SearchParameter/Basic-created"},
		search.Param{Name: "identifier", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/Basic-identifier"},
		search.Param{Name: "patient", Type: "reference", Definition: "http://hl7.org/fhir/SearchParameter/Basic-patient"},
		search.Param{Name: "subject", Type: "reference", Definition: "http://hl7.org/fhir/SearchParameter/Basic-subject"},
	)
	slices.SortFunc(basic, func(a, b search.Param) int { return strings.Compare(a.Name, b.Name) })
	if diff := cmp.Diff(basic, sup["Basic"]); diff != "" {
		t.Errorf("Supported()[Basic] (-want +got):\n%s", diff)
	}
	obs := sup["Observation"]
	if !slices.IsSortedFunc(obs, func(a, b search.Param) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Supported()[Observation] is not sorted by name")
	}
	for _, want := range []search.Param{
		{Name: "status", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/Observation-status"},
		{Name: "patient", Type: "reference", Definition: "http://hl7.org/fhir/SearchParameter/clinical-patient"},
		{Name: "date", Type: "date", Definition: "http://hl7.org/fhir/SearchParameter/clinical-date"},
		{Name: "code", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/clinical-code"},
		{Name: "value-quantity", Type: "quantity", Definition: "http://hl7.org/fhir/SearchParameter/Observation-value-quantity"},
	} {
		if !slices.Contains(obs, want) {
			t.Errorf("Supported()[Observation] lacks %+v", want)
		}
	}
	// Every listed parameter parses.
	for typ, params := range sup {
		for _, p := range params {
			q := typ + "?" + p.Name + ":missing=true"
			if _, err := search.Parse(q); err != nil {
				t.Errorf("Parse(%q) error: %v", q, err)
			}
		}
	}
	// The result is a copy.
	sup["Observation"][0].Name = "changed"
	if search.Supported()["Observation"][0].Name == "changed" {
		t.Error("Supported() returns shared slices")
	}
}

// TestHostileInput: deeply nested or malformed JSON neither crashes nor
// matches.
func TestHostileInput(t *testing.T) {
	deep := `{"resourceType":"Observation","subject":` + strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000) + `}`
	f, err := search.Parse("Observation?subject:missing=false")
	if err != nil {
		t.Fatal(err)
	}
	if f.Match([]byte(deep)) {
		t.Error("Match(nested arrays) = true")
	}
	e, err := search.ParseElements([]string{"id"})
	if err != nil {
		t.Fatal(err)
	}
	if out, ok := e.Subset("Observation", []byte(deep)); ok || len(out) != len(deep) {
		t.Error("Subset(nested arrays) subsetted")
	}
}
