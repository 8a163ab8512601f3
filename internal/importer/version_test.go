package importer_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/fhir/defs"
	"github.com/tranchehq/tranche/internal/importer"
	"github.com/tranchehq/tranche/internal/mem"
)

// TestImportFHIRVersion: a store holds one FHIR release; the first import
// records the one its data is written in, and data of another is refused,
// naming both, before anything is written (issue 17).
func TestImportFHIRVersion(t *testing.T) {
	ctx := context.Background()
	write := func(t *testing.T, name string, lines ...string) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dstu2 := write(t, "dstu2.ndjson",
		`{"resourceType":"Patient","id":"p1"}`,
		`{"resourceType":"Condition","id":"c1","patient":{"reference":"Patient/p1"},"code":{"text":"x"},"verificationStatus":"confirmed"}`,
		`{"resourceType":"MedicationOrder","id":"m1","patient":{"reference":"Patient/p1"},"medicationCodeableConcept":{"text":"x"}}`)
	r4 := write(t, "r4.ndjson",
		`{"resourceType":"MedicationRequest","id":"m2","status":"active","intent":"order","subject":{"reference":"Patient/p1"},"medicationCodeableConcept":{"text":"x"}}`)
	stu3 := write(t, "stu3.ndjson",
		`{"resourceType":"Condition","id":"c2","subject":{"reference":"Patient/p1"},"clinicalStatus":"active","verificationStatus":"confirmed"}`)

	t.Run("detected and recorded", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			want string
		}{{dstu2, "dstu2"}, {stu3, "stu3"}, {r4, "r4"}} {
			s := mem.NewResourceStore(2)
			if _, err := importer.Import(ctx, s, importer.Options{}, tc.path); err != nil {
				t.Fatalf("Import(%s): %v", tc.path, err)
			}
			if v, _ := s.FHIRVersion(ctx); v != tc.want {
				t.Errorf("Import(%s) recorded %q, want %q", filepath.Base(tc.path), v, tc.want)
			}
		}
	})
	t.Run("the release's compartment", func(t *testing.T) {
		s := mem.NewResourceStore(2)
		if _, err := importer.Import(ctx, s, importer.Options{}, dstu2); err != nil {
			t.Fatal(err)
		}
		for _, ref := range []bulk.Ref{{Type: "Condition", ID: "c1"}, {Type: "MedicationOrder", ID: "m1"}} {
			r, err := s.Get(ctx, ref.Type, ref.ID)
			if err != nil || len(r.Patients) != 1 || r.Patients[0] != "p1" {
				t.Errorf("%s/%s Patients = %v (%v), want [p1]: DSTU2 links it by patient", ref.Type, ref.ID, r, err)
			}
		}
	})
	t.Run("another release is refused before writing", func(t *testing.T) {
		s := mem.NewResourceStore(2)
		if _, err := importer.Import(ctx, s, importer.Options{}, dstu2); err != nil {
			t.Fatal(err)
		}
		before, _ := s.Count(ctx)
		_, err := importer.Import(ctx, s, importer.Options{}, r4)
		if bulk.ErrorCode(err) != bulk.EINVALID || !strings.Contains(err.Error(), "DSTU2") || !strings.Contains(err.Error(), "R4") {
			t.Fatalf("R4 data into a DSTU2 store: %v, want EINVALID naming both", err)
		}
		after, _ := s.Count(ctx)
		if after["MedicationRequest"] != 0 || after["MedicationOrder"] != before["MedicationOrder"] {
			t.Errorf("counts %v after a refused import, want %v", after, before)
		}
		_, err = importer.Import(ctx, s, importer.Options{FHIR: fhir.ModelFor(defs.R4)}, r4)
		if bulk.ErrorCode(err) != bulk.ECONFLICT {
			t.Errorf("--fhir-version r4 on a DSTU2 store: %v, want ECONFLICT", err)
		}
	})
	t.Run("asked for", func(t *testing.T) {
		s := mem.NewResourceStore(2)
		_, err := importer.Import(ctx, s, importer.Options{FHIR: fhir.ModelFor(defs.R4)}, dstu2)
		if bulk.ErrorCode(err) != bulk.EINVALID || !strings.Contains(err.Error(), "FHIR DSTU2 data (Condition.patient is not a FHIR R4 element)") {
			t.Fatalf("DSTU2 data imported as R4: %v, want EINVALID naming what gave it away", err)
		}
		if v, _ := s.FHIRVersion(ctx); v != "" {
			t.Errorf("a refused import recorded %q", v)
		}
	})
}
