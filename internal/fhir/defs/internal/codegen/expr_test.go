package codegen

import (
	"errors"
	"fmt"
	"testing"
)

func segString(segs []seg) string {
	s := ""
	for _, g := range segs {
		switch g.kind {
		case segField:
			s += "." + g.name
		case segCast:
			s += ".as(" + g.name + ")"
		case segResolve:
			s += ".resolve(" + g.name + ")"
		case segWhere:
			s += fmt.Sprintf(".where(%s=%s)", g.key, g.value)
		}
	}
	return s
}

func altsString(alts []alternative) []string {
	var out []string
	for _, a := range alts {
		if a.err != nil {
			out = append(out, a.root+" error")
		} else {
			out = append(out, a.root+segString(a.segs))
		}
	}
	return out
}

func TestParseFHIRPath(t *testing.T) {
	for expr, want := range map[string][]string{
		"Observation.code": {"Observation.code"},
		"Patient.name.family | Practitioner.name.family": {"Patient.name.family", "Practitioner.name.family"},
		"(Observation.value as Quantity)":                {"Observation.value.as(Quantity)"},
		"(Observation.component.value as CodeableConcept).text": {
			"Observation.component.value.as(CodeableConcept).text"},
		"Condition.onset.as(Age) | Condition.onset.as(Range)": {"Condition.onset.as(Age)", "Condition.onset.as(Range)"},
		"(Immunization.occurrence.ofType(dateTime))":          {"Immunization.occurrence.as(dateTime)"},
		"Encounter.subject.where(resolve() is Patient)":       {"Encounter.subject.resolve(Patient)"},
		"Patient.telecom.where(system='email')":               {"Patient.telecom.where(system=email)"},
		"Library.relatedArtifact.where(type='composed-of').resource": {
			"Library.relatedArtifact.where(type=composed-of).resource"},
		"Device.where(x='a|b').y":                 {"Device.where(x=a|b).y"},
		"name | alias":                            {"name", "alias"},
		"Observation":                             {"Observation"},
		"Bundle.entry[0].resource":                {"Bundle error"},
		"Bundle.entry[0].resource as Composition": {"Bundle error"},
		"Patient.deceased.exists() and Patient.deceased != false": {"Patient error"},
		"Condition.abatement.is(dateTime)":                        {"Condition error"},
		"(start | requestedPeriod.start).first()":                 {" error"},
		"Patient.extension('http://example.org/x').value":         {"Patient error"},
		"QuestionnaireResponse.item.where(hasExtension('u')).answer": {
			"QuestionnaireResponse error"},
		"A.b.where(resolve() is Patient).c": {"A error"},
	} {
		got := altsString(parseFHIRPath(expr))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("parseFHIRPath(%q) = %q, want %q", expr, got, want)
		}
	}
}

func TestParseXPath(t *testing.T) {
	for xpath, want := range map[string][]string{
		"f:Observation/f:subject":                                 {"Observation.subject"},
		"f:Condition/f:onsetDateTime | f:Condition/f:onsetPeriod": {"Condition.onsetDateTime", "Condition.onsetPeriod"},
		"f:Patient/f:telecom[system/@value='email']":              {"Patient.telecom.where(system=email)"},
		"f:Bundle/f:entry/f:resource[0]":                          {"Bundle error"},
		"f:Patient/f:extension[@url='http://x']":                  {"Patient error"},
		"f:*/f:id":                                                {" error"},
	} {
		got := altsString(parseXPath(xpath))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("parseXPath(%q) = %q, want %q", xpath, got, want)
		}
	}
}

func testType(t *testing.T) *typeModel {
	t.Helper()
	e := func(path string, types ...string) elementJSON {
		ej := elementJSON{Path: path}
		for _, typ := range types {
			ej.Type = append(ej.Type, typeJSON{Code: typ})
		}
		return ej
	}
	item := e("Observation.item.item")
	item.ContentReference = "#Observation.item"
	ty, err := buildType("Observation", []elementJSON{
		e("Observation"),
		e("Observation.subject", "Reference"),
		e("Observation.value[x]", "Quantity", "string", "dateTime"),
		e("Observation.telecom", "ContactPoint"),
		e("Observation.component", "BackboneElement"),
		e("Observation.component.code", "CodeableConcept"),
		e("Observation.component.value[x]", "Quantity", "CodeableConcept"),
		e("Observation.item", "BackboneElement"),
		e("Observation.item.answer", "string"),
		item,
	})
	if err != nil {
		t.Fatal(err)
	}
	return ty
}

func TestResolve(t *testing.T) {
	ty := testType(t)
	for expr, want := range map[string]string{
		"Observation.subject":                                   "subject",
		"Observation.subject.where(resolve() is Patient)":       "subject →Patient",
		"Observation.value":                                     "value[x]",
		"(Observation.value as Quantity)":                       "valueQuantity",
		"Observation.value.as(DateTime)":                        "valueDateTime",
		"Observation.component.value":                           "component.value[x]",
		"Observation.component.value.ofType(CodeableConcept)":   "component.valueCodeableConcept",
		"(Observation.component.value as CodeableConcept).text": "component.valueCodeableConcept.text",
		"Observation.telecom.where(system='email')":             "telecom [telecom system=email]",
		"Observation.telecom.value":                             "telecom.value",
		"Observation.item.item.answer":                          "item.item.answer",
	} {
		alts := parseFHIRPath(expr)
		if len(alts) != 1 || alts[0].err != nil {
			t.Fatalf("parseFHIRPath(%q) = %+v", expr, alts)
		}
		pm, err := ty.resolve(alts[0].segs)
		got := pm.path
		if pm.target != "" {
			got += " →" + pm.target
		}
		if pm.whereKey != "" {
			got += fmt.Sprintf(" [%s %s=%s]", pm.whereAt, pm.whereKey, pm.whereValue)
		}
		if err != nil || got != want {
			t.Errorf("resolve(%q) = %q, %v; want %q", expr, got, err, want)
		}
	}
	// DSTU2 names choice variants directly.
	alts := parseXPath("f:Observation/f:valueQuantity | f:Observation/f:valueAge")
	if pm, err := ty.resolve(alts[0].segs); err != nil || pm.path != "valueQuantity" {
		t.Errorf("resolve(valueQuantity) = %q, %v", pm.path, err)
	}
	var noElem noElementError
	if _, err := ty.resolve(alts[1].segs); !errors.As(err, &noElem) {
		t.Errorf("resolve(valueAge) = %v, want a noElementError", err)
	}
	for _, expr := range []string{"Observation.nosuch", "Observation.value.as(Period)", "Observation.component.nosuch"} {
		if _, err := ty.resolve(parseFHIRPath(expr)[0].segs); !errors.As(err, &noElem) {
			t.Errorf("resolve(%q) = %v, want a noElementError", expr, err)
		}
	}
	if _, err := ty.resolve(parseFHIRPath("Observation.subject.as(Quantity)")[0].segs); err == nil || errors.As(err, &noElem) {
		t.Errorf("a cast of a non-choice element: %v, want an unsupported error", err)
	}
}
