package importer_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/importer"
)

// now is the injected import time; stamp is how it is written.
var (
	now   = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	nowMS = now.Truncate(time.Millisecond)
	stamp = `"meta":{"lastUpdated":"2024-05-06T07:08:09.123Z"}`
)

// opts keeps the source's lastUpdated, which most tests here compare with:
// stamp_test.go has the store's clock set it.
func opts() importer.Options {
	return importer.Options{Now: func() time.Time { return now }, KeepLastUpdated: true}
}

// reportOpts leaves out of report comparisons what most tests do not
// check: the bytes read, and Types where every resource is new
// (TestImportCounts checks them).
var reportOpts = cmpopts.IgnoreFields(importer.Report{}, "Bytes", "Types")

// bodies makes []byte diffs readable.
var bodies = cmp.Transformer("string", func(b []byte) string { return string(b) })

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	data := []byte(content)
	if strings.HasSuffix(name, ".gz") {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
		data = buf.Bytes()
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

func res(typ, id string, lastUpdated time.Time, body string, patients ...string) *bulk.Resource {
	r := &bulk.Resource{Type: typ, ID: id, LastUpdated: lastUpdated, Body: []byte(body), Patients: patients}
	if typ == "Group" {
		r.Members = fhir.GroupMembers(r.Body)
	}
	return r
}

func byRef(rs ...*bulk.Resource) map[bulk.Ref]*bulk.Resource {
	m := map[bulk.Ref]*bulk.Resource{}
	for _, r := range rs {
		m[bulk.Ref{Type: r.Type, ID: r.ID}] = r
	}
	return m
}

func mustImport(t *testing.T, store *fakeStore, paths ...string) importer.Report {
	t.Helper()
	rep, err := importer.Import(context.Background(), store, opts(), paths...)
	if err != nil {
		t.Fatalf("Import(%q) = %v, want no error", paths, err)
	}
	return rep
}

var threeResources = lines(
	`{"resourceType":"Patient","id":"p1","name":[{"family":"Doe","given":["Jane Q"]}]}`,
	`{"resourceType":"Observation","id":"o1","meta":{"lastUpdated":"2020-01-02T03:04:05.5+02:00"},"subject":{"reference":"Patient/p1"}}`,
	`{"resourceType":"Encounter","id":"e1","subject":{"reference":"Patient/p1"}}`,
)

var threeStored = byRef(
	res("Patient", "p1", nowMS, `{"resourceType":"Patient","id":"p1","name":[{"family":"Doe","given":["Jane Q"]}],`+stamp+`}`, "p1"),
	res("Observation", "o1", time.Date(2020, 1, 2, 1, 4, 5, 5e8, time.UTC), `{"resourceType":"Observation","id":"o1","meta":{"lastUpdated":"2020-01-02T03:04:05.5+02:00"},"subject":{"reference":"Patient/p1"}}`, "p1"),
	res("Encounter", "e1", nowMS, `{"resourceType":"Encounter","id":"e1","subject":{"reference":"Patient/p1"},`+stamp+`}`, "p1"),
)

func TestImportNDJSON(t *testing.T) {
	for _, tc := range []struct {
		name, file, content string
	}{
		{"Plain", "data.ndjson", threeResources},
		{"Gzip", "data.ndjson.gz", threeResources},
		{"NoFinalNewline", "data.ndjson", strings.TrimSuffix(threeResources, "\n")},
		{"CRLF", "data.ndjson", strings.ReplaceAll(threeResources, "\n", "\r\n")},
		{"AnyName", "export.txt", threeResources},
		{"JSONFileWithNDJSON", "data.json", threeResources},
		{"Indented", "data.ndjson", strings.ReplaceAll(threeResources, `":`, `": `)},
		{"ByteOrderMark", "data.ndjson", "\uFEFF" + threeResources},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), tc.file, tc.content)
			store := newFakeStore()
			rep := mustImport(t, store, path)
			if diff := cmp.Diff(threeStored, store.resources, bodies); diff != "" {
				t.Errorf("Import(%s) stored mismatch (-want +got):\n%s", tc.file, diff)
			}
			want := importer.Report{Files: 1, Resources: map[string]int64{"Patient": 1, "Observation": 1, "Encounter": 1}}
			if diff := cmp.Diff(want, rep, reportOpts); diff != "" {
				t.Errorf("Import(%s) report mismatch (-want +got):\n%s", tc.file, diff)
			}
		})
	}
}

func TestImportDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a/Patient.ndjson", `{"resourceType":"Patient","id":"p1"}`+"\n")
	writeFile(t, dir, "a/b/Observation.NDJSON.GZ", `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`+"\n")
	writeFile(t, dir, "c.json", "{\n  \"resourceType\": \"Encounter\",\n  \"id\": \"e1\"\n}\n")
	writeFile(t, dir, "d/e.json.gz", "{\n  \"resourceType\": \"Condition\",\n  \"id\": \"c1\"\n}\n")
	writeFile(t, dir, "notes.txt", "not data\n")
	writeFile(t, dir, "a/README.md", "# not data\n")
	writeFile(t, dir, "x.ndjson.bak", "not data\n")
	if err := os.Symlink(filepath.Join(dir, "notes.txt"), filepath.Join(dir, "link.ndjson")); err != nil {
		t.Fatal(err) // a link to a file is read like the file: here, one bad line
	}
	var got []importer.Progress
	o := opts()
	o.Progress = func(p importer.Progress) { got = append(got, p) }
	store := newFakeStore()
	rep, err := importer.Import(context.Background(), store, o, dir)
	if err != nil {
		t.Fatalf("Import(dir) = %v, want no error", err)
	}
	want := importer.Report{
		Files:     5,
		Resources: map[string]int64{"Patient": 1, "Observation": 1, "Encounter": 1, "Condition": 1},
		Errors:    []importer.LineError{{filepath.Join(dir, "link.ndjson"), 1, "invalid JSON"}},
	}
	if diff := cmp.Diff(want, rep, reportOpts); diff != "" {
		t.Errorf("Import(dir) report mismatch (-want +got):\n%s", diff)
	}
	var size int64
	for _, name := range []string{"a/Patient.ndjson", "a/b/Observation.NDJSON.GZ", "c.json", "d/e.json.gz", "notes.txt"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	if len(got) == 0 {
		t.Fatal("Import(dir) never called Progress")
	}
	if diff := cmp.Diff(importer.Progress{Files: 5, TotalFiles: 5, BytesRead: size, TotalBytes: size, Resources: 4}, got[len(got)-1]); diff != "" {
		t.Errorf("Import(dir) last Progress mismatch (-want +got):\n%s", diff)
	}
}

// transaction is a pretty-printed transaction Bundle in Synthea's style.
const transaction = `{
  "resourceType": "Bundle",
  "type": "transaction",
  "entry": [
    {
      "fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
      "resource": {
        "resourceType": "Patient",
        "id": "p1",
        "name": [ { "family": "Doe", "given": [ "Jane Q" ] } ]
      },
      "request": { "method": "POST", "url": "Patient" }
    },
    {
      "fullUrl": "urn:uuid:22222222-2222-2222-2222-222222222222",
      "resource": {
        "resourceType": "Observation",
        "status": "final",
        "subject": { "reference": "urn:uuid:11111111-1111-1111-1111-111111111111" },
        "performer": [ { "reference": "urn:uuid:33333333-3333-3333-3333-333333333333" } ]
      },
      "request": { "method": "POST", "url": "Observation" }
    },
    {
      "request": { "method": "DELETE", "url": "Patient/old" }
    },
    {
      "resource": {
        "resourceType": "Encounter",
        "subject": { "reference": "urn:uuid:11111111-1111-1111-1111-111111111111" }
      },
      "request": { "method": "PUT", "url": "Encounter/e1" }
    },
    {
      "fullUrl": "urn:uuid:44444444-4444-4444-4444-444444444444",
      "resource": { "resourceType": "Nonsense", "id": "x" },
      "request": { "method": "POST", "url": "Nonsense" }
    },
    {
      "request": { "method": "DELETE", "url": "Patient?identifier=x" }
    },
    {
      "resource": {
        "resourceType": "Procedure",
        "status": "completed",
        "subject": { "reference": "Patient/p1" }
      },
      "request": { "method": "POST", "url": "Procedure" }
    },
    {
      "request": { "method": "GET", "url": "Patient/p1" }
    }
  ]
}
`

func TestImportTransactionBundle(t *testing.T) {
	dir := t.TempDir()
	old := writeFile(t, dir, "old.ndjson", `{"resourceType":"Patient","id":"old"}`+"\n")
	bundle := writeFile(t, dir, "bundle.json", transaction)
	store := newFakeStore()
	mustImport(t, store, old)

	rep := mustImport(t, store, bundle)
	wantRep := importer.Report{
		Files:     1,
		Resources: map[string]int64{"Patient": 1, "Observation": 1, "Encounter": 1, "Procedure": 1},
		Deleted:   1,
		Errors: []importer.LineError{
			{File: bundle, Line: 34, Message: `Bundle.entry[4]: unknown resourceType "Nonsense" (this store holds FHIR R4)`},
			{File: bundle, Line: 39, Message: `Bundle.entry[5]: DELETE of "Patient?identifier=x": only Type/id deletes are supported`},
		},
		Unresolved: 1, // the performer
	}
	if diff := cmp.Diff(wantRep, rep, reportOpts); diff != "" {
		t.Errorf("Import(bundle) report mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bulk.Tombstone{{Type: "Patient", ID: "old", DeletedAt: nowMS}}, store.tombstones); diff != "" {
		t.Errorf("Import(bundle) tombstones mismatch (-want +got):\n%s", diff)
	}

	var procedure *bulk.Resource
	for ref, r := range store.resources {
		if ref.Type == "Procedure" {
			procedure = r
		}
	}
	if procedure == nil || !fhir.IsID(procedure.ID) {
		t.Fatalf("Import(bundle) stored Procedure %+v, want one with a derived id", procedure)
	}
	want := byRef(
		res("Patient", "p1", nowMS, `{"resourceType":"Patient","id":"p1","name":[{"family":"Doe","given":["Jane Q"]}],`+stamp+`}`, "p1"),
		res("Observation", "22222222-2222-2222-2222-222222222222", nowMS,
			`{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/p1"},"performer":[{"reference":"urn:uuid:33333333-3333-3333-3333-333333333333"}],"id":"22222222-2222-2222-2222-222222222222",`+stamp+`}`, "p1"),
		res("Encounter", "e1", nowMS, `{"resourceType":"Encounter","subject":{"reference":"Patient/p1"},"id":"e1",`+stamp+`}`, "p1"),
		res("Procedure", procedure.ID, nowMS, `{"resourceType":"Procedure","status":"completed","subject":{"reference":"Patient/p1"},"id":"`+procedure.ID+`",`+stamp+`}`, "p1"),
	)
	if diff := cmp.Diff(want, store.resources, bodies); diff != "" {
		t.Errorf("Import(bundle) stored mismatch (-want +got):\n%s", diff)
	}

	// Importing the Bundle again replaces what it stored: derived ids are
	// deterministic.
	mustImport(t, store, bundle)
	if diff := cmp.Diff(want, store.resources, bodies); diff != "" {
		t.Errorf("Import(bundle) again stored mismatch (-want +got):\n%s", diff)
	}
}

func TestImportTransactionDeletesFirst(t *testing.T) {
	// R4 http.html#trules: a transaction's DELETEs run before its writes.
	bundle := `{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"resource":{"resourceType":"Patient","id":"p1","active":true},"request":{"method":"PUT","url":"Patient/p1"}},` +
		`{"request":{"method":"DELETE","url":"Patient/p1"}}]}`
	path := writeFile(t, t.TempDir(), "b.ndjson", bundle+"\n")
	store := newFakeStore()
	rep := mustImport(t, store, path)
	want := byRef(res("Patient", "p1", nowMS, `{"resourceType":"Patient","id":"p1","active":true,`+stamp+`}`, "p1"))
	if diff := cmp.Diff(want, store.resources, bodies); diff != "" {
		t.Errorf("Import(transaction) stored mismatch (-want +got):\n%s", diff)
	}
	if rep.Deleted != 1 {
		t.Errorf("Import(transaction) Deleted = %d, want 1", rep.Deleted)
	}
}

func TestImportLastUpdated(t *testing.T) {
	for _, tc := range []struct {
		name, line, body string
		lastUpdated      time.Time
	}{
		{
			name:        "NoMeta",
			line:        `{"resourceType":"Patient","id":"p1"}`,
			body:        `{"resourceType":"Patient","id":"p1",` + stamp + `}`,
			lastUpdated: nowMS,
		},
		{
			name:        "MetaWithoutLastUpdated",
			line:        `{"resourceType":"Patient","meta":{"versionId":"3"},"id":"p1"}`,
			body:        `{"resourceType":"Patient","meta":{"versionId":"3","lastUpdated":"2024-05-06T07:08:09.123Z"},"id":"p1"}`,
			lastUpdated: nowMS,
		},
		{
			name:        "LastUpdatedKept",
			line:        `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2019-12-31T23:59:59.123456-05:00"}}`,
			body:        `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2019-12-31T23:59:59.123456-05:00"}}`,
			lastUpdated: time.Date(2020, 1, 1, 4, 59, 59, 123456000, time.UTC),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "p.ndjson", tc.line+"\n")
			store := newFakeStore()
			mustImport(t, store, path)
			want := byRef(res("Patient", "p1", tc.lastUpdated, tc.body, "p1"))
			if diff := cmp.Diff(want, store.resources, bodies); diff != "" {
				t.Errorf("Import(%s) stored mismatch (-want +got):\n%s", tc.line, diff)
			}
		})
	}
}

func TestImportBadLines(t *testing.T) {
	path := writeFile(t, t.TempDir(), "bad.ndjson", lines(
		`{"resourceType":"Patient","id":"p1"}`,
		`{"resourceType":"Patient","id":`,
		``,
		`{"id":"x"}`,
		`{"resourceType":"Foo","id":"x"}`,
		`{"resourceType":"Patient"}`,
		`{"resourceType":"Patient","id":"a b"}`,
		`{"resourceType":"Patient","id":"p8","meta":{"lastUpdated":"2020-02-30T00:00:00Z"}}`,
		`{"resourceType":"Patient","id":"p9","meta":{"lastUpdated":"2020-01-01"}}`,
		`[1,2]`,
		`{"resourceType":"Patient","id":"p2"}`,
		`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"p3"}},{"resource":{"resourceType":"Patient","id":7}}]}`,
		`{"resourceType":7,"id":"x"}`,
		"  \t{\"resourceType\":\"Patient\",\"id\":\"p4\"}  \r",
		`{"resourceType":"Patient","id":"p5","meta":"x"}`,
		`{"resourceType":"Patient","id":"p6","meta":{"lastUpdated":20200101}}`,
	))
	store := newFakeStore()
	rep := mustImport(t, store, path)
	want := importer.Report{
		Files:     1,
		Resources: map[string]int64{"Patient": 4},
		Errors: []importer.LineError{
			{path, 2, "invalid JSON"},
			{path, 4, "no resourceType"},
			{path, 5, `unknown resourceType "Foo" (this store holds FHIR R4)`},
			{path, 6, "Patient without id"},
			{path, 7, `invalid id "a b"`},
			{path, 8, `meta.lastUpdated "2020-02-30T00:00:00Z" is not a FHIR instant`},
			{path, 9, `meta.lastUpdated "2020-01-01" is not a FHIR instant`},
			{path, 10, "not a JSON object"},
			{path, 12, "Bundle.entry[1]: invalid id 7"},
			{path, 13, "resourceType 7 is not a string"},
			{path, 15, "meta is not an object"},
			{path, 16, "meta.lastUpdated 20200101 is not a FHIR instant"},
		},
	}
	if diff := cmp.Diff(want, rep, reportOpts); diff != "" {
		t.Errorf("Import(bad.ndjson) report mismatch (-want +got):\n%s", diff)
	}
	var ids []string
	for ref := range store.resources {
		ids = append(ids, ref.ID)
	}
	slices.Sort(ids)
	if diff := cmp.Diff([]string{"p1", "p2", "p3", "p4"}, ids); diff != "" {
		t.Errorf("Import(bad.ndjson) stored ids mismatch (-want +got):\n%s", diff)
	}
}

func TestImportBadDocument(t *testing.T) {
	dir := t.TempDir()
	broken := writeFile(t, dir, "broken.json", "\n\n{\n  \"resourceType\": \"Patient\",\n  \"id\": \n")
	badID := writeFile(t, dir, "bad-id.json", "\n{\n  \"resourceType\": \"Patient\",\n  \"id\": \"a/b\"\n}\n")
	rep := mustImport(t, newFakeStore(), broken, badID)
	want := []importer.LineError{
		{broken, 3, "invalid JSON"},
		{badID, 2, `invalid id "a/b"`},
	}
	if diff := cmp.Diff(want, rep.Errors); diff != "" {
		t.Errorf("Import(bad documents) errors mismatch (-want +got):\n%s", diff)
	}
}

func TestImportReplaces(t *testing.T) {
	dir := t.TempDir()
	v1 := writeFile(t, dir, "v1.ndjson", `{"resourceType":"Patient","id":"p1","active":false}`+"\n")
	v2 := writeFile(t, dir, "v2.ndjson", lines(
		`{"resourceType":"Patient","id":"p1","active":true}`,
		`{"resourceType":"Patient","id":"p2","gender":"male"}`,
		`{"resourceType":"Patient","id":"p2","gender":"female"}`,
	))
	want := byRef(
		res("Patient", "p1", nowMS, `{"resourceType":"Patient","id":"p1","active":true,`+stamp+`}`, "p1"),
		res("Patient", "p2", nowMS, `{"resourceType":"Patient","id":"p2","gender":"female",`+stamp+`}`, "p2"),
	)
	for _, batchSize := range []int{1, 1000} {
		store := newFakeStore()
		o := opts()
		o.BatchSize = batchSize
		for _, path := range []string{v1, v2} {
			if _, err := importer.Import(context.Background(), store, o, path); err != nil {
				t.Fatalf("Import(%s) = %v, want no error", path, err)
			}
		}
		if diff := cmp.Diff(want, store.resources, bodies); diff != "" {
			t.Errorf("Import(v1), Import(v2) with BatchSize %d stored mismatch (-want +got):\n%s", batchSize, diff)
		}
	}
}

func TestImportForwardURNReferences(t *testing.T) {
	dir := t.TempDir()
	// Group sorts before Patient, as in synthea-100.
	writeFile(t, dir, "Group.ndjson", `{"resourceType":"Group","id":"g1","type":"person","actual":true,"member":[`+
		`{"entity":{"reference":"urn:uuid:p2"}},{"entity":{"reference":"urn:uuid:p1"}},{"entity":{"reference":"urn:uuid:nobody"}}]}`+"\n")
	writeFile(t, dir, "Observation.ndjson", `{"resourceType":"Observation","id":"o1","subject":{"reference":"urn:uuid:p1"},"performer":[{"reference":"urn:uuid:d1"}]}`+"\n")
	writeFile(t, dir, "Patient.ndjson", lines(`{"resourceType":"Patient","id":"p1"}`, `{"resourceType":"Patient","id":"p2"}`))
	writeFile(t, dir, "Practitioner.ndjson", `{"resourceType":"Practitioner","id":"d1"}`+"\n")

	for _, batchSize := range []int{1, 1000} {
		store := newFakeStore()
		o := opts()
		o.BatchSize = batchSize
		rep, err := importer.Import(context.Background(), store, o, dir)
		if err != nil {
			t.Fatalf("Import(dir) = %v, want no error", err)
		}
		want := byRef(
			res("Group", "g1", nowMS, `{"resourceType":"Group","id":"g1","type":"person","actual":true,"member":[`+
				`{"entity":{"reference":"Patient/p2"}},{"entity":{"reference":"Patient/p1"}},{"entity":{"reference":"urn:uuid:nobody"}}],`+stamp+`}`, "p1", "p2"),
			res("Observation", "o1", nowMS, `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"performer":[{"reference":"Practitioner/d1"}],`+stamp+`}`, "p1"),
			res("Patient", "p1", nowMS, `{"resourceType":"Patient","id":"p1",`+stamp+`}`, "p1"),
			res("Patient", "p2", nowMS, `{"resourceType":"Patient","id":"p2",`+stamp+`}`, "p2"),
			res("Practitioner", "d1", nowMS, `{"resourceType":"Practitioner","id":"d1",`+stamp+`}`),
		)
		if diff := cmp.Diff(want, store.resources, bodies); diff != "" {
			t.Errorf("Import(dir) with BatchSize %d stored mismatch (-want +got):\n%s", batchSize, diff)
		}
		if diff := cmp.Diff([]string{"p1", "p2"}, store.resources[bulk.Ref{Type: "Group", ID: "g1"}].Members); diff != "" {
			t.Errorf("Import(dir) Group members mismatch (-want +got):\n%s", diff)
		}
		wantRep := importer.Report{
			Files:      4,
			Resources:  map[string]int64{"Group": 1, "Observation": 1, "Patient": 2, "Practitioner": 1},
			Unresolved: 1,
		}
		if diff := cmp.Diff(wantRep, rep, reportOpts); diff != "" {
			t.Errorf("Import(dir) report mismatch (-want +got):\n%s", diff)
		}
	}
}

func TestImportAmbiguousURN(t *testing.T) {
	path := writeFile(t, t.TempDir(), "a.ndjson", lines(
		`{"resourceType":"Observation","id":"o1","subject":{"reference":"urn:uuid:x1"}}`,
		`{"resourceType":"Patient","id":"x1"}`,
		`{"resourceType":"Device","id":"x1"}`,
	))
	store := newFakeStore()
	rep := mustImport(t, store, path)
	if rep.Unresolved != 1 {
		t.Errorf("Import(id under two types) Unresolved = %d, want 1", rep.Unresolved)
	}
	if got := string(store.resources[bulk.Ref{Type: "Observation", ID: "o1"}].Body); !strings.Contains(got, `"urn:uuid:x1"`) {
		t.Errorf("Import(id under two types) stored %s, want the urn:uuid reference left", got)
	}
}

func TestImportLongLine(t *testing.T) {
	data := strings.Repeat("QUJD", 1<<20) // 4 MiB, past any read buffer
	big := `{"resourceType":"DocumentReference","id":"big","subject":{"reference":"Patient/p1"},"content":[{"attachment":{"data":"` + data + `"}}]}`
	for _, name := range []string{"big.ndjson", "big.ndjson.gz"} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), name, lines(`{"resourceType":"Patient","id":"p1"}`, big, `{"resourceType":"Patient","id":"p2"}`))
			store := newFakeStore()
			rep := mustImport(t, store, path)
			if len(rep.Errors) != 0 || rep.Resources["Patient"] != 2 || rep.Resources["DocumentReference"] != 1 {
				t.Errorf("Import(%s) = %+v, want 2 Patients and 1 DocumentReference", name, rep)
			}
			r := store.resources[bulk.Ref{Type: "DocumentReference", ID: "big"}]
			if want := big[:len(big)-1] + "," + stamp + "}"; r == nil || string(r.Body) != want {
				t.Errorf("Import(%s) did not store the long line intact", name)
			}
		})
	}
}

func TestImportTruncatedGzip(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "cut.ndjson.gz", lines(`{"resourceType":"Patient","id":"p1"}`, `{"resourceType":"Patient","id":"p2"}`))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Drop the end of the gzip trailer: all data is there, the check fails.
	if err := os.WriteFile(path, data[:len(data)-4], 0o644); err != nil {
		t.Fatal(err)
	}
	next := writeFile(t, dir, "next.ndjson", `{"resourceType":"Patient","id":"p3"}`+"\n")
	store := newFakeStore()
	rep := mustImport(t, store, path, next)
	want := importer.Report{
		Files:     2,
		Resources: map[string]int64{"Patient": 3},
		Errors:    []importer.LineError{{path, 3, "read: unexpected EOF"}},
	}
	if diff := cmp.Diff(want, rep, reportOpts); diff != "" {
		t.Errorf("Import(truncated gzip) report mismatch (-want +got):\n%s", diff)
	}
}

func TestImportStoreError(t *testing.T) {
	path := writeFile(t, t.TempDir(), "p.ndjson", lines(
		`{"resourceType":"Patient","id":"p1"}`,
		`{"resourceType":"Patient","id":"p2"}`,
		`{"resourceType":"Patient","id":"p3"}`,
		`{"resourceType":"Patient","id":"p4"}`,
	))
	store := newFakeStore()
	store.PutFn = func(rs []*bulk.Resource) error {
		if store.puts == 2 {
			return bulk.Errorf(bulk.ETRANSIENT, "store unavailable")
		}
		return nil
	}
	o := opts()
	o.BatchSize = 1
	rep, err := importer.Import(context.Background(), store, o, path)
	if got := bulk.ErrorCode(err); got != bulk.ETRANSIENT {
		t.Errorf("Import(failing store) = %v, want a %s error", err, bulk.ETRANSIENT)
	}
	if got := rep.Resources["Patient"]; got != 2 || len(store.resources) != 2 {
		t.Errorf("Import(failing store) reported %d and kept %d Patients, want 2 and 2", got, len(store.resources))
	}
}

func TestImportPathErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "p.ndjson", `{"resourceType":"Patient","id":"p1"}`+"\n")
	store := newFakeStore()
	_, err := importer.Import(context.Background(), store, opts(), good, filepath.Join(dir, "missing.ndjson"))
	if got := bulk.ErrorCode(err); got != bulk.EINVALID {
		t.Errorf("Import(missing path) = %v, want an %s error", err, bulk.EINVALID)
	}
	if len(store.resources) != 0 {
		t.Errorf("Import(missing path) stored %d resources, want none", len(store.resources))
	}
}

func TestImportCancelled(t *testing.T) {
	path := writeFile(t, t.TempDir(), "p.ndjson", `{"resourceType":"Patient","id":"p1"}`+"\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := importer.Import(ctx, newFakeStore(), opts(), path); !errors.Is(err, context.Canceled) {
		t.Errorf("Import(cancelled) = %v, want context.Canceled", err)
	}
}

// synthea is synthea-100, beside the repository (see its README.md).
var synthea = filepath.Join("..", "..", "..", "shared", "data", "synthea-100")

func skipWithoutSynthea(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(synthea); err != nil {
		tb.Skipf("synthea-100 sample data not found at %s (it lives in ../shared beside the repository): %v", synthea, err)
	}
}

func TestImportSynthea(t *testing.T) {
	skipWithoutSynthea(t)
	store := newFakeStore()
	rep := mustImport(t, store, synthea)

	// Counts from synthea-100/README.md.
	want := map[string]int64{
		"Observation": 16315, "Claim": 6083, "ExplanationOfBenefit": 3697, "Encounter": 3697,
		"MedicationRequest": 2386, "Procedure": 2351, "Immunization": 1287, "DiagnosticReport": 897,
		"Condition": 639, "CareTeam": 278, "CarePlan": 278, "Practitioner": 203, "Organization": 203, "Patient": 100,
		"AllergyIntolerance": 38, "ImagingStudy": 16, "Group": 8, "Device": 4, "DocumentReference": 3,
	}
	wantRep := importer.Report{Files: 19, Resources: want}
	if diff := cmp.Diff(wantRep, rep, reportOpts); diff != "" {
		t.Errorf("Import(synthea-100) report mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, store.counts()); diff != "" {
		t.Errorf("Import(synthea-100) stored counts mismatch (-want +got):\n%s", diff)
	}
	var total int64
	for _, n := range store.counts() {
		total += n
	}
	if total != 38483 {
		t.Errorf("Import(synthea-100) stored %d resources, want 38483", total)
	}

	members := 0
	for ref, r := range store.resources {
		if !json.Valid(r.Body) || bytes.ContainsAny(r.Body, "\n") {
			t.Errorf("%s/%s: body is not compact single-line JSON", ref.Type, ref.ID)
		}
		if bytes.Contains(r.Body, []byte(`"reference":"urn:uuid:`)) {
			t.Errorf("%s/%s: urn:uuid reference left", ref.Type, ref.ID)
		}
		if r.LastUpdated.IsZero() {
			t.Errorf("%s/%s: no LastUpdated", ref.Type, ref.ID)
		}
		if ref.Type != "Group" {
			continue
		}
		if len(r.Members) == 0 {
			t.Errorf("Group/%s has no members", ref.ID)
		}
		for _, id := range r.Members {
			if _, ok := store.resources[bulk.Ref{Type: "Patient", ID: id}]; !ok {
				t.Errorf("Group/%s member %s is not an imported Patient", ref.ID, id)
			}
		}
		members += len(r.Members)
	}
	if members != 100 {
		t.Errorf("Import(synthea-100) Groups have %d members in all, want 100", members)
	}
	// Every compartment resource but the Practitioner-only ones belongs to
	// some Patient.
	for _, typ := range []string{"Observation", "Encounter", "Claim", "ExplanationOfBenefit", "CareTeam"} {
		for ref, r := range store.resources {
			if ref.Type == typ && len(r.Patients) == 0 {
				t.Errorf("%s/%s is in no Patient compartment", ref.Type, ref.ID)
			}
		}
	}
}

func BenchmarkImportSynthea(b *testing.B) {
	skipWithoutSynthea(b)
	var size int64
	for b.Loop() {
		rep, err := importer.Import(context.Background(), newFakeStore(), opts(), synthea)
		if err != nil {
			b.Fatal(err)
		}
		if len(rep.Errors) != 0 {
			b.Fatalf("Import(synthea-100) errors: %v", rep.Errors[0])
		}
		size = 0
		for _, n := range rep.Resources {
			size += n
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "resources/s")
}

// TestImportRecreated: a resource imported again after it was deleted is
// stamped with the import time when its own meta.lastUpdated is older than
// the deletion, so _since exports see it as changed (requirements 5.4).
func TestImportRecreated(t *testing.T) {
	dir := t.TempDir()
	old := `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2020-01-01T00:00:00Z"}}`
	newer := `{"resourceType":"Patient","id":"p2","meta":{"lastUpdated":"2030-01-01T00:00:00Z"}}`
	data := writeFile(t, dir, "p.ndjson", old+"\n"+newer+"\n")
	del := writeFile(t, dir, "del.json", `{"resourceType":"Bundle","type":"transaction","entry":[`+
		`{"request":{"method":"DELETE","url":"Patient/p1"}},{"request":{"method":"DELETE","url":"Patient/p2"}}]}`)
	store := newFakeStore()
	deletedAt := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	reimport := deletedAt.Add(time.Hour)
	at := func(now time.Time) importer.Options {
		return importer.Options{Now: func() time.Time { return now }, KeepLastUpdated: true}
	}
	for _, step := range []struct {
		now  time.Time
		path string
	}{{deletedAt.Add(-time.Hour), data}, {deletedAt, del}, {reimport, data}} {
		if _, err := importer.Import(context.Background(), store, at(step.now), step.path); err != nil {
			t.Fatal(err)
		}
	}
	want := byRef(
		res("Patient", "p1", reimport, `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2024-06-01T01:00:00.000Z"}}`, "p1"),
		res("Patient", "p2", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), newer, "p2"),
	)
	if diff := cmp.Diff(want, store.resources, bodies); diff != "" {
		t.Errorf("re-created resources mismatch (-want +got):\n%s", diff)
	}
	if len(store.tombstones) != 0 {
		t.Errorf("tombstones left: %v", store.tombstones)
	}
}
