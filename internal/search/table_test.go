package search

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tranchehq/tranche/internal/fhir"
)

func TestRegistry(t *testing.T) {
	r, err := buildRegistry()
	if err != nil {
		t.Fatalf("buildRegistry() error: %v", err)
	}
	for _, typ := range supportedTypes {
		if !fhir.IsResourceType(typ) {
			t.Errorf("supported type %q is not a resource type", typ)
		}
		// Every supported type has type-specific parameters besides the
		// six common ones.
		if got := len(r[typ]); got <= 6 {
			t.Errorf("%s has %d parameters, want more than the common six", typ, got)
		}
	}
	for _, typ := range fhir.ResourceTypes {
		for _, name := range []string{"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"} {
			if r[typ][name] == nil {
				t.Errorf("%s has no %s", typ, name)
			}
		}
	}
	for _, d := range definitions {
		if !strings.HasSuffix(d.id, d.code) && !strings.HasPrefix(d.id, "clinical-") &&
			!strings.HasPrefix(d.id, "individual-") && !strings.HasPrefix(d.id, "medications-") &&
			!strings.HasPrefix(d.id, "Resource-") {
			t.Errorf("definition %s: id does not end in its code %q", d.id, d.code)
		}
	}
}

// TestCompiledPaths pins how expressions become JSON paths: choice
// variants, casts, where(resolve() is T) and where(system=…).
func TestCompiledPaths(t *testing.T) {
	type compiled struct {
		Keys   [][]string
		Target string
		Where  string
	}
	for _, tc := range []struct {
		typ, name string
		want      []compiled
	}{
		{"Observation", "date", []compiled{{Keys: [][]string{{"effectiveDateTime", "effectivePeriod", "effectiveTiming", "effectiveInstant"}}}}},
		{"Observation", "patient", []compiled{{Keys: [][]string{{"subject"}}, Target: "Patient"}}},
		{"Observation", "value-string", []compiled{
			{Keys: [][]string{{"valueString"}}},
			{Keys: [][]string{{"valueCodeableConcept"}, {"text"}}},
		}},
		{"Observation", "combo-code", []compiled{{Keys: [][]string{{"code"}}}, {Keys: [][]string{{"component"}, {"code"}}}}},
		{"Condition", "onset-date", []compiled{{Keys: [][]string{{"onsetDateTime"}}}, {Keys: [][]string{{"onsetPeriod"}}}}},
		{"Condition", "code", []compiled{{Keys: [][]string{{"code"}}}}},
		{"AllergyIntolerance", "code", []compiled{{Keys: [][]string{{"code"}}}, {Keys: [][]string{{"reaction"}, {"substance"}}}}},
		{"MedicationRequest", "code", []compiled{{Keys: [][]string{{"medicationCodeableConcept"}}}}},
		{"MedicationRequest", "medication", []compiled{{Keys: [][]string{{"medicationReference"}}}}},
		{"Patient", "email", []compiled{{Keys: [][]string{{"telecom"}}, Where: "system=email"}}},
		{"Patient", "_lastUpdated", []compiled{{Keys: [][]string{{"meta"}, {"lastUpdated"}}}}},
		{"Encounter", "practitioner", []compiled{{Keys: [][]string{{"participant"}, {"individual"}}, Target: "Practitioner"}}},
		{"DocumentReference", "identifier", []compiled{{Keys: [][]string{{"masterIdentifier"}}}, {Keys: [][]string{{"identifier"}}}}},
		{"Procedure", "date", []compiled{{Keys: [][]string{{"performedDateTime", "performedPeriod", "performedString", "performedAge", "performedRange"}}}}},
	} {
		p := lookup(tc.typ, tc.name)
		if p == nil {
			t.Errorf("lookup(%s, %s) = nil", tc.typ, tc.name)
			continue
		}
		var got []compiled
		for _, pa := range p.paths {
			c := compiled{Target: pa.target}
			if pa.whereKey != "" {
				c.Where = pa.whereKey + "=" + pa.whereValue
			}
			for _, s := range pa.steps {
				c.Keys = append(c.Keys, s.keys)
			}
			got = append(got, c)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s %s paths (-want +got):\n%s", tc.typ, tc.name, diff)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, expr := range []string{
		"Observation.code.exists()",
		"(Observation.code as CodeableConcept)", // not a choice element
		"(Observation.value as Money)",          // no such variant
		"(Observation.value)",
		"Observation.subject.where(resolve() is Patient).reference",
		"Observation",
		"Observation.value.as(Quantity).as(Quantity)",
	} {
		if _, err := compileExpr(expr, "Observation"); err == nil {
			t.Errorf("compileExpr(%q) succeeded, want an error", expr)
		}
	}
}

// TestBriefParameters checks that the parameters bulk export users filter
// by are in the table (issue 5, item 1).
func TestBriefParameters(t *testing.T) {
	want := map[string][]string{
		"Patient":                  {"name", "family", "given", "gender", "birthdate", "address", "address-city", "identifier", "_id"},
		"Observation":              {"code", "category", "status", "date", "patient", "subject", "encounter", "value-quantity", "_lastUpdated"},
		"Condition":                {"code", "category", "clinical-status", "verification-status", "onset-date", "recorded-date", "patient"},
		"Encounter":                {"date", "type", "status", "class", "patient", "subject"},
		"Procedure":                {"date", "code", "status", "patient"},
		"MedicationRequest":        {"authoredon", "status", "intent", "code", "patient", "requester", "encounter"},
		"Immunization":             {"date", "status", "vaccine-code", "patient"},
		"AllergyIntolerance":       {"clinical-status", "verification-status", "category", "date", "patient"},
		"DiagnosticReport":         {"category", "code", "date", "status", "patient", "issued"},
		"Claim":                    {"created", "patient", "status", "use"},
		"ExplanationOfBenefit":     {"created", "patient", "status"},
		"DocumentReference":        {"category", "type", "date", "patient", "period"},
		"CarePlan":                 {"category", "status", "date", "patient"},
		"CareTeam":                 {"status", "patient", "participant"},
		"Coverage":                 {"beneficiary", "patient", "status", "type"},
		"Practitioner":             {"name", "family", "identifier"},
		"Organization":             {"name", "identifier", "type"},
		"Location":                 {"name", "address-city", "status"},
		"Group":                    {"member", "type", "actual", "identifier"},
		"Device":                   {"patient", "type", "status"},
		"ImagingStudy":             {"started", "patient", "modality"},
		"Provenance":               {"target", "patient", "recorded", "agent"},
		"MedicationAdministration": {"effective-time", "status", "code", "patient"},
		"MedicationStatement":      {"effective", "status", "code", "patient"},
		"ServiceRequest":           {"authored", "occurrence", "code", "status", "patient"},
	}
	for typ, names := range want {
		for _, n := range names {
			if lookup(typ, n) == nil {
				t.Errorf("%s has no parameter %s", typ, n)
			}
		}
	}
}

func TestMandatory(t *testing.T) {
	var types []string
	for typ, elems := range mandatory {
		types = append(types, typ)
		for _, e := range elems {
			if !isElementName(e) {
				t.Errorf("mandatory[%s]: %q is not an element name", typ, e)
			}
			if base, ok := strings.CutSuffix(e, "[x]"); ok && !slices.Contains(topLevelChoices[typ], base) {
				t.Errorf("mandatory[%s]: %s is not in topLevelChoices", typ, e)
			}
		}
	}
	slices.Sort(types)
	if diff := cmp.Diff(fhir.ResourceTypes, types); diff != "" {
		t.Errorf("mandatory types differ from fhir.ResourceTypes (-want +got):\n%s", diff)
	}
	for typ, choices := range topLevelChoices {
		if !fhir.IsResourceType(typ) {
			t.Errorf("topLevelChoices: %q is not a resource type", typ)
		}
		for _, c := range choices {
			if !isElementName(c) {
				t.Errorf("topLevelChoices[%s]: %q is not an element name", typ, c)
			}
		}
	}
	for elem := range choiceTypes {
		if root := altRoot(elem); !slices.Contains(supportedTypes, root) {
			t.Errorf("choiceTypes: %s is not under a supported type", elem)
		}
	}
}

func TestParseDate(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	for _, tc := range []struct {
		in     string
		search bool
		lo, hi string // RFC 3339; empty: invalid
	}{
		{"2024", false, "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"},
		{"2024-02", false, "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"2024-12", false, "2024-12-01T00:00:00Z", "2025-01-01T00:00:00Z"},
		{"2024-02-29", false, "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"2024-03-05T10:20", false, "2024-03-05T10:20:00Z", "2024-03-05T10:21:00Z"},
		{"2024-03-05T10:20:30Z", false, "2024-03-05T10:20:30Z", "2024-03-05T10:20:31Z"},
		{"2024-03-05T10:20:30.5Z", false, "2024-03-05T10:20:30.5Z", "2024-03-05T10:20:30.6Z"},
		{"2024-03-05T10:20:30.123Z", false, "2024-03-05T10:20:30.123Z", "2024-03-05T10:20:30.124Z"},
		{"2024-03-05T10:20:30.1234567891Z", false, "2024-03-05T10:20:30.123456789Z", "2024-03-05T10:20:30.12345679Z"},
		{"2024-03-05T10:20:30+02:00", false, "2024-03-05T08:20:30Z", "2024-03-05T08:20:31Z"},
		{"2024-03-05T10:20:30-05:30", false, "2024-03-05T15:50:30Z", "2024-03-05T15:50:31Z"},
		{"2024-03-05T10:20:30 02:00", true, "2024-03-05T08:20:30Z", "2024-03-05T08:20:31Z"},
		{"2024-03-05T10:20:30", false, "2024-03-05T10:20:30Z", "2024-03-05T10:20:31Z"},
		{"2024-03-05T10:20:30 02:00", false, "", ""},
		{"2023-02-29", false, "", ""},
		{"2024-13", false, "", ""},
		{"2024-00", false, "", ""},
		{"0000", false, "", ""},
		{"24", false, "", ""},
		{"2024-1", false, "", ""},
		{"2024-03-05T24:00:00Z", false, "", ""},
		{"2024-03-05T10:60:00Z", false, "", ""},
		{"2024-03-05T10:20:61Z", false, "", ""},
		{"2024-03-05T10:20:30.Z", false, "", ""},
		{"2024-03-05T10:20:30+15:00", false, "", ""},
		{"2024-03-05T10:20:30+0200", false, "", ""},
		{"2024-03-05Z", false, "", ""},
		{"2024-03-05T", false, "", ""},
		{"yesterday", true, "", ""},
		{"", true, "", ""},
	} {
		got, ok := parseDate(tc.in, tc.search)
		if tc.lo == "" {
			if ok {
				t.Errorf("parseDate(%q) = %v, want invalid", tc.in, got)
			}
			continue
		}
		want := dateRange{utc(tc.lo), utc(tc.hi)}
		if !ok || !got.lo.Equal(want.lo) || !got.hi.Equal(want.hi) {
			t.Errorf("parseDate(%q) = [%v, %v) %v, want [%v, %v)", tc.in, got.lo, got.hi, ok, want.lo, want.hi)
		}
	}
}

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"Ramón":     "ramon",
		"ÉLODIE":    "elodie",
		"Straße":    "strasse",
		"Łukasz":    "lukasz",
		"Ame\u0301": "ame",   // decomposed accent
		"Ωμέγα":     "ωμέγα", // other scripts are only lower-cased
		"plain":     "plain",
	} {
		if got := fold(in); got != want {
			t.Errorf("fold(%q) = %q, want %q", in, got, want)
		}
	}
}
