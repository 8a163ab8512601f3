package generate_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tranchehq/tranche/internal/generate"
)

// TestStream_GoldenR4 pins the bytes of two small R4 runs, type by type
// (sha256 of each type's NDJSON), so that no change to the generator (a
// new FHIR version, a refactoring, a faster formatter) alters what existing
// seeds produce: tests, benchmarks and demo data elsewhere rely on them. A
// deliberate change of the R4 output updates these hashes and says why.
func TestStream_GoldenR4(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts generate.Options
		want map[string]string
	}{
		{
			name: "Seed7",
			opts: generate.Options{Patients: 60, Seed: 7, Base: base},
			want: map[string]string{
				"AllergyIntolerance":   "221fc2ff8de25586",
				"Claim":                "a7506745da711387",
				"Condition":            "976778245dbad91d",
				"DiagnosticReport":     "7431ba18b40f71e9",
				"Encounter":            "07fe5c162447f428",
				"ExplanationOfBenefit": "610d55319fe03c11",
				"Group":                "120600bc36dc1d5d",
				"Immunization":         "f6be5493d83c84b7",
				"Location":             "cec269500da3f1a7",
				"MedicationRequest":    "2e3cf043beffc0fc",
				"Observation":          "0859bf0ee50c02b4",
				"Organization":         "f0eb510ae082293b",
				"Patient":              "80ca0d39aae404f8",
				"Practitioner":         "e419ebfdb4d38f24",
				"Procedure":            "0d28bfdeb22ed9f9",
			},
		},
		{
			name: "Defaults",
			opts: generate.Options{Patients: 25, Seed: 1, Base: time.Time{}},
			want: map[string]string{
				"AllergyIntolerance":   "798406aad0993eab",
				"Claim":                "3b780c24b0ccca99",
				"Condition":            "8a1f697b0c67d20a",
				"DiagnosticReport":     "26735199604ff10d",
				"Encounter":            "bbfc5db790bd0694",
				"ExplanationOfBenefit": "19c03d936de9579b",
				"Group":                "5313678b28a6ff43",
				"Immunization":         "afd5da73b1a084c2",
				"Location":             "14f85736aa30e168",
				"MedicationRequest":    "10dea2485f6772a7",
				"Observation":          "db966bc391db2438",
				"Organization":         "e36492dcff91afd6",
				"Patient":              "43c090a7f838f65e",
				"Practitioner":         "dd80ff479384e4c6",
				"Procedure":            "677b06fb211271af",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := stream(t, tc.opts)
			got := map[string]string{}
			for _, typ := range generate.Types() {
				sum := sha256.Sum256(p.joined(typ))
				got[typ] = hex.EncodeToString(sum[:8])
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Stream(%+v) per-type sha256 changed (-want +got):\n%s", tc.opts, diff)
			}
		})
	}
}
