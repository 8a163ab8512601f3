package generate_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/fhir/defs"
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

var update = flag.Bool("update", false, "rewrite testdata/golden.sha256 from this build's output")

// goldenFile pins every release's output, file by file, in sha256sum's
// format, so that another process (another machine, build, GOMAXPROCS or
// time zone; `tranche generate` as its header says) can check its own run
// against it with sha256sum -c.
const goldenFile = "testdata/golden.sha256"

// goldenOptions is the run goldenFile pins, per release.
func goldenOptions(v defs.Version) generate.Options {
	return generate.Options{Patients: 40, Seed: 7, Base: base, FHIRVersion: v}
}

// TestDir_Golden: the files of a small fixed run of each FHIR release have
// the digests in testdata/golden.sha256 (go test -run TestDir_Golden
// -update rewrites it; a deliberate change of the output says why in its
// commit). The file is the check across processes: a test process
// compares with what an earlier process, on whatever machine, wrote.
func TestDir_Golden(t *testing.T) {
	var got []string
	for _, v := range defs.Versions() {
		dir := filepath.Join(t.TempDir(), string(v))
		if _, err := generate.Dir(context.Background(), goldenOptions(v), dir, nil); err != nil {
			t.Fatalf("Dir(%+v) error: %v", goldenOptions(v), err)
		}
		files, err := filepath.Glob(filepath.Join(dir, "*.ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != len(generate.TypesFor(v)) {
			t.Errorf("%s: %d files, want one per type of TypesFor: %v", v, len(files), generate.TypesFor(v))
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			got = append(got, hex.EncodeToString(sum[:])+"  "+string(v)+"/"+filepath.Base(f))
		}
	}
	slices.SortFunc(got, func(a, b string) int { return strings.Compare(a[66:], b[66:]) })
	if *update {
		head := "# sha256 of generate.Dir's files, Options{Patients: 40, Seed: 7, Base: 2024-06-15T12:30:45.6789Z, FHIRVersion: <dir>}.\n" +
			"# Check another process's run: tranche generate --patients 40 --seed 7 --base 2024-06-15T12:30:45.6789Z --fhir-version r4 --out r4\n" +
			"# (likewise dstu2, stu3, r5), then sha256sum -c --ignore-missing golden.sha256 in their parent directory.\n" +
			"# Rewrite: go test ./internal/generate -run TestDir_Golden -update\n"
		if err := os.WriteFile(goldenFile, []byte(head+strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	raw, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (go test -run TestDir_Golden -update writes it)", err)
	}
	var want []string
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if !strings.HasPrefix(l, "#") {
			want = append(want, l)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("generated files differ from %s (-want +got):\n%s", goldenFile, diff)
	}
}

// TestStream_BaseInstantNotZone: Base counts as an instant, so the same
// instant written in another time zone (a --base with an offset, which
// time.Parse may put in the process's Local zone) gives the same bytes.
// Base's two years back are counted in UTC: in a zone, 1 March 00:00 UTC
// is 28 February 23:00, and two years back a leap day apart.
func TestStream_BaseInstantNotZone(t *testing.T) {
	utc := time.Date(2026, time.March, 1, 0, 0, 0, 0, time.UTC)
	want := digests(t, generate.Options{Patients: 20, Seed: 5, Base: utc})
	for _, loc := range []*time.Location{time.FixedZone("-01:00", -3600), time.FixedZone("+05:30", 5*3600+1800)} {
		opts := generate.Options{Patients: 20, Seed: 5, Base: utc.In(loc)}
		if diff := cmp.Diff(want, digests(t, opts)); diff != "" {
			t.Errorf("Stream(Base %s) differs from Base %s (-utc +zoned):\n%s", opts.Base, utc, diff)
		}
	}
}

// digests is each type's sha256 of a Stream run.
func digests(t *testing.T, opts generate.Options) map[string]string {
	t.Helper()
	p, _ := stream(t, opts)
	out := map[string]string{}
	for typ := range p {
		sum := sha256.Sum256(p.joined(typ))
		out[typ] = hex.EncodeToString(sum[:])
	}
	return out
}
