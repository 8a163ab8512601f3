package test

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// r4Mandatory are the top-level elements with min ≥ 1 of the types these
// tests subset (R4 StructureDefinitions), written out here independently of
// the server's table.
var r4Mandatory = map[string][]string{
	"Patient":     nil,
	"Observation": {"status", "code"},
	"Encounter":   {"status", "class"},
	"Condition":   {"subject"},
	"Group":       {"type", "actual"},
}

// TestElements: _elements keeps the listed top-level elements, with bare
// names applying to every type, plus id, meta and mandatory elements, and
// tags subsetted resources SUBSETTED; resources of types it does not apply
// to are exported byte for byte as imported (R21, R22). Filters see the
// whole resource.
func TestElements(t *testing.T) {
	dir := generated(t, 15)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)
	group := slices.Sorted(maps.Keys(ds.groups))[0]
	q := url.QueryEscape

	for _, tc := range []struct {
		name, method, path, body string
		filter                   filter
		keep                     map[string][]string // type → listed elements; absent: not subsetted
	}{
		{name: "typed R21", path: "/$export?_type=Patient,Encounter&_elements=Patient.id",
			filter: filter{types: []string{"Patient", "Encounter"}}, keep: map[string][]string{"Patient": {}}},
		{name: "bare R22", path: "/$export?_type=Observation,Patient,Encounter&_elements=status,Observation.subject",
			filter: filter{types: []string{"Observation", "Patient", "Encounter"}},
			keep:   map[string][]string{"Observation": {"status", "subject"}, "Patient": {"status"}, "Encounter": {"status"}}},
		{name: "group membership ids (IG client pattern)", path: "/Group/" + group + "/$export?_type=Patient&_elements=id",
			filter: filter{types: []string{"Patient"}, patients: ds.groups[group]}, keep: map[string][]string{"Patient": {}}},
		{name: "patient level with a filter on a dropped element", path: "/Patient/$export?_type=Observation,Condition" +
			"&_elements=Observation.code,Observation.value[x]&_typeFilter=" + q("Observation?category=laboratory"),
			filter: filter{types: []string{"Observation", "Condition"}, compOnly: true,
				match: bf{"Observation": {func(m map[string]any) bool { return coded(m, "category", obsCategory, "laboratory") }}}.match},
			keep: map[string][]string{"Observation": {"code", "value"}}},
		{name: "POST", method: "POST", path: "/$export",
			body:   `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Group"},{"name":"_elements","valueString":"Group.name"}]}`,
			filter: filter{types: []string{"Group"}}, keep: map[string][]string{"Group": {"name"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			method := tc.method
			if method == "" {
				method = "GET"
			}
			m := s.wait(s.kickoff(method, tc.path, []byte(tc.body)))
			tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
			tc.filter.txTimeUpTo = tx
			lines := s.download(m.Output, false)
			if diff := cmp.Diff(ds.expect(tc.filter), keys(t, lines)); diff != "" {
				t.Fatalf("exported set mismatch (-want +got):\n%s", diff)
			}
			for _, l := range lines {
				in := ds.byKey[l.Type+"/"+l.ID]
				listed, subsetted := tc.keep[l.Type]
				if !subsetted {
					if !bytes.Equal(l.Raw, bytes.TrimSpace(in.raw)) {
						t.Fatalf("%s/%s is not subsetted but was re-encoded:\n%s\nwant\n%s", l.Type, l.ID, l.Raw, in.raw)
					}
					continue
				}
				checkSubset(t, l, in.json(), append(slices.Clone(listed), r4Mandatory[l.Type]...))
			}
		})
	}
}

// checkSubset checks one subsetted line against its input: exactly the kept
// top-level elements (choice elements by their base name), each as it was,
// and meta with the SUBSETTED tag added to the input's tags.
func checkSubset(t *testing.T, l line, in map[string]any, kept []string) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal(l.Raw, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{}
	for k, v := range in {
		base := strings.TrimPrefix(k, "_")
		keep := k == "resourceType" || base == "id" || k == "meta"
		for _, e := range kept {
			if base == e || strings.HasPrefix(base, e) && len(base) > len(e) && base[len(e)] >= 'A' && base[len(e)] <= 'Z' {
				keep = true
			}
		}
		if keep {
			want[k] = v
		}
	}
	meta, _ := want["meta"].(map[string]any)
	meta = maps.Clone(meta)
	if meta == nil {
		meta = map[string]any{}
	}
	tags, _ := meta["tag"].([]any)
	meta["tag"] = append(slices.Clone(tags), map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"})
	want["meta"] = meta
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("%s/%s subset mismatch (-want +got) (R21, R22):\n%s", l.Type, l.ID, diff)
	}
}
