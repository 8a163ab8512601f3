package search_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir/defs"
	"github.com/tranchehq/tranche/internal/search"
)

// TestEngine_Match pins, per release, facts of its definitions that a
// query relies on: the types and parameters it has, and the element paths
// and shapes they select.
func TestEngine_Match(t *testing.T) {
	const (
		medOrder = `{"resourceType":"MedicationOrder","id":"m","status":"active","patient":{"reference":"Patient/1"},` +
			`"medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"308192"}]}}`
		obsDateTime = `{"resourceType":"Observation","id":"o1","status":"final","effectiveDateTime":"2024-03-05"}`
		obsPeriod   = `{"resourceType":"Observation","id":"o2","status":"final","effectivePeriod":{"start":"2024-03-01","end":"2024-03-10"}}`
		obsInstant  = `{"resourceType":"Observation","id":"o3","status":"final","effectiveInstant":"2024-03-05T10:00:00Z"}`
		// STU3 Condition.clinicalStatus is a code; R4 made it a
		// CodeableConcept.
		condSTU3 = `{"resourceType":"Condition","id":"c","clinicalStatus":"active","subject":{"reference":"Patient/1"}}`
		condR4   = `{"resourceType":"Condition","id":"c","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"subject":{"reference":"Patient/1"}}`
		// R5 MedicationStatement.medication is a CodeableReference.
		medStmtR5 = `{"resourceType":"MedicationStatement","id":"s","status":"recorded","subject":{"reference":"Patient/1"},` +
			`"medication":{"concept":{"coding":[{"code":"308192"}]},"reference":{"reference":"Medication/med1"}}}`
		medStmtR4 = `{"resourceType":"MedicationStatement","id":"s","status":"active","subject":{"reference":"Patient/1"},` +
			`"medicationCodeableConcept":{"coding":[{"code":"308192"}]}}`
		patient = `{"resourceType":"Patient","id":"p","telecom":[{"system":"phone","value":"555"},{"system":"email","value":"a@b.org"}]}`
		// composed-of selects relatedArtifact.where(type='composed-of').resource:
		// a filter part way along the path.
		plan = `{"resourceType":"PlanDefinition","id":"pd","status":"active","relatedArtifact":[` +
			`{"type":"depends-on","resource":"http://example.org/fhir/PlanDefinition/x"},` +
			`{"type":"composed-of","resource":"http://example.org/fhir/PlanDefinition/y"}]}`
	)
	for _, tc := range []struct {
		v     defs.Version
		query string
		body  string
		want  bool
	}{
		{defs.DSTU2, "MedicationOrder?patient=Patient/1", medOrder, true},
		{defs.DSTU2, "MedicationOrder?patient=Patient/2", medOrder, false},
		{defs.DSTU2, "MedicationOrder?patient:Patient=1", medOrder, true},
		{defs.DSTU2, "MedicationOrder?status=active", medOrder, true},
		{defs.DSTU2, "MedicationOrder?status=stopped", medOrder, false},
		{defs.DSTU2, "MedicationOrder?code=308192", medOrder, true},
		{defs.DSTU2, "MedicationOrder?patient:missing=false&status:not=stopped", medOrder, true},
		// DSTU2 Observation.date reads effectiveDateTime and effectivePeriod;
		// effective[x] has an instant variant from R4 on.
		{defs.DSTU2, "Observation?date=2024-03", obsDateTime, true},
		{defs.DSTU2, "Observation?date=2024-03", obsPeriod, true},
		{defs.DSTU2, "Observation?date=2024-03", obsInstant, false},
		{defs.DSTU2, "Observation?date=2024-04", obsPeriod, false},
		{defs.STU3, "Observation?date=2024-03", obsInstant, false},
		{defs.R4, "Observation?date=2024-03", obsInstant, true},
		{defs.DSTU2, "Patient?email=a@b.org", patient, true},
		{defs.DSTU2, "Patient?email=555", patient, false},
		{defs.DSTU2, "Patient?phone=555", patient, true},
		{defs.STU3, "Condition?clinical-status=active", condSTU3, true},
		{defs.STU3, "Condition?clinical-status=resolved", condSTU3, false},
		{defs.STU3, "Condition?clinical-status:not=active", condSTU3, false},
		{defs.STU3, "Condition?patient=Patient/1", condSTU3, true},
		{defs.R4, "Condition?clinical-status=active", condR4, true},
		{defs.R4, "Condition?clinical-status=http://terminology.hl7.org/CodeSystem/condition-clinical|active", condR4, true},
		{defs.R5, "MedicationStatement?subject=Patient/1", medStmtR5, true},
		{defs.R5, "MedicationStatement?subject=Patient/2", medStmtR5, false},
		{defs.R5, "MedicationStatement?patient=1", medStmtR5, true},
		{defs.R5, "MedicationStatement?code=308192", medStmtR5, true},
		{defs.R5, "MedicationStatement?medication=Medication/med1", medStmtR5, true},
		{defs.R5, "MedicationStatement?code=308192", medStmtR4, false}, // an R4 shape
		{defs.R4, "MedicationStatement?code=308192", medStmtR4, true},
		{defs.R4, "MedicationStatement?code=308192", medStmtR5, false},
		{defs.R4, "PlanDefinition?composed-of=PlanDefinition/y", plan, true},
		{defs.R4, "PlanDefinition?composed-of=PlanDefinition/x", plan, false},
		{defs.R4, "PlanDefinition?depends-on=PlanDefinition/x", plan, true},
		{defs.R4, "PlanDefinition?derived-from:missing=true", plan, true},
		{defs.R4, "PlanDefinition?composed-of:missing=false", plan, true},
		{defs.R5, "PlanDefinition?composed-of=PlanDefinition/y", plan, true},
		{defs.STU3, "PlanDefinition?composed-of=PlanDefinition/x", plan, false},
	} {
		f, err := search.For(tc.v).Parse(tc.query)
		if err != nil {
			t.Errorf("%s Parse(%q) error: %v", tc.v, tc.query, err)
			continue
		}
		if got := f.Match([]byte(tc.body)); got != tc.want {
			t.Errorf("%s Parse(%q).Match(%s) = %v, want %v", tc.v, tc.query, tc.body, got, tc.want)
		}
	}
}

func TestEngine_ParseErrors(t *testing.T) {
	for _, tc := range []struct {
		v                    defs.Version
		query, code, mention string
	}{
		{defs.DSTU2, "MedicationRequest?status=active", bulk.EINVALID, `"MedicationRequest" is not a FHIR DSTU2 resource type`},
		{defs.DSTU2, "MedicationStatement?subject=Patient/1", bulk.EUNSUPPORTED, `"subject"`}, // DSTU2 has patient
		{defs.DSTU2, "MedicationOrder?_source=x", bulk.EUNSUPPORTED, `"_source"`},             // new in R4
		{defs.DSTU2, "MedicationOrder?patient=MedicationRequest/1", bulk.EINVALID, `"patient"`},
		{defs.DSTU2, "Observation?subject:MedicationRequest=1", bulk.EUNSUPPORTED, ":MedicationRequest"},
		{defs.STU3, "MedicationOrder?status=active", bulk.EINVALID, `"MedicationOrder" is not a FHIR STU3 resource type`},
		{defs.R4, "MedicationOrder?status=active", bulk.EINVALID, `"MedicationOrder" is not a FHIR R4 resource type`},
		{defs.R4, "Observation?subject:MedicationOrder=1", bulk.EUNSUPPORTED, ":MedicationOrder"},
		{defs.R5, "MedicationOrder?status=active", bulk.EINVALID, "FHIR R5"},
		{defs.R5, "Patient?_in=List/1", bulk.EUNSUPPORTED, `"_in"`},
		{defs.R5, "Patient?phonetic=smith", bulk.EUNSUPPORTED, `"phonetic"`},
		{defs.R5, "Observation?code-value-quantity=x$1", bulk.EUNSUPPORTED, "code-value-quantity"},
	} {
		_, err := search.For(tc.v).Parse(tc.query)
		if got := bulk.ErrorCode(err); got != tc.code || !strings.Contains(bulk.ErrorMessage(err), tc.mention) {
			t.Errorf("%s Parse(%q) = %v (%s), want %s mentioning %q", tc.v, tc.query, err, got, tc.code, tc.mention)
		}
	}
}

func TestEngine_Elements(t *testing.T) {
	const (
		medOrder = `{"resourceType":"MedicationOrder","id":"m","status":"active","patient":{"reference":"Patient/1"},"medicationReference":{"reference":"Medication/x"}}`
		condSTU3 = `{"resourceType":"Condition","id":"c","clinicalStatus":"active","verificationStatus":"confirmed","code":{"text":"x"},"subject":{"reference":"Patient/1"}}`
		condDSTU = `{"resourceType":"Condition","id":"c","clinicalStatus":"active","verificationStatus":"confirmed","code":{"text":"x"},"patient":{"reference":"Patient/1"}}`
		medReqR4 = `{"resourceType":"MedicationRequest","id":"m","status":"active","intent":"order","medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/1"},"authoredOn":"2024"}`
		medReqR5 = `{"resourceType":"MedicationRequest","id":"m","status":"active","intent":"order","medication":{"concept":{"text":"x"}},"subject":{"reference":"Patient/1"},"authoredOn":"2024"}`
		tag      = `"meta":{"tag":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}]}`
	)
	for _, tc := range []struct {
		v          defs.Version
		elements   string
		typ, body  string
		want       string
		wantSubset bool
	}{
		// DSTU2 MedicationOrder: only medication[x] is mandatory, and its
		// variants are kept.
		{defs.DSTU2, "MedicationOrder.id", "MedicationOrder", medOrder,
			`{"resourceType":"MedicationOrder","id":"m",` + tag + `,"medicationReference":{"reference":"Medication/x"}}`, true},
		{defs.DSTU2, "Condition.id", "Condition", condDSTU,
			`{"resourceType":"Condition","id":"c",` + tag + `,"verificationStatus":"confirmed","code":{"text":"x"},"patient":{"reference":"Patient/1"}}`, true},
		{defs.STU3, "Condition.id", "Condition", condSTU3,
			`{"resourceType":"Condition","id":"c",` + tag + `,"subject":{"reference":"Patient/1"}}`, true},
		{defs.R4, "MedicationRequest.id", "MedicationRequest", medReqR4,
			`{"resourceType":"MedicationRequest","id":"m",` + tag + `,"status":"active","intent":"order","medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/1"}}`, true},
		// R5 MedicationRequest.medication is a CodeableReference, not a
		// choice.
		{defs.R5, "MedicationRequest.id", "MedicationRequest", medReqR5,
			`{"resourceType":"MedicationRequest","id":"m",` + tag + `,"status":"active","intent":"order","medication":{"concept":{"text":"x"}},"subject":{"reference":"Patient/1"}}`, true},
		{defs.R4, "MedicationRequest.id", "MedicationRequest", medReqR5,
			`{"resourceType":"MedicationRequest","id":"m",` + tag + `,"status":"active","intent":"order","subject":{"reference":"Patient/1"}}`, true},
		{defs.DSTU2, "Condition.id", "MedicationRequest", medReqR4, medReqR4, false},
	} {
		e, err := search.For(tc.v).ParseElements([]string{tc.elements})
		if err != nil {
			t.Errorf("%s ParseElements(%q) error: %v", tc.v, tc.elements, err)
			continue
		}
		got, ok := e.Subset(tc.typ, []byte(tc.body))
		if string(got) != tc.want || ok != tc.wantSubset {
			t.Errorf("%s ParseElements(%q).Subset(%s)\n got %s, %v\nwant %s, %v", tc.v, tc.elements, tc.body, got, ok, tc.want, tc.wantSubset)
		}
	}

	for _, tc := range []struct {
		v       defs.Version
		entry   string
		mention string // empty: valid
	}{
		{defs.DSTU2, "MedicationOrder.medication", ""},
		{defs.DSTU2, "MedicationRequest.medication", `"MedicationRequest" is not a FHIR DSTU2 resource type`},
		{defs.STU3, "MedicationOrder.id", `"MedicationOrder" is not a FHIR STU3 resource type`},
		{defs.R4, "MedicationOrder.id", `"MedicationOrder" is not a FHIR R4 resource type`},
		{defs.R5, "MedicinalProduct.id", "FHIR R5"},
		{defs.R5, "MedicinalProductDefinition.id", ""},
	} {
		err := search.For(tc.v).CheckElement(tc.entry)
		switch {
		case tc.mention == "" && err != nil:
			t.Errorf("%s CheckElement(%q) error: %v", tc.v, tc.entry, err)
		case tc.mention != "" && (bulk.ErrorCode(err) != bulk.EINVALID || !strings.Contains(bulk.ErrorMessage(err), tc.mention)):
			t.Errorf("%s CheckElement(%q) = %v, want EINVALID mentioning %q", tc.v, tc.entry, err, tc.mention)
		}
	}
}

func TestEngine_Supported(t *testing.T) {
	for _, v := range defs.Versions() {
		sup := search.For(v).Supported()
		if diff := cmp.Diff(defs.For(v).ResourceTypes(), slices.Sorted(maps.Keys(sup))); diff != "" {
			t.Errorf("%s Supported() types differ from the release's (-want +got):\n%s", v, diff)
		}
		for typ, params := range sup {
			for _, p := range params {
				q := typ + "?" + p.Name + ":missing=true"
				if _, err := search.For(v).Parse(q); err != nil {
					t.Errorf("%s Parse(%q) error: %v", v, q, err)
				}
			}
		}
	}
	dstu2 := search.For(defs.DSTU2).Supported()
	if want := (search.Param{Name: "patient", Type: "reference", Definition: "http://hl7.org/fhir/SearchParameter/MedicationOrder-patient"}); !slices.Contains(dstu2["MedicationOrder"], want) {
		t.Errorf("DSTU2 Supported()[MedicationOrder] lacks %+v", want)
	}
	if _, ok := dstu2["MedicationRequest"]; ok {
		t.Error("DSTU2 Supported() lists MedicationRequest")
	}
	if want := (search.Param{Name: "clinical-status", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/Condition-clinical-status"}); !slices.Contains(search.For(defs.STU3).Supported()["Condition"], want) {
		t.Errorf("STU3 Supported()[Condition] lacks %+v", want)
	}
	// The package-level functions are the R4 engine's.
	if diff := cmp.Diff(search.For(defs.R4).Supported(), search.Supported()); diff != "" {
		t.Errorf("Supported() differs from For(R4).Supported() (-R4 +package):\n%s", diff)
	}
}

func TestEngine_ParseAll(t *testing.T) {
	e := search.For(defs.DSTU2)
	s, err := e.ParseAll([]string{"MedicationOrder%3Fstatus%3Dactive%2Cstopped,Condition%3Fpatient%3DPatient/1", "MedicationOrder?patient=Patient/1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Types(), []string{"Condition", "MedicationOrder"}; !slices.Equal(got, want) {
		t.Errorf("DSTU2 ParseAll types = %q, want %q", got, want)
	}
	got, err := e.Canonical("MedicationOrder%3Fstatus%3Dactive%2Cstopped,Condition%3Fpatient%3DPatient%2F1")
	if want := []string{"MedicationOrder?status=active,stopped", "Condition?patient=Patient/1"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("DSTU2 Canonical = %q, %v; want %q", got, err, want)
	}
	if _, err := search.ParseAll([]string{"MedicationOrder?status=active"}); bulk.ErrorCode(err) != bulk.EINVALID {
		t.Errorf("ParseAll(MedicationOrder?…) = %v, want EINVALID (R4)", err)
	}
	if _, err := search.For(defs.R5).Canonical("MedicationOrder?status=active"); bulk.ErrorCode(err) != bulk.EINVALID {
		t.Errorf("R5 Canonical(MedicationOrder?…) = %v, want EINVALID", err)
	}
}
