package test

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// block is one Patient block as read back from organized output.
type block struct {
	patient string
	lines   []line // after the header
	file    int    // index in manifest output of the file it starts in
	spans   int    // number of files it is written across
}

// readBlocks downloads organized output and parses it into blocks, checking
// the block rules: every file starts with a header, a Parameters header
// names a Patient, a block split across files repeats its header at the top
// of the next file, which continuesInFile names (R91, R92).
func readBlocks(t *testing.T, s *server, files []manifestFile) []block {
	t.Helper()
	var blocks []block
	for i, f := range files {
		lines := s.download([]manifestFile{f}, false)
		if len(lines) == 0 {
			t.Fatalf("%s is empty", f.URL)
		}
		for j, l := range lines {
			if l.Type != "Parameters" {
				if j == 0 {
					t.Fatalf("%s does not start with a block header (R91)", f.URL)
				}
				blocks[len(blocks)-1].lines = append(blocks[len(blocks)-1].lines, l)
				continue
			}
			var h struct {
				Parameter []struct {
					Name           string
					ValueReference struct{ Reference string }
				}
			}
			if err := json.Unmarshal(l.Raw, &h); err != nil || len(h.Parameter) != 1 || h.Parameter[0].Name != "header" ||
				!strings.HasPrefix(h.Parameter[0].ValueReference.Reference, "Patient/") {
				t.Fatalf("%s: bad block header %s (R91)", f.URL, l.Raw)
			}
			patient := strings.TrimPrefix(h.Parameter[0].ValueReference.Reference, "Patient/")
			continues := j == 0 && i > 0 && files[i-1].ContinuesInFile == f.URL
			if continues {
				if prev := &blocks[len(blocks)-1]; prev.patient != patient {
					t.Fatalf("%s continues the block of %s but its header names %s (R92)", f.URL, prev.patient, patient)
				} else {
					prev.spans++
				}
				continue
			}
			blocks = append(blocks, block{patient: patient, file: i, spans: 1})
		}
		if f.ContinuesInFile != "" && (i+1 == len(files) || files[i+1].URL != f.ContinuesInFile) {
			t.Fatalf("%s continuesInFile %s, which is not the next file", f.URL, f.ContinuesInFile)
		}
	}
	return blocks
}

// TestOrganizeOutputByPatient exports organized output at every level and
// checks the blocks against the input: each block's Patient first, then
// only resources in that patient's compartment, each resource exactly once,
// blocks split across small files repeating their header and linked by
// continuesInFile, blocks that fit a file never split; the manifest sets
// outputOrganizedBy and leaves output[].type out (R64, R91, R92).
func TestOrganizeOutputByPatient(t *testing.T) {
	dir := generated(t, 25)
	dsGen := readDataset(t, dir, importTime)
	group := slices.Sorted(maps.Keys(dsGen.groups))[0]
	provenanceData(t, dir, dsGen, group)
	cfg := testConfig(t)
	cfg.Export.MaxFileResources = 60 // smaller than many patients' blocks
	cfg.Export.PatientBatch = 4
	cfg.Export.ItemResources = 100
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)
	members := ds.groups[group]
	since := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	for _, tc := range []struct {
		name, method, path, body string
		filter                   filter
		rule                     *provRule
	}{
		{name: "system", path: "/$export?organizeOutputBy=Patient", filter: filter{compOnly: true}, rule: &provRule{defaultRule: true}},
		{name: "patient with _type and _since", path: "/Patient/$export?organizeOutputBy=Patient&_type=Patient,Observation,Condition&_since=" + since.Format(time.RFC3339),
			filter: filter{types: []string{"Patient", "Observation", "Condition"}, compOnly: true, since: since}},
		{name: "patient without Patient type", path: "/Patient/$export?organizeOutputBy=Patient&_type=Encounter",
			filter: filter{types: []string{"Encounter"}, compOnly: true}},
		{name: "group", path: "/Group/" + group + "/$export?organizeOutputBy=Patient",
			filter: filter{patients: members}, rule: &provRule{defaultRule: true, patients: members}},
		{name: "group POST patient with associated data", method: "POST", path: "/Group/" + group + "/$export",
			body: `{"resourceType":"Parameters","parameter":[{"name":"organizeOutputBy","valueString":"Patient"},
				{"name":"_type","valueString":"Observation"},{"name":"includeAssociatedData","valueCode":"LatestProvenanceResources"},
				{"name":"patient","valueReference":{"reference":"Patient/` + members[0] + `"}}]}`,
			filter: filter{types: []string{"Observation"}, patients: members[:1]}, rule: &provRule{associated: "latest"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			method := tc.method
			if method == "" {
				method = "GET"
			}
			m := s.wait(s.kickoff(method, tc.path, []byte(tc.body)))
			if m.OutputOrganizedBy != "Patient" {
				t.Errorf("outputOrganizedBy = %q, want Patient (R64)", m.OutputOrganizedBy)
			}
			tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
			f := tc.filter
			f.txTimeUpTo = tx
			var want []string
			for _, k := range ds.expect(f) {
				if !strings.HasPrefix(k, "Provenance/") {
					want = append(want, k)
				}
			}
			if tc.rule != nil {
				want = append(want, ds.provenanceFor(f, *tc.rule, want)...)
			}
			sort.Strings(want)

			blocks := readBlocks(t, s, m.Output)
			var all []line
			seenBlock := map[string]bool{}
			split := 0
			for _, b := range blocks {
				if seenBlock[b.patient] {
					t.Errorf("two blocks for Patient/%s", b.patient)
				}
				seenBlock[b.patient] = true
				if len(b.lines) == 0 {
					t.Errorf("empty block for Patient/%s", b.patient)
				}
				if b.spans > 1 {
					split++
					if len(b.lines)+1 <= int(cfg.Export.MaxFileResources) {
						t.Errorf("block of Patient/%s (%d lines) fits in a file but spans %d", b.patient, len(b.lines)+1, b.spans)
					}
				}
				for i, l := range b.lines {
					r := ds.byKey[l.Type+"/"+l.ID]
					if r == nil {
						t.Fatalf("block of %s holds unknown %s/%s", b.patient, l.Type, l.ID)
					}
					switch {
					case l.Type == "Patient" && l.ID == b.patient:
						if i != 0 {
							t.Errorf("Patient/%s is line %d of its block, want first (R91)", l.ID, i+1)
						}
					case l.Type == "Provenance":
						// Added by a Provenance rule: one of its targets is
						// in the block's patient's compartment.
						ok := false
						for _, tg := range r.json()["target"].([]any) {
							if t := ds.byKey[tg.(map[string]any)["reference"].(string)]; t != nil && slices.Contains(ds.patientsOf(t), b.patient) {
								ok = true
							}
						}
						if !ok {
							t.Errorf("Provenance/%s in the block of %s targets nothing of that patient", l.ID, b.patient)
						}
					case !slices.Contains(ds.patientsOf(r), b.patient):
						t.Errorf("%s/%s is in the block of Patient/%s, outside its compartment (R91)", l.Type, l.ID, b.patient)
					}
				}
				all = append(all, b.lines...)
			}
			if diff := cmp.Diff(want, keys(t, all)); diff != "" {
				t.Errorf("exported set mismatch (-want +got):\n%s", diff)
			}
			if tc.name == "system" && split == 0 {
				t.Errorf("no block spans files; the test wants some to check R92")
			}
		})
	}
}
