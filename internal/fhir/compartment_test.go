package fhir

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/fhir/defs"
)

// r4PatientCompartmentParams is the param list of every resource in the R4
// (4.0.1) CompartmentDefinition/patient that has one, transcribed
// independently of the table so that a typo in either shows.
var r4PatientCompartmentParams = map[string][]string{
	"Account":                     {"subject"},
	"AdverseEvent":                {"subject"},
	"AllergyIntolerance":          {"patient", "recorder", "asserter"},
	"Appointment":                 {"actor"},
	"AppointmentResponse":         {"actor"},
	"AuditEvent":                  {"patient"},
	"Basic":                       {"patient", "author"},
	"BodyStructure":               {"patient"},
	"CarePlan":                    {"patient", "performer"},
	"CareTeam":                    {"patient", "participant"},
	"ChargeItem":                  {"subject"},
	"Claim":                       {"patient", "payee"},
	"ClaimResponse":               {"patient"},
	"ClinicalImpression":          {"subject"},
	"Communication":               {"subject", "sender", "recipient"},
	"CommunicationRequest":        {"subject", "sender", "recipient", "requester"},
	"Composition":                 {"subject", "author", "attester"},
	"Condition":                   {"patient", "asserter"},
	"Consent":                     {"patient"},
	"Coverage":                    {"policy-holder", "subscriber", "beneficiary", "payor"},
	"CoverageEligibilityRequest":  {"patient"},
	"CoverageEligibilityResponse": {"patient"},
	"DetectedIssue":               {"patient"},
	"DeviceRequest":               {"subject", "performer"},
	"DeviceUseStatement":          {"subject"},
	"DiagnosticReport":            {"subject"},
	"DocumentManifest":            {"subject", "author", "recipient"},
	"DocumentReference":           {"subject", "author"},
	"Encounter":                   {"patient"},
	"EnrollmentRequest":           {"subject"},
	"EpisodeOfCare":               {"patient"},
	"ExplanationOfBenefit":        {"patient", "payee"},
	"FamilyMemberHistory":         {"patient"},
	"Flag":                        {"patient"},
	"Goal":                        {"patient"},
	"Group":                       {"member"},
	"ImagingStudy":                {"patient"},
	"Immunization":                {"patient"},
	"ImmunizationEvaluation":      {"patient"},
	"ImmunizationRecommendation":  {"patient"},
	"Invoice":                     {"subject", "patient", "recipient"},
	"List":                        {"subject", "source"},
	"MeasureReport":               {"patient"},
	"Media":                       {"subject"},
	"MedicationAdministration":    {"patient", "performer", "subject"},
	"MedicationDispense":          {"subject", "patient", "receiver"},
	"MedicationRequest":           {"subject"},
	"MedicationStatement":         {"subject"},
	"MolecularSequence":           {"patient"},
	"NutritionOrder":              {"patient"},
	"Observation":                 {"subject", "performer"},
	"Patient":                     {"link"},
	"Person":                      {"patient"},
	"Procedure":                   {"patient", "performer"},
	"Provenance":                  {"patient"},
	"QuestionnaireResponse":       {"subject", "author"},
	"RelatedPerson":               {"patient"},
	"RequestGroup":                {"subject", "participant"},
	"ResearchSubject":             {"individual"},
	"RiskAssessment":              {"subject"},
	"Schedule":                    {"actor"},
	"ServiceRequest":              {"subject", "performer"},
	"Specimen":                    {"subject"},
	"SupplyDelivery":              {"patient"},
	"SupplyRequest":               {"subject"},
	"VisionPrescription":          {"patient"},
}

// TestPatientCompartmentTable pins the R4 compartment the generated
// definitions give against the CompartmentDefinition's parameter list,
// transcribed above.
func TestPatientCompartmentTable(t *testing.T) {
	got := map[string][]string{}
	for _, typ := range defs.For(defs.R4).Types {
		if typ.Compartment == nil {
			continue
		}
		if !IsResourceType(typ.Name) {
			t.Errorf("the compartment has unknown type %q", typ.Name)
		}
		for _, p := range typ.Compartment {
			got[typ.Name] = append(got[typ.Name], p.Name)
			if len(p.Paths) == 0 {
				t.Errorf("compartment %q param %q has no path", typ.Name, p.Name)
			}
		}
	}
	if diff := cmp.Diff(r4PatientCompartmentParams, got); diff != "" {
		t.Errorf("compartment params mismatch (-want +got):\n%s", diff)
	}
}

func TestPatientCompartmentTypes(t *testing.T) {
	if !slices.IsSorted(PatientCompartmentTypes) {
		t.Error("PatientCompartmentTypes is not sorted")
	}
	want := make([]string, 0, len(r4PatientCompartmentParams))
	for typ := range r4PatientCompartmentParams {
		want = append(want, typ)
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, PatientCompartmentTypes); diff != "" {
		t.Errorf("PatientCompartmentTypes mismatch (-want +got):\n%s", diff)
	}
	for _, typ := range []string{"Patient", "Observation", "Group", "Provenance"} {
		if _, ok := slices.BinarySearch(PatientCompartmentTypes, typ); !ok {
			t.Errorf("PatientCompartmentTypes lacks %s", typ)
		}
	}
	for _, typ := range []string{"Practitioner", "Organization", "Device", "Medication", "Location", "Task"} {
		if _, ok := slices.BinarySearch(PatientCompartmentTypes, typ); ok {
			t.Errorf("PatientCompartmentTypes has %s", typ)
		}
	}
}

// nest builds the JSON of a resource of type typ holding leaf at path. With
// arrays, every element on the way is a one-element array.
func nest(typ, path string, leaf any, arrays bool) []byte {
	segs := strings.Split(path, ".")
	v := leaf
	for i := len(segs) - 1; i >= 0; i-- {
		if arrays {
			v = []any{v}
		}
		v = map[string]any{segs[i]: v}
	}
	m := v.(map[string]any)
	m["resourceType"] = typ
	m["id"] = "r1"
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// TestPatientCompartmentEveryPath checks that each path in the table is
// walked, as a single element and across arrays.
func TestPatientCompartmentEveryPath(t *testing.T) {
	for _, v := range defs.Versions() {
		m := ModelFor(v)
		for _, dt := range m.Defs().Types {
			typ := dt.Name
			for _, p := range dt.Compartment {
				for _, path := range p.Paths {
					for _, arrays := range []bool{false, true} {
						body := nest(typ, path, map[string]any{"reference": "Patient/p9"}, arrays)
						want := []string{"p9"}
						if typ == "Patient" {
							want = []string{"p9", "r1"}
						}
						if diff := cmp.Diff(want, m.PatientCompartment(typ, "r1", body)); diff != "" {
							t.Errorf("%s PatientCompartment(%s, r1, %s) mismatch (-want +got):\n%s", m.Name, typ, body, diff)
						}
						body = nest(typ, path, map[string]any{"reference": "Practitioner/p9"}, arrays)
						if got := m.PatientCompartment(typ, "r1", body); typ != "Patient" && got != nil {
							t.Errorf("PatientCompartment(%s, r1, %s) = %q, want nil", typ, body, got)
						}
					}
				}
			}
		}
	}
}

func TestPatientCompartment(t *testing.T) {
	for _, tc := range []struct {
		name, typ, id, body string
		want                []string
	}{
		{
			name: "ObservationSubjectAndPerformer",
			typ:  "Observation", id: "o1",
			body: `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"performer":[{"reference":"Practitioner/d1"},{"reference":"Patient/p2"},{"reference":"Patient/p1"}]}`,
			want: []string{"p1", "p2"},
		},
		{
			name: "ObservationGroupSubject",
			typ:  "Observation", id: "o1",
			body: `{"resourceType":"Observation","id":"o1","subject":{"reference":"Group/g1"}}`,
		},
		{
			name: "EncounterPatientIsSubject",
			typ:  "Encounter", id: "e1",
			body: `{"resourceType":"Encounter","id":"e1","subject":{"reference":"Patient/p1"},"participant":[{"individual":{"reference":"Patient/p2"}}]}`,
			want: []string{"p1"},
		},
		{
			name: "ClaimPatientAndPayee",
			typ:  "Claim", id: "c1",
			body: `{"resourceType":"Claim","id":"c1","patient":{"reference":"Patient/p1"},"payee":{"type":{"text":"x"},"party":{"reference":"https://h/fhir/Patient/p2/_history/3"}},"provider":{"reference":"Patient/p3"}}`,
			want: []string{"p1", "p2"},
		},
		{
			name: "ExplanationOfBenefitIgnoresContained",
			typ:  "ExplanationOfBenefit", id: "x1",
			body: `{"resourceType":"ExplanationOfBenefit","id":"x1","contained":[{"resourceType":"Coverage","id":"c","beneficiary":{"reference":"Patient/p9"}}],"patient":{"reference":"Patient/p1"},"referral":{"reference":"#c"}}`,
			want: []string{"p1"},
		},
		{
			name: "CareTeamSubjectAndMembers",
			typ:  "CareTeam", id: "t1",
			body: `{"resourceType":"CareTeam","id":"t1","subject":{"reference":"Patient/p1"},"participant":[{"member":{"reference":"Patient/p2"}},{"member":{"reference":"urn:uuid:p3"}},{"member":{"reference":"Practitioner/d1"}}]}`,
			want: []string{"p1", "p2"},
		},
		{
			name: "ProvenanceTarget",
			typ:  "Provenance", id: "v1",
			body: `{"resourceType":"Provenance","id":"v1","target":[{"reference":"Observation/o1"},{"reference":"Patient/p1"}],"agent":[{"who":{"reference":"Patient/p2"}}]}`,
			want: []string{"p1"},
		},
		{
			name: "AuditEventAgentAndEntity",
			typ:  "AuditEvent", id: "a1",
			body: `{"resourceType":"AuditEvent","id":"a1","agent":[{"who":{"reference":"Patient/p1"}},{"who":{"identifier":{"value":"p5"}}}],"entity":[{"what":{"reference":"Patient/p2"}}]}`,
			want: []string{"p1", "p2"},
		},
		{
			name: "CarePlanActivityDetailPerformer",
			typ:  "CarePlan", id: "cp",
			body: `{"resourceType":"CarePlan","id":"cp","subject":{"reference":"Patient/p1"},"activity":[{"detail":{"performer":[{"reference":"Patient/p2"}]}},{"detail":{"performer":[{"reference":"Patient/p3"},{"reference":"Organization/o"}]}}]}`,
			want: []string{"p1", "p2", "p3"},
		},
		{
			name: "AppointmentParticipantActor",
			typ:  "Appointment", id: "ap",
			body: `{"resourceType":"Appointment","id":"ap","participant":[{"actor":{"reference":"Patient/p1"}},{"actor":{"reference":"Location/l1"}}]}`,
			want: []string{"p1"},
		},
		{
			name: "ProcedurePerformerActor",
			typ:  "Procedure", id: "pr",
			body: `{"resourceType":"Procedure","id":"pr","subject":{"reference":"Patient/p1"},"performer":[{"actor":{"reference":"Patient/p2"}}]}`,
			want: []string{"p1", "p2"},
		},
		{
			name: "CompositionAttesterParty",
			typ:  "Composition", id: "co",
			body: `{"resourceType":"Composition","id":"co","attester":[{"mode":"legal","party":{"reference":"Patient/p1"}}]}`,
			want: []string{"p1"},
		},
		{
			name: "PersonLinkTarget",
			typ:  "Person", id: "pe",
			body: `{"resourceType":"Person","id":"pe","link":[{"target":{"reference":"Patient/p1"}},{"target":{"reference":"RelatedPerson/r1"}}]}`,
			want: []string{"p1"},
		},
		{
			name: "PatientOwnAndLinked",
			typ:  "Patient", id: "p1",
			body: `{"resourceType":"Patient","id":"p1","link":[{"other":{"reference":"Patient/p0"},"type":"replaces"},{"other":{"reference":"RelatedPerson/r"},"type":"seealso"}],"generalPractitioner":[{"reference":"Practitioner/d"}]}`,
			want: []string{"p0", "p1"},
		},
		{
			name: "GroupMembers",
			typ:  "Group", id: "g1",
			body: `{"resourceType":"Group","id":"g1","member":[{"entity":{"reference":"Patient/p2"}},{"entity":{"reference":"Patient/p1"}}]}`,
			want: []string{"p1", "p2"},
		},
		{
			name: "NotInCompartment",
			typ:  "Practitioner", id: "d1",
			body: `{"resourceType":"Practitioner","id":"d1","subject":{"reference":"Patient/p1"}}`,
		},
		{
			name: "DeviceHasNoParam",
			typ:  "Device", id: "d1",
			body: `{"resourceType":"Device","id":"d1","patient":{"reference":"Patient/p1"}}`,
		},
		{
			name: "WrongShapes",
			typ:  "Observation", id: "o1",
			body: `{"resourceType":"Observation","id":"o1","subject":"Patient/p1","performer":[1,"x",null,{"reference":7}]}`,
		},
		{
			name: "EscapedReference",
			typ:  "Observation", id: "o1",
			body: `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient\/p1"}}`,
			want: []string{"p1"},
		},
		{
			name: "InvalidJSON",
			typ:  "Observation", id: "o1",
			body: `{"resourceType":"Observation","subject":`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PatientCompartment(tc.typ, tc.id, []byte(tc.body))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("PatientCompartment(%s, %s, %s) mismatch (-want +got):\n%s", tc.typ, tc.id, tc.body, diff)
			}
		})
	}
}

func TestPatientCompartmentDoesNotAliasBody(t *testing.T) {
	body := []byte(`{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`)
	got := PatientCompartment("Observation", "o1", body)
	for i := range body {
		body[i] = 'x'
	}
	if diff := cmp.Diff([]string{"p1"}, got); diff != "" {
		t.Errorf("PatientCompartment result changed with body (-want +got):\n%s", diff)
	}
}

func TestGroupMembers(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{
			name: "PatientsSortedDistinct",
			body: `{"resourceType":"Group","id":"g","member":[{"entity":{"reference":"Patient/b"}},{"entity":{"reference":"Patient/a"}},{"entity":{"reference":"https://h/Patient/b"}}]}`,
			want: []string{"a", "b"},
		},
		{
			name: "OtherMembersAndForms",
			body: `{"resourceType":"Group","id":"g","member":[{"entity":{"reference":"Practitioner/d"}},{"entity":{"reference":"Group/g2"}},{"entity":{"reference":"urn:uuid:u"}},{"entity":{"reference":"#c"}},{"entity":{"identifier":{"value":"x"}}},{"entity":{"reference":"Patient/ok"}}]}`,
			want: []string{"ok"},
		},
		{name: "NoMembers", body: `{"resourceType":"Group","id":"g","actual":false}`},
		{
			name: "InactiveMembersLeftOut",
			body: `{"resourceType":"Group","id":"g","member":[{"entity":{"reference":"Patient/gone"},"inactive":true},{"entity":{"reference":"Patient/here"},"inactive":false}]}`,
			want: []string{"here"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, GroupMembers([]byte(tc.body))); diff != "" {
				t.Errorf("GroupMembers(%s) mismatch (-want +got):\n%s", tc.body, diff)
			}
		})
	}
}

// syntheaLine returns the first line of synthea-100's typ file, or skips.
func syntheaLine(b *testing.B, typ string) []byte {
	path := filepath.Join("..", "..", "..", "shared", "data", "synthea-100", typ+".ndjson.gz")
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		b.Skipf("synthea-100 sample data not found at %s (it lives in ../shared beside the repository)", path)
	} else if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		b.Fatal(err)
	}
	r := bufio.NewReaderSize(zr, 1<<20)
	line, err := r.ReadBytes('\n')
	if err != nil {
		b.Fatal(err)
	}
	return line
}

func benchmarkPatientCompartment(b *testing.B, typ string) {
	body := syntheaLine(b, typ)
	if ids := PatientCompartment(typ, "", body); len(ids) == 0 {
		b.Fatalf("PatientCompartment(%s, first line of synthea-100) = nil, want a Patient", typ)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		PatientCompartment(typ, "x", body)
	}
}

func BenchmarkPatientCompartmentObservation(b *testing.B) {
	benchmarkPatientCompartment(b, "Observation")
}

func BenchmarkPatientCompartmentExplanationOfBenefit(b *testing.B) {
	benchmarkPatientCompartment(b, "ExplanationOfBenefit")
}
