package search

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tranchehq/tranche/internal/fhir/defs"
)

// TestEngine checks every release's engine: all its parameters compiled,
// every type has the common parameters, and none of the unservable ones
// is listed.
func TestEngine(t *testing.T) {
	for _, v := range defs.Versions() {
		t.Run(string(v), func(t *testing.T) {
			e := For(v)
			if e == nil || e.Version() != v {
				t.Fatalf("For(%s) = %v", v, e)
			}
			if For(v) != e {
				t.Errorf("For(%s) builds a new engine each call", v)
			}
			for _, p := range e.problems {
				t.Errorf("left out: %s", p)
			}
			d := defs.For(v)
			if got, want := len(e.params), len(d.Types); got != want {
				t.Errorf("%d types have parameters, want every one of the %d", got, want)
			}
			common := []string{"_id", "_lastUpdated", "_profile", "_security", "_tag"}
			if v != defs.DSTU2 && v != defs.STU3 {
				common = append(common, "_source") // new in R4
			}
			n := 0
			for _, typ := range d.ResourceTypes() {
				for _, name := range common {
					if e.lookup(typ, name) == nil {
						t.Errorf("%s has no %s", typ, name)
					}
				}
				for name, p := range e.params[typ] {
					n++
					if unservable[name] != "" {
						t.Errorf("%s lists the unservable %s", typ, name)
					}
					if len(p.paths) == 0 {
						t.Errorf("%s %s has no paths", typ, name)
					}
					sp := d.SearchParam(typ, name)
					if sp == nil || p.Definition != sp.URL() || p.Type != sp.Type {
						t.Errorf("%s %s = %+v, not the definition %+v", typ, name, p.Param, sp)
					}
				}
			}
			t.Logf("%d types, %d type/parameter pairs", len(e.params), n)
		})
	}
	if For("r6") != nil {
		t.Error("For(r6) is not nil")
	}
}

// dumpParam renders a compiled parameter as the lines of
// testdata/r4-params.golden: type, name, parameter type, definition, then
// its paths (keys of each step joined by "/", the variants of a step by
// ",", then the target and the where filter).
func dumpParam(typ string, p *param) string {
	var alts []string
	for _, pa := range p.paths {
		all, whereAt := pa.flat()
		var steps []string
		for _, s := range all {
			steps = append(steps, strings.Join(s.keys, ","))
		}
		a := strings.Join(steps, "/")
		if pa.target != "" {
			a += " target=" + pa.target
		}
		if pa.whereKey != "" {
			a += fmt.Sprintf(" where@%d:%s=%s", whereAt, pa.whereKey, pa.whereValue)
		}
		alts = append(alts, a)
	}
	return fmt.Sprintf("%s %s %s %s | %s", typ, p.Name, p.Type, p.Definition, strings.Join(alts, "; "))
}

// readGolden returns the lines of a testdata file, without # comments.
func readGolden(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestR4HandTyped proves that the R4 engine, built from the generated
// definitions, serves every parameter that the hand-typed R4 table did
// (params.go until issue 17) with the same type, definition and compiled
// paths, and keeps for _elements the same mandatory and choice elements
// (mandatory.go). testdata/r4-*.golden are those tables, compiled and
// written out by the old code before it was removed. The types the table
// covered have exactly the parameters they had; the others gained theirs.
func TestR4HandTyped(t *testing.T) {
	e := For(defs.R4)
	golden := readGolden(t, "r4-params.golden")
	got := make(map[string]string) // "type name" → dump
	for typ, params := range e.params {
		for name, p := range params {
			got[typ+" "+name] = dumpParam(typ, p)
		}
	}
	byType := make(map[string]int)
	for _, line := range golden {
		f := strings.Fields(line)
		key := f[0] + " " + f[1]
		byType[f[0]]++
		if got[key] != line {
			t.Errorf("R4 %s:\n got %q\nwant %q", key, got[key], line)
		}
	}
	covered := 0
	for typ, n := range byType {
		if n > 6 { // more than the common six
			covered++
			if len(e.params[typ]) != n {
				var extra []string
				for name := range e.params[typ] {
					if !slices.Contains(golden, got[typ+" "+name]) {
						extra = append(extra, name)
					}
				}
				t.Errorf("R4 %s has %d parameters, the hand-typed table %d; new: %q", typ, len(e.params[typ]), n, extra)
			}
		}
	}
	if covered != 25 {
		t.Errorf("the hand-typed table covered %d types beyond the common parameters, want 25", covered)
	}
	t.Logf("%d hand-typed pairs, %d now", len(golden), len(got))

	var elems []string
	for _, typ := range defs.For(defs.R4).ResourceTypes() {
		c := slices.Clone(e.choices[typ])
		slices.Sort(c) // the hand-typed MedicationDispense list was not in definition order
		elems = append(elems, fmt.Sprintf("%s | %s | %s", typ, strings.Join(defs.For(defs.R4).Mandatory(typ), " "), strings.Join(c, " ")))
	}
	if diff := cmp.Diff(readGolden(t, "r4-elements.golden"), elems); diff != "" {
		t.Errorf("R4 mandatory elements and top-level choices (-hand-typed +now):\n%s", diff)
	}
}

// TestCompiledPaths pins how definitions' paths become JSON paths: choice
// variants, narrowed casts, where(resolve() is T), where(system=…) and a
// where filter part way along the path, per release.
func TestCompiledPaths(t *testing.T) {
	type compiled struct {
		Keys   [][]string
		Target string
		Where  string
	}
	for _, tc := range []struct {
		v         defs.Version
		typ, name string
		want      []compiled
	}{
		{defs.R4, "Observation", "date", []compiled{{Keys: [][]string{{"effectiveDateTime", "effectivePeriod", "effectiveTiming", "effectiveInstant"}}}}},
		{defs.R4, "Observation", "patient", []compiled{{Keys: [][]string{{"subject"}}, Target: "Patient"}}},
		{defs.R4, "Observation", "value-string", []compiled{
			{Keys: [][]string{{"valueString"}}},
			{Keys: [][]string{{"valueCodeableConcept"}, {"text"}}},
		}},
		{defs.R4, "Observation", "combo-code", []compiled{{Keys: [][]string{{"code"}}}, {Keys: [][]string{{"component"}, {"code"}}}}},
		{defs.R4, "Condition", "onset-date", []compiled{{Keys: [][]string{{"onsetDateTime"}}}, {Keys: [][]string{{"onsetPeriod"}}}}},
		{defs.R4, "Condition", "code", []compiled{{Keys: [][]string{{"code"}}}}},
		{defs.R4, "AllergyIntolerance", "code", []compiled{{Keys: [][]string{{"code"}}}, {Keys: [][]string{{"reaction"}, {"substance"}}}}},
		{defs.R4, "MedicationRequest", "code", []compiled{{Keys: [][]string{{"medicationCodeableConcept"}}}}},
		{defs.R4, "MedicationRequest", "medication", []compiled{{Keys: [][]string{{"medicationReference"}}}}},
		{defs.R4, "Patient", "email", []compiled{{Keys: [][]string{{"telecom"}}, Where: "1:system=email"}}},
		{defs.R4, "Patient", "_lastUpdated", []compiled{{Keys: [][]string{{"meta"}, {"lastUpdated"}}}}},
		{defs.R4, "Encounter", "practitioner", []compiled{{Keys: [][]string{{"participant"}, {"individual"}}, Target: "Practitioner"}}},
		{defs.R4, "DocumentReference", "identifier", []compiled{{Keys: [][]string{{"masterIdentifier"}}}, {Keys: [][]string{{"identifier"}}}}},
		{defs.R4, "Procedure", "date", []compiled{{Keys: [][]string{{"performedDateTime", "performedPeriod", "performedString", "performedAge", "performedRange"}}}}},
		{defs.R4, "PlanDefinition", "composed-of", []compiled{{Keys: [][]string{{"relatedArtifact"}, {"resource"}}, Where: "1:type=composed-of"}}},
		{defs.DSTU2, "Observation", "date", []compiled{{Keys: [][]string{{"effectiveDateTime"}}}, {Keys: [][]string{{"effectivePeriod"}}}}},
		{defs.DSTU2, "MedicationOrder", "patient", []compiled{{Keys: [][]string{{"patient"}}}}},
		{defs.DSTU2, "Patient", "email", []compiled{{Keys: [][]string{{"telecom"}}, Where: "1:system=email"}}},
		{defs.STU3, "Condition", "clinical-status", []compiled{{Keys: [][]string{{"clinicalStatus"}}}}},
		{defs.STU3, "Observation", "date", []compiled{{Keys: [][]string{{"effectiveDateTime", "effectivePeriod"}}}}},
		{defs.R5, "MedicationStatement", "code", []compiled{{Keys: [][]string{{"medication"}, {"concept"}}}}},
		{defs.R5, "MedicationStatement", "subject", []compiled{{Keys: [][]string{{"subject"}}}}},
	} {
		p := For(tc.v).lookup(tc.typ, tc.name)
		if p == nil {
			t.Errorf("%s lookup(%s, %s) = nil", tc.v, tc.typ, tc.name)
			continue
		}
		var got []compiled
		for _, pa := range p.paths {
			c := compiled{Target: pa.target}
			all, whereAt := pa.flat()
			if pa.whereKey != "" {
				c.Where = fmt.Sprintf("%d:%s=%s", whereAt, pa.whereKey, pa.whereValue)
			}
			for _, s := range all {
				c.Keys = append(c.Keys, s.keys)
			}
			got = append(got, c)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s %s %s paths (-want +got):\n%s", tc.v, tc.typ, tc.name, diff)
		}
	}
}

func TestCompilePath_Errors(t *testing.T) {
	typ := &defs.Type{Name: "Observation", Choices: []defs.Choice{
		{Path: "value[x]", Types: []string{"Quantity", "string"}},
		{Path: "odd[x]", Types: []string{"http://hl7.org/fhirpath/System.String"}},
	}}
	if p, err := compilePath(typ, defs.Path{Path: "component.code"}); err != nil || len(p.steps) != 2 || p.rest != nil {
		t.Fatalf("compilePath(component.code) = %+v, %v", p, err)
	}
	for _, p := range []defs.Path{
		{Path: "code[x]"},            // not a choice element
		{Path: "component.value[x]"}, // nor is this one
		{Path: "odd[x]"},             // a variant that is no JSON key
		{Path: "a..b"},
		{Path: ""},
		{Path: "value[y]"},
		{Path: "telecom", WhereKey: "system", WhereValue: "email"},
		{Path: "telecom", WhereAt: "telecom"},
		{Path: "relatedArtifact.resource", WhereAt: "related", WhereKey: "type", WhereValue: "x"},
	} {
		if _, err := compilePath(typ, p); err == nil {
			t.Errorf("compilePath(%+v) succeeded, want an error", p)
		}
	}
}

// TestBriefParameters checks that the parameters bulk export users filter
// by are served for R4 (issue 5, item 1).
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
	e := For(defs.R4)
	for typ, names := range want {
		for _, n := range names {
			if e.lookup(typ, n) == nil {
				t.Errorf("%s has no parameter %s", typ, n)
			}
		}
	}
}

// TestElementTables checks each release's _elements tables: mandatory
// elements are element names, a mandatory choice is a top-level choice.
func TestElementTables(t *testing.T) {
	for _, v := range defs.Versions() {
		e, d := For(v), defs.For(v)
		for _, typ := range d.ResourceTypes() {
			for _, m := range d.Mandatory(typ) {
				if !isElementName(m) {
					t.Errorf("%s %s: mandatory %q is not an element name", v, typ, m)
				}
				if base, ok := strings.CutSuffix(m, "[x]"); ok && !slices.Contains(e.choices[typ], base) {
					t.Errorf("%s %s: mandatory %s is not a top-level choice", v, typ, m)
				}
			}
			for _, c := range e.choices[typ] {
				if !isElementName(c) {
					t.Errorf("%s %s: choice %q is not an element name", v, typ, c)
				}
			}
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

// BenchmarkNewEngine measures what For costs on a release's first use.
func BenchmarkNewEngine(b *testing.B) {
	for _, v := range defs.Versions() {
		b.Run(string(v), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				newEngine(defs.For(v))
			}
		})
	}
}
