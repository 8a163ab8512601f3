package fhir_test

import (
	"slices"
	"testing"

	"github.com/tranchehq/tranche/internal/fhir"
)

func TestResourceTypes(t *testing.T) {
	if !slices.IsSorted(fhir.ResourceTypes) {
		t.Error("ResourceTypes is not sorted")
	}
	if got := len(slices.Compact(slices.Clone(fhir.ResourceTypes))); got != len(fhir.ResourceTypes) {
		t.Errorf("ResourceTypes has duplicates: %d distinct of %d", got, len(fhir.ResourceTypes))
	}
	// R4 has 145 resource types plus Parameters.
	if got, want := len(fhir.ResourceTypes), 146; got != want {
		t.Errorf("len(ResourceTypes) = %d, want %d", got, want)
	}
}

func TestIsResourceType(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"Patient", true},
		{"ExplanationOfBenefit", true},
		{"MedicinalProductUndesirableEffect", true},
		{"Parameters", true},
		{"VisionPrescription", true},
		{"patient", false},
		{"", false},
		{"Resource", false},
		{"DomainResource", false},
		{"DeviceUsage", false},      // R5 name
		{"ProcedureRequest", false}, // STU3 name
	} {
		if got := fhir.IsResourceType(tc.in); got != tc.want {
			t.Errorf("IsResourceType(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
