package test

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/fhir"
)

// dataset is the input of an export test, read straight from the NDJSON
// files, independently of the importer and the store.
type dataset struct {
	byKey   map[string]*inputResource // "Type/id"
	groups  map[string][]string       // group id → member Patient ids
	patient map[string]bool
}

type inputResource struct {
	Type, ID    string
	LastUpdated time.Time
	refs        []string // every reference value, urn:uuid resolved by id
	raw         []byte   // the input line
	decoded     map[string]any
}

// json returns the resource decoded as generic JSON, for brute-force
// filters written in the tests.
func (r *inputResource) json() map[string]any {
	if r.decoded == nil {
		if err := json.Unmarshal(r.raw, &r.decoded); err != nil {
			panic(err)
		}
	}
	return r.decoded
}

// joinedAfter returns the members of a Group that joined after since: the
// input holds one version of each Group, so every member joined at its
// lastUpdated.
func (ds *dataset) joinedAfter(group string, since time.Time) []string {
	if g := ds.byKey["Group/"+group]; g != nil && g.LastUpdated.After(since) {
		return ds.groups[group]
	}
	return nil
}

func (r *inputResource) key() string { return r.Type + "/" + r.ID }

var referenceRE = regexp.MustCompile(`"reference"\s*:\s*"([^"]+)"`)

// readDataset reads every *.ndjson(.gz) under dir. importTime stands in for
// a missing meta.lastUpdated, as the importer promises.
func readDataset(t *testing.T, dir string, importTime time.Time) *dataset {
	t.Helper()
	ds := &dataset{byKey: map[string]*inputResource{}, groups: map[string][]string{}, patient: map[string]bool{}}
	files, _ := filepath.Glob(filepath.Join(dir, "*.ndjson*"))
	if len(files) == 0 {
		t.Fatalf("no NDJSON files in %s", dir)
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = fh
		if strings.HasSuffix(f, ".gz") {
			zr, err := gzip.NewReader(fh)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var head struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
				Meta         struct {
					LastUpdated string `json:"lastUpdated"`
				} `json:"meta"`
			}
			if err := json.Unmarshal(sc.Bytes(), &head); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			ir := &inputResource{Type: head.ResourceType, ID: head.ID, LastUpdated: importTime, raw: append([]byte(nil), sc.Bytes()...)}
			if head.Meta.LastUpdated != "" {
				if ir.LastUpdated, err = time.Parse(time.RFC3339Nano, head.Meta.LastUpdated); err != nil {
					t.Fatalf("%s: lastUpdated %q: %v", f, head.Meta.LastUpdated, err)
				}
			}
			for _, m := range referenceRE.FindAllSubmatch(sc.Bytes(), -1) {
				ir.refs = append(ir.refs, string(m[1]))
			}
			ds.byKey[ir.key()] = ir
			if ir.Type == "Patient" {
				ds.patient[ir.ID] = true
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		fh.Close()
	}
	// Resolve urn:uuid:X to the Patient X when one exists; then read Group
	// members.
	for _, r := range ds.byKey {
		for i, ref := range r.refs {
			if id, ok := strings.CutPrefix(ref, "urn:uuid:"); ok && ds.patient[id] {
				r.refs[i] = "Patient/" + id
			}
		}
		if r.Type == "Group" {
			for _, ref := range r.refs {
				if id, ok := strings.CutPrefix(ref, "Patient/"); ok && !slices.Contains(ds.groups[r.ID], id) {
					ds.groups[r.ID] = append(ds.groups[r.ID], id)
				}
			}
		}
	}
	return ds
}

// patientsOf is a brute-force compartment: the Patients a compartment-type
// resource references anywhere, or the Patient itself.
func (ds *dataset) patientsOf(r *inputResource) []string {
	if r.Type == "Patient" {
		return []string{r.ID}
	}
	// Groups are never exported at Patient or Group level: they list other
	// patients.
	if r.Type == "Group" || !fhir.IsPatientCompartmentType(r.Type) {
		return nil
	}
	var ps []string
	for _, ref := range r.refs {
		if id, ok := strings.CutPrefix(ref, "Patient/"); ok && ds.patient[id] {
			ps = append(ps, id)
		}
	}
	return ps
}

// filter describes an export's expected content.
type filter struct {
	types      []string
	since      time.Time
	until      time.Time
	patients   []string // restrict to these patients' compartments
	compOnly   bool     // Patient-level: compartment resources only
	txTimeUpTo time.Time
	// newMembers are Group members who joined after since: their
	// compartments are exported whatever the lastUpdated (R90).
	newMembers []string
	// match, if set, is a brute-force stand-in for the server's filters
	// (_typeFilter, scope restrictions) over the decoded input resource.
	match func(r *inputResource) bool
}

// expect computes the set of "Type/id" an export must return.
func (ds *dataset) expect(f filter) []string {
	var out []string
	exportedNew := f.newMembers
	if f.patients != nil {
		exportedNew = slices.DeleteFunc(slices.Clone(f.newMembers), func(p string) bool { return !slices.Contains(f.patients, p) })
	}
	for k, r := range ds.byKey {
		if len(f.types) > 0 && !slices.Contains(f.types, r.Type) {
			continue
		}
		ps := ds.patientsOf(r)
		if !f.since.IsZero() && !r.LastUpdated.After(f.since) && !intersects(ps, exportedNew) {
			continue
		}
		if !f.until.IsZero() && !r.LastUpdated.Before(f.until) {
			continue
		}
		if r.LastUpdated.After(f.txTimeUpTo) {
			continue
		}
		if f.compOnly && len(ps) == 0 {
			continue
		}
		if f.patients != nil && !intersects(ps, f.patients) {
			continue
		}
		if f.match != nil && !f.match(r) {
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// keys returns the sorted "Type/id" of exported lines and fails on
// duplicates: each matching resource exactly once.
func keys(t *testing.T, lines []line) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for _, l := range lines {
		k := l.Type + "/" + l.ID
		if seen[k] {
			t.Errorf("%s exported more than once", k)
		}
		seen[k] = true
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
