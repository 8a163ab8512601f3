package importer_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/importer"
)

// cmpIgnoreBytes leaves the bytes read out of report comparisons.
var cmpIgnoreBytes = cmpopts.IgnoreFields(importer.Report{}, "Bytes")

// manifestJSON is a manifest listing files as a server gives them: URLs
// whose names are the server's, not the ones `tranche export` saves
// them under.
func manifestJSON(base string, output, deleted, errs []string) string {
	list := func(files []string) string {
		var out []string
		for _, f := range files {
			typ, url, _ := strings.Cut(f, "=")
			out = append(out, fmt.Sprintf(`{"type":%q,"url":%q}`, typ, url))
		}
		return "[" + strings.Join(out, ",") + "]"
	}
	return fmt.Sprintf(`{"transactionTime":"2026-01-02T03:04:05.678Z","request":%q,"requiresAccessToken":true,"output":%s,"deleted":%s,"error":%s}`,
		base+"/$export", list(output), list(deleted), list(errs))
}

// exportDir writes an export as `tranche export` saves it: OUT/<time>/
// with the files under their planned names, manifest.json, and
// OUT/last-export.json.
func exportDir(t *testing.T) (root, dir string) {
	t.Helper()
	root = t.TempDir()
	dir = filepath.Join(root, "2026-01-02T030405.678Z")
	base := "https://fhir.example.org"
	writeFile(t, dir, "manifest.json", manifestJSON(base,
		[]string{"Patient=" + base + "/files/a1", "Observation=" + base + "/files/b7", "Observation=" + base + "/files/b8"},
		[]string{"Bundle=" + base + "/files/d1"},
		[]string{"OperationOutcome=" + base + "/files/e1"}))
	writeFile(t, dir, "Patient.000.ndjson", lines(`{"resourceType":"Patient","id":"p1"}`, `{"resourceType":"Patient","id":"p2"}`))
	writeFile(t, dir, "Observation.000.ndjson", `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`+"\n")
	writeFile(t, dir, "Observation.001.ndjson", `{"resourceType":"Observation","id":"o2","subject":{"reference":"Patient/p2"}}`+"\n")
	writeFile(t, dir, "deleted/Bundle.000.ndjson", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Observation/gone"}}]}`+"\n")
	writeFile(t, dir, "error/OperationOutcome.000.ndjson", `{"resourceType":"OperationOutcome","id":"oo1","issue":[{"severity":"error","code":"processing"}]}`+"\n")
	writeFile(t, root, "last-export.json", `{"transactionTime":"2026-01-02T03:04:05.678Z","request":"https://fhir.example.org/$export","dir":"2026-01-02T030405.678Z"}`)
	return root, dir
}

// TestImportManifest (issue 16 item 1): importing what `tranche export`
// saved imports what its manifest lists, each file once, deletions as
// deletions; error files and other JSON that is not FHIR are skipped with
// a note, not a failure.
func TestImportManifest(t *testing.T) {
	root, dir := exportDir(t)
	for _, path := range []string{root, dir, filepath.Join(dir, "manifest.json")} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			store := newFakeStore()
			store.Put(context.Background(), []*bulk.Resource{res("Observation", "gone", nowMS, `{"resourceType":"Observation","id":"gone"}`)})
			// The manifest and a file it lists, given both: still once.
			rep := mustImport(t, store, path, filepath.Join(dir, "Patient.000.ndjson"))
			want := importer.Report{
				Files:     4,
				Resources: map[string]int64{"Patient": 2, "Observation": 2},
				Types:     map[string]importer.Counts{"Patient": {New: 2}, "Observation": {New: 2, Deleted: 1}},
				Deleted:   1,
				Skipped: []importer.SkippedFile{{File: filepath.Join(dir, "error", "OperationOutcome.000.ndjson"),
					Reason: "an export's error file (OperationOutcomes, listed in manifest.json), not data"}},
			}
			if path == root {
				want.Files++ // read, then skipped
				want.Skipped = append(want.Skipped, importer.SkippedFile{File: filepath.Join(root, "last-export.json"), Reason: "not FHIR: a JSON object without resourceType"})
			}
			if diff := cmp.Diff(want, rep, cmpIgnoreBytes); diff != "" {
				t.Errorf("Import(%s) report mismatch (-want +got):\n%s", path, diff)
			}
			if _, ok := store.resources[bulk.Ref{Type: "Observation", ID: "gone"}]; ok {
				t.Errorf("Import(%s) left Observation/gone, which the manifest's deleted file deletes", path)
			}
			if _, ok := store.resources[bulk.Ref{Type: "OperationOutcome", ID: "oo1"}]; ok {
				t.Errorf("Import(%s) stored the error file's OperationOutcome", path)
			}
			// Again: nothing changes, and the deletion is not recorded again.
			rep = mustImport(t, store, path)
			wantTypes := map[string]importer.Counts{"Patient": {Unchanged: 2}, "Observation": {Unchanged: 3}}
			if diff := cmp.Diff(wantTypes, rep.Types); diff != "" {
				t.Errorf("Import(%s) again: counts mismatch (-want +got):\n%s", path, diff)
			}
			if len(store.tombstones) != 1 {
				t.Errorf("Import(%s) twice: tombstones %v, want the one deletion once", path, store.tombstones)
			}
		})
	}
}

// TestImportManifestRemote: files a manifest lists that are not next to it
// are fetched from their URLs; a file saved under its URL's last segment
// or named by a relative URL is read locally; a file that cannot be
// fetched is an error naming it, without the URL's query (signed URLs
// carry credentials).
func TestImportManifestRemote(t *testing.T) {
	var fetched []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched = append(fetched, r.URL.Path)
		switch r.URL.Path {
		case "/files/remote":
			fmt.Fprintln(w, `{"resourceType":"Patient","id":"remote"}`)
		case "/jobs/1/status":
			fmt.Fprint(w, manifestJSON("", []string{"Patient=../../files/remote"}, nil, []string{"OperationOutcome=/files/errors"}))
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	writeFile(t, dir, "manifest.json", manifestJSON(srv.URL, []string{
		"Patient=" + srv.URL + "/files/remote",
		"Patient=" + srv.URL + "/files/saved-by-name.ndjson?sig=secret",
		"Patient=relative/p.ndjson",
		"Patient=" + srv.URL + "/files/private?sig=secret",
	}, nil, nil))
	writeFile(t, dir, "saved-by-name.ndjson", `{"resourceType":"Patient","id":"by-name"}`+"\n")
	writeFile(t, dir, "relative/p.ndjson", `{"resourceType":"Patient","id":"relative"}`+"\n")
	store := newFakeStore()
	o := opts()
	o.HTTPClient = srv.Client()
	rep, err := importer.Import(context.Background(), store, o, dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int64{"Patient": 3}, rep.Resources); diff != "" {
		t.Errorf("Import(remote manifest) resources mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/files/remote", "/files/private"}, fetched); diff != "" {
		t.Errorf("fetched mismatch (-want +got):\n%s", diff)
	}
	if len(rep.Errors) != 1 || rep.Errors[0].File != srv.URL+"/files/private" || !strings.Contains(rep.Errors[0].Message, "HTTP 401") ||
		strings.Contains(rep.Errors[0].Message+rep.Errors[0].File, "secret") {
		t.Errorf("Import(remote manifest) errors = %+v, want one naming %s/files/private with HTTP 401, without its query", rep.Errors, srv.URL)
	}
	// A manifest's URL: its files are fetched, relative to it.
	fetched = nil
	store = newFakeStore()
	rep, err = importer.Import(context.Background(), store, o, srv.URL+"/jobs/1/status")
	if err != nil || len(rep.Errors) > 0 || rep.Resources["Patient"] != 1 || len(rep.Skipped) != 1 {
		t.Errorf("Import(manifest URL) = %+v, %v; want the one Patient it lists, its error file skipped", rep, err)
	}
	if diff := cmp.Diff([]string{"/jobs/1/status", "/files/remote"}, fetched); diff != "" {
		t.Errorf("Import(manifest URL) fetched mismatch (-want +got):\n%s", diff)
	}

	// A relative file that is not there fails up front.
	writeFile(t, dir, "manifest.json", manifestJSON(srv.URL, []string{"Patient=missing.ndjson"}, nil, nil))
	if _, err := importer.Import(context.Background(), newFakeStore(), o, dir); bulk.ErrorCode(err) != bulk.EINVALID || !strings.Contains(err.Error(), "missing.ndjson") {
		t.Errorf("Import(manifest listing a missing file) = %v, want %s naming missing.ndjson", err, bulk.EINVALID)
	}
}

// TestTotalBytes: the total a progress display counts against is what
// Import reads: a manifest stands for its files, given sizes of remote
// ones included.
func TestTotalBytes(t *testing.T) {
	root, dir := exportDir(t)
	var want int64
	for _, name := range []string{"Patient.000.ndjson", "Observation.000.ndjson", "Observation.001.ndjson", "deleted/Bundle.000.ndjson"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		want += fi.Size()
	}
	fi, _ := os.Stat(filepath.Join(root, "last-export.json"))
	want += fi.Size() // read, then skipped
	got, err := importer.TotalBytes(root)
	if err != nil || got != want {
		t.Errorf("TotalBytes(export) = %d, %v; want %d", got, err, want)
	}
	remote := t.TempDir()
	writeFile(t, remote, "m.json", `{"transactionTime":"2026-01-01T00:00:00Z","request":"x","output":[{"type":"Patient","url":"https://h/a","fileSize":1000},{"type":"Patient","url":"https://h/b"}]}`)
	if got, err := importer.TotalBytes(remote); err != nil || got != 1000 {
		t.Errorf("TotalBytes(remote manifest) = %d, %v; want 1000, the size given", got, err)
	}
}

// TestImportCounts (issue 16 item 5): per type, what was new, replaced,
// unchanged and deleted; and Groups whose member list changed.
func TestImportCounts(t *testing.T) {
	dir := t.TempDir()
	group := func(id string, members ...string) string {
		var ms []string
		for _, m := range members {
			ms = append(ms, fmt.Sprintf(`{"entity":{"reference":"Patient/%s"}}`, m))
		}
		return fmt.Sprintf(`{"resourceType":"Group","id":%q,"type":"person","actual":true,"member":[%s]}`, id, strings.Join(ms, ","))
	}
	v1 := writeFile(t, dir, "v1.ndjson", lines(
		`{"resourceType":"Patient","id":"p1"}`,
		`{"resourceType":"Patient","id":"p2"}`,
		`{"resourceType":"Patient","id":"p3"}`,
		group("g1", "p1", "p2", "p3"),
		group("g2", "p1"),
	))
	v2 := writeFile(t, dir, "v2.ndjson", lines(
		`{"resourceType":"Patient","id":"p1"}`,                 // unchanged
		`{"resourceType":"Patient","id":"p2","active":true}`,   // replaced
		`{"resourceType":"Patient","id":"p4"}`,                 // new
		`{"resourceType":"Patient","id":"p4","gender":"male"}`, // replaced in the same batch
		group("g1", "p3", "p4"),
		group("g2", "p1"),
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"DELETE","url":"Patient/p3"}},{"request":{"method":"DELETE","url":"Patient/never"}}]}`,
	))
	store := newFakeStore()
	mustImport(t, store, v1)
	rep := mustImport(t, store, v2)
	want := importer.Report{
		Files:        1,
		Resources:    map[string]int64{"Patient": 4, "Group": 2},
		Types:        map[string]importer.Counts{"Patient": {New: 1, Replaced: 2, Unchanged: 1, Deleted: 2}, "Group": {Replaced: 1, Unchanged: 1}},
		Deleted:      2,
		GroupChanges: []importer.GroupChange{{ID: "g1", Before: 3, After: 2, Joined: 1, Left: 2}},
	}
	if diff := cmp.Diff(want, rep, cmpIgnoreBytes); diff != "" {
		t.Errorf("Import(v2) report mismatch (-want +got):\n%s", diff)
	}
}

// TestImportCancelledCounts (issue 16 item 4): an import cut short reports
// what was stored before the stop, and running it again finishes it.
func TestImportCancelledCounts(t *testing.T) {
	var ls []string
	for i := range 5 {
		ls = append(ls, fmt.Sprintf(`{"resourceType":"Patient","id":"p%d"}`, i))
	}
	path := writeFile(t, t.TempDir(), "p.ndjson", lines(ls...))
	ctx, cancel := context.WithCancel(context.Background())
	store := newFakeStore()
	store.PutFn = func(rs []*bulk.Resource) error {
		switch {
		case store.puts == 1: // the second Put: stored, then Ctrl-C
			cancel()
		case store.puts > 1:
			return ctx.Err() // as a store does once its context ends
		}
		return nil
	}
	o := opts()
	o.BatchSize = 1
	rep, err := importer.Import(ctx, store, o, path)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Import(cancelled) = %v, want context.Canceled", err)
	}
	if diff := cmp.Diff(map[string]importer.Counts{"Patient": {New: 2}}, rep.Types); diff != "" || len(store.resources) != 2 {
		t.Errorf("Import(cancelled after 2 Puts) counts mismatch (-want +got):\n%s\nstored %d", diff, len(store.resources))
	}
	store.PutFn = nil
	rep = mustImport(t, store, path)
	if diff := cmp.Diff(map[string]importer.Counts{"Patient": {New: 3, Unchanged: 2}}, rep.Types); diff != "" {
		t.Errorf("Import again after the stop: counts mismatch (-want +got):\n%s", diff)
	}
}

// TestImportNamesMistakes (issue 16 item 6): a .gz that is not gzip and a
// Bundle that does not import say so.
func TestImportNamesMistakes(t *testing.T) {
	dir := t.TempDir()
	fake := writeFile(t, dir, "fake.ndjson.txt", "<!DOCTYPE html><html>Access denied</html>\n")
	gz := filepath.Join(dir, "Patient.ndjson.gz")
	if err := os.Rename(fake, gz); err != nil {
		t.Fatal(err)
	}
	search := writeFile(t, dir, "search.json", `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Patient","id":"p1"}}]}`)
	untyped := writeFile(t, dir, "untyped.ndjson", `{"resourceType":"Bundle","entry":[]}`+"\n")
	rep := mustImport(t, newFakeStore(), dir)
	want := []importer.LineError{
		{File: gz, Message: `not gzip-compressed, though its name ends in .gz (it starts with "<!DOCTYPE html><"): a download that failed, or a file renamed by mistake?`},
		{File: search, Line: 1, Message: `a searchset Bundle does not import: the entries of transaction, batch and collection Bundles import, and document and message Bundles are stored whole; to import search results, save them as NDJSON or set "type":"collection"`},
		{File: untyped, Line: 1, Message: "a Bundle without a type does not import: the entries of transaction, batch and collection Bundles import, and document and message Bundles are stored whole"},
	}
	if diff := cmp.Diff(want, rep.Errors); diff != "" {
		t.Errorf("Import(mistakes) errors mismatch (-want +got):\n%s", diff)
	}
}
