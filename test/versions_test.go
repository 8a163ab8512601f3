package test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/admin"
	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/fhir/defs"
	"github.com/tranchehq/tranche/internal/generate"
)

// TestFHIRVersions: the same generated cohort in each FHIR release, each in
// a store of its own. The store records the release of its first import;
// the CapabilityStatement (DSTU2: Conformance) declares it; a Patient-level
// export returns exactly the resources the release's Patient
// CompartmentDefinition puts in a patient's compartment, computed here from
// the definitions (internal/fhir/defs) by walking each resource's JSON, not
// by the code under test; system and Group exports return what they must;
// and another release's data is refused before anything is written
// (issue 17).
func TestFHIRVersions(t *testing.T) {
	for _, v := range defs.Versions() {
		t.Run(string(v), func(t *testing.T) {
			d := defs.For(v)
			dir := filepath.Join(t.TempDir(), "gen")
			if _, err := generate.Dir(context.Background(), generate.Options{Patients: 12, Seed: 7, Base: genBase, FHIRVersion: v}, dir, nil); err != nil {
				t.Fatal(err)
			}
			in := readVersioned(t, dir)
			cfg := testConfig(t)
			importInto(t, cfg, importTime, dir)
			s := startServer(t, cfg)

			res := s.do("GET", "/metadata", nil, "Accept", "application/fhir+json")
			var cs struct{ ResourceType, FHIRVersion string }
			if err := json.Unmarshal(res.Body, &cs); err != nil || res.Status != http.StatusOK {
				t.Fatalf("GET /metadata = %d %s", res.Status, res.Body)
			}
			wantRT := "CapabilityStatement"
			if v == defs.DSTU2 {
				wantRT = "Conformance"
			}
			if cs.ResourceType != wantRT || cs.FHIRVersion != d.FHIRVersion {
				t.Errorf("metadata is a %s of FHIR %s, want a %s of %s", cs.ResourceType, cs.FHIRVersion, wantRT, d.FHIRVersion)
			}

			// Who each resource's compartment is, by the definitions.
			owners := map[string][]string{} // Type/id → Patient ids
			var all, compartment []string
			for key, r := range in {
				all = append(all, key)
				dt := d.Type(r.typ)
				if dt == nil {
					t.Fatalf("generated %s, which FHIR %s does not have", key, v)
				}
				ps := compartmentOf(dt, r)
				if len(ps) > 0 && r.typ != "Group" {
					owners[key] = ps
					compartment = append(compartment, key)
				}
			}
			sort.Strings(all)
			sort.Strings(compartment)
			if len(compartment) < len(all)/2 {
				t.Fatalf("only %d of %d generated resources are in a compartment: the generator or the definitions are off", len(compartment), len(all))
			}

			export := func(t *testing.T, path string) []string {
				t.Helper()
				m := s.wait(s.kickoff("GET", path, nil))
				return keys(t, s.download(m.Output, false))
			}
			t.Run("system", func(t *testing.T) {
				s.t = t
				if diff := cmp.Diff(all, export(t, "/$export")); diff != "" {
					t.Errorf("system export mismatch (-want +got):\n%s", diff)
				}
			})
			t.Run("patient", func(t *testing.T) {
				s.t = t
				if diff := cmp.Diff(compartment, export(t, "/Patient/$export")); diff != "" {
					t.Errorf("Patient export mismatch with the %s compartment (-want +got):\n%s", v, diff)
				}
			})
			t.Run("group", func(t *testing.T) {
				s.t = t
				members := in["Group/group-10"].members()
				if len(members) == 0 {
					t.Fatal("group-10 has no members")
				}
				var want []string
				for _, key := range compartment {
					if slices.ContainsFunc(owners[key], func(p string) bool { return slices.Contains(members, p) }) {
						want = append(want, key)
					}
				}
				if diff := cmp.Diff(want, export(t, "/Group/group-10/$export")); diff != "" {
					t.Errorf("Group export mismatch (-want +got):\n%s", diff)
				}
			})
			t.Run("typeFilter", func(t *testing.T) {
				// The release's own SearchParameters (issue 17 item 2).
				s.t = t
				var want []string
				for key, r := range in {
					if r.typ == "Patient" && r.body["gender"] == "female" {
						want = append(want, key)
					}
				}
				sort.Strings(want)
				if len(want) == 0 {
					t.Fatal("no female patient generated")
				}
				if diff := cmp.Diff(want, export(t, "/Patient/$export?_type=Patient&_typeFilter=Patient%3Fgender%3Dfemale")); diff != "" {
					t.Errorf("_typeFilter export mismatch (-want +got):\n%s", diff)
				}
			})
			t.Run("another release is refused", func(t *testing.T) {
				s.t = t
				other := defs.R4
				if v == defs.R4 {
					other = defs.STU3
				}
				odir := filepath.Join(t.TempDir(), "other")
				if _, err := generate.Dir(context.Background(), generate.Options{Patients: 2, Seed: 9, Base: genBase, FHIRVersion: other}, odir, nil); err != nil {
					t.Fatal(err)
				}
				// Through the running server's store, as `tranche import`
				// through its socket would.
				_, err := s.app.Admin.Import(context.Background(), admin.ImportRequest{Paths: []string{odir}}, nil)
				if err == nil || !strings.Contains(err.Error(), strings.ToUpper(string(v))) || !strings.Contains(err.Error(), strings.ToUpper(string(other))) {
					t.Fatalf("importing %s data into the %s store: %v, want a refusal naming both", other, v, err)
				}
				if diff := cmp.Diff(all, export(t, "/$export")); diff != "" {
					t.Errorf("after the refused import, the store changed (-want +got):\n%s", diff)
				}
			})
			t.Run("cohort", func(t *testing.T) {
				// A member-filter on Condition selects by the release's
				// own Condition parameters and Patient compartment
				// (DSTU2: Condition.patient; later: subject).
				s.t = t
				codes := map[string]map[string]bool{} // code → patients
				for key, r := range in {
					if r.typ != "Condition" {
						continue
					}
					coding, _ := r.body["code"].(map[string]any)["coding"].([]any)
					for _, c := range coding {
						code, _ := c.(map[string]any)["code"].(string)
						for _, p := range owners[key] {
							if codes[code] == nil {
								codes[code] = map[string]bool{}
							}
							codes[code][p] = true
						}
					}
				}
				best := ""
				for code, ps := range codes {
					if best == "" || len(ps) > len(codes[best]) || len(ps) == len(codes[best]) && code < best {
						best = code
					}
				}
				if best == "" {
					t.Fatal("no Condition with a code generated")
				}
				want := slices.Sorted(maps.Keys(codes[best]))
				cs := s.cohortClient(cohortScope, "*")
				id := cs.createCohort(cohortBody("by code", []string{"Condition?code=" + best}))
				if _, members := cs.readCohort(id); !slices.Equal(members, want) {
					t.Errorf("cohort Condition?code=%s members %v, want %v", best, members, want)
				}
			})
		})
	}
}

// versioned is one input resource, decoded.
type versioned struct {
	typ  string
	body map[string]any
}

// members lists a Group's member Patients.
func (r *versioned) members() []string {
	var out []string
	if r == nil {
		return nil
	}
	for _, m := range asList(r.body["member"]) {
		if mm, ok := m.(map[string]any); ok {
			for _, p := range patientRefs(mm["entity"]) {
				out = append(out, p)
			}
		}
	}
	return out
}

func readVersioned(t *testing.T, dir string) map[string]*versioned {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	out := map[string]*versioned{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			typ, _ := m["resourceType"].(string)
			id, _ := m["id"].(string)
			out[typ+"/"+id] = &versioned{typ: typ, body: m}
		}
		fh.Close()
	}
	return out
}

// compartmentOf walks every path of every compartment parameter of the
// resource's type, as the CompartmentDefinition gives it, and returns the
// Patients they reach; a Patient is in its own.
func compartmentOf(dt *defs.Type, r *versioned) []string {
	var ps []string
	if r.typ == "Patient" {
		id, _ := r.body["id"].(string)
		ps = append(ps, id)
	}
	for _, p := range dt.Compartment {
		for _, path := range p.Paths {
			var vals []any
			collect(r.body, strings.Split(path, "."), &vals)
			for _, v := range vals {
				ps = append(ps, patientRefs(v)...)
			}
		}
	}
	slices.Sort(ps)
	return slices.Compact(ps)
}

func collect(v any, path []string, out *[]any) {
	if len(path) == 0 {
		*out = append(*out, v)
		return
	}
	for _, x := range asList(v) {
		if m, ok := x.(map[string]any); ok {
			if next, ok := m[path[0]]; ok {
				collect(next, path[1:], out)
			}
		}
	}
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// patientRefs returns the ids of the Patient references v holds.
func patientRefs(v any) []string {
	var out []string
	for _, x := range asList(v) {
		if m, ok := x.(map[string]any); ok {
			if ref, _ := m["reference"].(string); strings.HasPrefix(ref, "Patient/") {
				out = append(out, strings.TrimPrefix(ref, "Patient/"))
			}
		}
	}
	return out
}

// TestFHIRVersionChosen: --fhir-version (TRANCHE_FHIR_VERSION) chooses the
// release of a new store, which keeps it; asking an existing store for
// another is refused at start, naming both (issue 17).
func TestFHIRVersionChosen(t *testing.T) {
	cfg := testConfig(t)
	cfg.FHIRVersion = "3.0.2"
	s := startServer(t, cfg)
	res := s.do("GET", "/metadata", nil, "Accept", "application/fhir+json")
	var cs struct{ FHIRVersion, AcceptUnknown string }
	if err := json.Unmarshal(res.Body, &cs); err != nil || cs.FHIRVersion != "3.0.2" || cs.AcceptUnknown == "" {
		t.Fatalf("metadata of an STU3 store = %s", res.Body)
	}
	s.stop()

	cfg.FHIRVersion = "r4"
	if _, err := app.NewLocal(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil ||
		!strings.Contains(err.Error(), "STU3") || !strings.Contains(err.Error(), "R4") {
		t.Fatalf("opening the STU3 store as R4: %v, want a refusal naming both", err)
	}
	cfg.FHIRVersion = ""
	l, err := app.NewLocal(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.API.FHIR.Version != defs.STU3 {
		t.Errorf("reopened without --fhir-version: %s, want the store's STU3", l.API.FHIR.Name)
	}
}
