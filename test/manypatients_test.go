package test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/fhir"
)

// manyPatients writes fhir.MaxPatients Patients with UUID ids, an
// Observation for every 100th, the Group g-all of all of them and one
// Patient outside it, and returns the ids in a shuffled order, the
// outsider, and the sorted "Type/id" of the Patients and Observations.
func manyPatients(t *testing.T) (dir string, ids []string, outsider string, all []string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(10, 0))
	uuid := func() string {
		return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rng.Uint32(), rng.Uint32()>>16, rng.Uint32()>>16, rng.Uint32()>>16, rng.Uint64()>>16)
	}
	var lines, members []string
	for i := range fhir.MaxPatients {
		id := uuid()
		ids = append(ids, id)
		members = append(members, fmt.Sprintf(`{"entity":{"reference":"Patient/%s"}}`, id))
		lines = append(lines, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, id))
		all = append(all, "Patient/"+id)
		if i%100 == 0 {
			lines = append(lines, fmt.Sprintf(`{"resourceType":"Observation","id":"obs-%s","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, id, id))
			all = append(all, "Observation/obs-"+id)
		}
	}
	outsider = uuid()
	lines = append(lines, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, outsider),
		`{"resourceType":"Group","id":"g-all","type":"person","actual":true,"member":[`+strings.Join(members, ",")+`]}`)
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "many.ndjson"), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	slices.Sort(all)
	return dir, ids, outsider, all
}

// TestKickoffMaxPatients: a kick-off naming fhir.MaxPatients `patient`
// values of 36 characters (a compact POST body of 0.97 MB, under the
// 1 MiB body limit) is accepted at Patient and Group level and exports
// exactly those patients' compartments; a non-member among them is named,
// 400 under strict handling and in the error file under lenient handling;
// one value more is 400 naming the limit (R23, R24; issue 12 item 4).
func TestKickoffMaxPatients(t *testing.T) {
	dir, ids, outsider, want := manyPatients(t)
	cfg := testConfig(t)
	cfg.Export.PatientBatch = 1000
	importInto(t, cfg, importTime, dir)
	s := startServer(t, cfg)

	body := postPatients(ids...)
	path := "/Patient/$export?_type=Patient,Observation"
	m := s.wait(s.kickoff("POST", path, []byte(body)))
	got := keys(t, s.download(m.Output, true))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("POST %s with %d patients (%d bytes): exported set mismatch (-want +got):\n%s", path, len(ids), len(body), diff)
	}
	if m.Request != s.URL+path {
		t.Errorf("manifest request = %q, want %q (R56)", m.Request, s.URL+path)
	}

	// At Group level: a non-member in the middle of the list.
	withOutsider := slices.Insert(slices.Clone(ids[:fhir.MaxPatients-1]), fhir.MaxPatients/2, outsider)
	res := s.do("POST", "/Group/g-all/$export?_type=Patient", []byte(postPatients(withOutsider...)), "Content-Type", "application/fhir+json")
	if msg := "patient Patient/" + outsider + " is not a member of Group/g-all."; res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), msg) {
		t.Errorf("Group kick-off with a non-member = %d %.300s, want 400 naming it (R24)", res.Status, res.Body)
	}
	res = s.do("POST", "/Group/g-all/$export?_type=Patient", []byte(postPatients(withOutsider...)),
		"Content-Type", "application/fhir+json", "Prefer", "respond-async, handling=lenient")
	if res.Status != http.StatusAccepted {
		t.Fatalf("lenient Group kick-off with a non-member = %d %.300s, want 202", res.Status, res.Body)
	}
	m = s.wait(res.Header.Get("Content-Location"))
	if n := len(keys(t, s.download(m.Output, false))); n != fhir.MaxPatients-1 {
		t.Errorf("lenient Group export exported %d Patients, want the %d members named", n, fhir.MaxPatients-1)
	}
	if outcomes := s.download(m.Error, false); len(outcomes) != 1 || !strings.Contains(string(outcomes[0].Raw), "Patient/"+outsider+" is not a member") {
		t.Errorf("lenient Group export error file = %v, want one OperationOutcome naming Patient/%s", outcomes, outsider)
	}

	// One over the limit.
	res = s.do("POST", "/Patient/$export", []byte(postPatients(append(slices.Clone(ids), outsider)...)), "Content-Type", "application/fhir+json")
	if limit := fmt.Sprintf("at most %d are accepted", fhir.MaxPatients); res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), limit) {
		t.Errorf("kick-off with %d patients = %d %.300s, want 400 naming the limit (%q)", fhir.MaxPatients+1, res.Status, res.Body, limit)
	}
	checkOutcome(t, res)
}
