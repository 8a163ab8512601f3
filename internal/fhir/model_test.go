package fhir

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/fhir/defs"
)

// TestModels pins facts of each release's definitions as the Model applies
// them (issue 17): the types, and who a resource's compartment is.
func TestModels(t *testing.T) {
	for _, tc := range []struct {
		v         defs.Version
		typ, body string
		want      []string // the compartment; nil: none
		inExport  bool
	}{
		{defs.DSTU2, "MedicationOrder", `{"resourceType":"MedicationOrder","patient":{"reference":"Patient/p1"}}`, []string{"p1"}, true},
		{defs.DSTU2, "Condition", `{"resourceType":"Condition","patient":{"reference":"Patient/p1"},"subject":{"reference":"Patient/p2"}}`, []string{"p1"}, true},
		{defs.DSTU2, "Encounter", `{"resourceType":"Encounter","patient":{"reference":"Patient/p1"}}`, []string{"p1"}, true},
		{defs.STU3, "Condition", `{"resourceType":"Condition","subject":{"reference":"Patient/p1"}}`, []string{"p1"}, true},
		// STU3 Device has a patient search parameter, but the
		// CompartmentDefinition lists Device without one.
		{defs.STU3, "Device", `{"resourceType":"Device","patient":{"reference":"Patient/p1"}}`, nil, false},
		{defs.R4, "MedicationRequest", `{"resourceType":"MedicationRequest","subject":{"reference":"Patient/p1"}}`, []string{"p1"}, true},
		{defs.R5, "MedicationStatement", `{"resourceType":"MedicationStatement","subject":{"reference":"Patient/p1"}}`, []string{"p1"}, true},
	} {
		m := ModelFor(tc.v)
		if !m.IsResourceType(tc.typ) {
			t.Errorf("%s: %s is not a resource type", m.Name, tc.typ)
		}
		if diff := cmp.Diff(tc.want, m.PatientCompartment(tc.typ, "x", []byte(tc.body))); diff != "" {
			t.Errorf("%s %s compartment mismatch (-want +got):\n%s", m.Name, tc.typ, diff)
		}
		if got := m.IsPatientExportType(tc.typ); got != tc.inExport {
			t.Errorf("%s IsPatientExportType(%s) = %v, want %v", m.Name, tc.typ, got, tc.inExport)
		}
	}
	for _, tc := range []struct {
		v   defs.Version
		typ string
	}{{defs.DSTU2, "MedicationRequest"}, {defs.R4, "MedicationOrder"}, {defs.STU3, "MedicationOrder"}} {
		if ModelFor(tc.v).IsResourceType(tc.typ) {
			t.Errorf("%s has %s", tc.v, tc.typ)
		}
	}
	// References parse whatever the release: a DSTU2 store's
	// MedicationOrder/1 is a reference.
	if typ, id, ok := ParseReference("MedicationOrder/1"); !ok || typ != "MedicationOrder" || id != "1" {
		t.Errorf("ParseReference(MedicationOrder/1) = %q, %q, %v", typ, id, ok)
	}
}
