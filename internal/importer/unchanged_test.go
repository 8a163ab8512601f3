package importer_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/importer"
	"github.com/tranchehq/tranche/internal/mem"
)

// TestImportAgainIsNoChange: importing the same data again, or importing an
// export of it, stores no new versions, so the next `_since` export does
// not return every resource again as changed (issue 16 item 5).
func TestImportAgainIsNoChange(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "p.ndjson", lines(
		`{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2020-01-01T00:00:00Z","tag":[{"code":"t"}]}}`,
		`{"resourceType":"Patient","id":"p2"}`,
	))
	store := mem.NewResourceStore(1)
	stampedImport(t, store, importer.Options{}, path)
	first := stored(t, store, "Patient")
	since, err := store.TransactionTime(context.Background(), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// An export of what was stored, as a file to import.
	var exported []string
	for _, r := range first {
		exported = append(exported, string(r.Body))
	}
	export := writeFile(t, dir, "export/Patient.000.ndjson", lines(exported...))
	for _, again := range []string{path, export} {
		rep := stampedImport(t, store, importer.Options{Now: func() time.Time { return now.Add(2 * time.Hour) }}, again)
		if diff := cmp.Diff(map[string]importer.Counts{"Patient": {Unchanged: 2}}, rep.Types); diff != "" {
			t.Errorf("Import(%s) again: counts mismatch (-want +got):\n%s", again, diff)
		}
		if diff := cmp.Diff(first, stored(t, store, "Patient"), bodies); diff != "" {
			t.Errorf("Import(%s) again changed what is stored (-want +got):\n%s", again, diff)
		}
		var changed []string
		err := store.Scan(context.Background(), bulk.ScanRequest{Type: "Patient", Range: bulk.Range{Since: since, Until: now.Add(100 * time.Hour)}},
			func(r *bulk.Resource, _ bulk.Cursor) error { changed = append(changed, r.ID); return nil })
		if err != nil || len(changed) > 0 {
			t.Errorf("Scan _since the first import after Import(%s) again = %v, %v; want nothing", again, changed, err)
		}
	}
}

// TestSameContent: what an import stores again from an export differs from
// what it stored only in meta.lastUpdated and the source-last-updated
// extension, which bulk.SameContent leaves out; anything else counts.
func TestSameContent(t *testing.T) {
	src := func(instant string) string {
		return `{"url":"` + bulk.SourceLastUpdatedURL + `","valueInstant":"` + instant + `"}`
	}
	stored := `{"resourceType":"Patient","id":"p1","meta":{"extension":[` + src("2020-01-01T00:00:00Z") + `],"lastUpdated":"2024-01-01T00:00:00.000Z","tag":[{"code":"t"}]},"active":true}`
	for _, tc := range []struct {
		name string
		body string
		same bool
	}{
		{"itself", stored, true},
		{"restamped", `{"resourceType":"Patient","id":"p1","meta":{"extension":[` + src("2024-01-01T00:00:00.000Z") + `],"lastUpdated":"2024-06-01T00:00:00.000Z","tag":[{"code":"t"}]},"active":true}`, true},
		{"no source kept", `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2024-06-01T00:00:00.000Z","tag":[{"code":"t"}]},"active":true}`, true},
		{"pretty-printed", "{\"resourceType\": \"Patient\", \"id\": \"p1\", \"meta\": {\"lastUpdated\": \"x\", \"tag\": [{\"code\":\"t\"}]}, \"active\": true}", false},
		{"other extension", `{"resourceType":"Patient","id":"p1","meta":{"extension":[{"url":"x","valueString":"y"}],"lastUpdated":"2024-06-01T00:00:00.000Z","tag":[{"code":"t"}]},"active":true}`, false},
		{"other tag", `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2024-06-01T00:00:00.000Z","tag":[{"code":"u"}]},"active":true}`, false},
		{"other data", `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2024-01-01T00:00:00.000Z","tag":[{"code":"t"}]},"active":false}`, false},
		{"lastUpdated outside meta", `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2024-01-01T00:00:00.000Z","tag":[{"code":"t"}]},"active":true,"contained":[{"meta":{"lastUpdated":"1"}}]}`, false},
		{"not JSON", `{"resourceType":`, false},
	} {
		if got := bulk.SameContent([]byte(stored), []byte(tc.body)); got != tc.same {
			t.Errorf("SameContent(stored, %s) = %v, want %v", tc.name, got, tc.same)
		}
	}
}
