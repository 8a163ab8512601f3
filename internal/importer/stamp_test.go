package importer_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tidwall/gjson"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/importer"
	"github.com/tranchehq/tranche/internal/mem"
)

// The store's clock sets meta.lastUpdated as each version is stored (R12,
// R55): these tests import with it, as `tranche import` and the S3 trigger
// do; importer_test.go keeps the source's.

// source is how a source lastUpdated is kept.
func source(instant string) string {
	return `{"url":"` + importer.SourceLastUpdatedURL + `","valueInstant":"` + instant + `"}`
}

// stored reads every resource of types from store, checking that each
// body's meta.lastUpdated is the indexed LastUpdated.
func stored(t *testing.T, store bulk.ResourceSource, types ...string) map[bulk.Ref]*bulk.Resource {
	t.Helper()
	out := map[bulk.Ref]*bulk.Resource{}
	for _, typ := range types {
		err := store.List(context.Background(), typ, "", func(r *bulk.Resource, _ bulk.Cursor) error {
			c := *r
			c.Body = slices.Clone(r.Body)
			out[bulk.Ref{Type: r.Type, ID: r.ID}] = &c
			text := gjson.GetBytes(c.Body, "meta.lastUpdated").Str
			if at, err := time.Parse(time.RFC3339Nano, text); err != nil || !at.Equal(c.LastUpdated) || len(text) != len("2006-01-02T15:04:05.000Z") {
				t.Errorf("%s/%s: meta.lastUpdated %q, indexed at %v: want the same instant, in milliseconds", r.Type, r.ID, text, c.LastUpdated)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func stampedImport(t *testing.T, store bulk.ResourceStore, o importer.Options, paths ...string) importer.Report {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return now }
	}
	rep, err := importer.Import(context.Background(), store, o, paths...)
	if err != nil {
		t.Fatalf("Import(%q) = %v", paths, err)
	}
	if len(rep.Errors) > 0 {
		t.Fatalf("Import(%q) reported %v", paths, rep.Errors)
	}
	return rep
}

func TestImportStampsLastUpdated(t *testing.T) {
	path := writeFile(t, t.TempDir(), "data.ndjson", lines(
		`{"resourceType":"Patient","id":"p1"}`,
		`{"resourceType":"Patient","id":"p2","meta":{"versionId":"3"}}`,
		`{"resourceType":"Patient","id":"p3","meta":{"versionId":"3","lastUpdated":"2019-12-31T23:59:59.123456-05:00","source":"#a"}}`,
		`{"resourceType":"Patient","id":"p4","meta":{"extension":[{"url":"http://x","valueString":"y"}],"lastUpdated":"2020-01-01T00:00:00Z"}}`,
		// An export of a Tranche imported again: the file's lastUpdated
		// replaces the source it kept.
		`{"resourceType":"Patient","id":"p5","meta":{"extension":[`+source("2001-01-01T00:00:00Z")+`],"lastUpdated":"2021-01-01T00:00:00.000Z"}}`,
		`{"resourceType":"Patient","id":"p6","meta":{}}`,
	))
	store := mem.NewResourceStore(2)
	stampedImport(t, store, importer.Options{}, path)
	at := nowMS.Format("2006-01-02T15:04:05.000Z")
	want := map[string]string{
		"p1": `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"` + at + `"}}`,
		"p2": `{"resourceType":"Patient","id":"p2","meta":{"versionId":"3","lastUpdated":"` + at + `"}}`,
		"p3": `{"resourceType":"Patient","id":"p3","meta":{"extension":[` + source("2019-12-31T23:59:59.123456-05:00") + `],"versionId":"3","lastUpdated":"` + at + `","source":"#a"}}`,
		"p4": `{"resourceType":"Patient","id":"p4","meta":{"extension":[{"url":"http://x","valueString":"y"},` + source("2020-01-01T00:00:00Z") + `],"lastUpdated":"` + at + `"}}`,
		"p5": `{"resourceType":"Patient","id":"p5","meta":{"extension":[` + source("2021-01-01T00:00:00.000Z") + `],"lastUpdated":"` + at + `"}}`,
		"p6": `{"resourceType":"Patient","id":"p6","meta":{"lastUpdated":"` + at + `"}}`,
	}
	got := map[string]string{}
	for ref, r := range stored(t, store, "Patient") {
		got[ref.ID] = string(r.Body)
		if !r.LastUpdated.Equal(nowMS) {
			t.Errorf("%s: LastUpdated %v, want the import's stamp %v", ref.ID, r.LastUpdated, nowMS)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored bodies (-want +got):\n%s", diff)
	}
}

// TestImportStampsAreMonotonic: every batch gets a later stamp than the
// last, within an import and across imports, whatever Now says; a version
// imported again lands after the one it replaces, however old the file's
// own lastUpdated (issue 13: 324 resources last updated before the last
// export used to vanish from `--since-last`).
func TestImportStampsAreMonotonic(t *testing.T) {
	dir := t.TempDir()
	var ls []string
	for i := range 5 {
		ls = append(ls, fmt.Sprintf(`{"resourceType":"Observation","id":"o%d","meta":{"lastUpdated":"2001-01-01T00:00:00Z"}}`, i))
	}
	path := writeFile(t, dir, "obs.ndjson", lines(ls...))
	store := mem.NewResourceStore(2)
	stampedImport(t, store, importer.Options{BatchSize: 2}, path)
	first := stored(t, store, "Observation")
	var stamps []time.Time
	for i := range 5 {
		stamps = append(stamps, first[bulk.Ref{Type: "Observation", ID: fmt.Sprintf("o%d", i)}].LastUpdated)
	}
	ms := time.Millisecond
	if want := []time.Time{nowMS, nowMS, nowMS.Add(ms), nowMS.Add(ms), nowMS.Add(2 * ms)}; !slices.EqualFunc(want, stamps, time.Time.Equal) {
		t.Errorf("stamps of 5 resources in batches of 2 = %v, want %v", stamps, want)
	}

	// An export kicked off now, then a new version of the file with a
	// clock that went back an hour.
	kick, err := store.TransactionTime(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ls {
		ls[i] = strings.Replace(ls[i], `"id"`, `"status":"final","id"`, 1)
	}
	path2 := writeFile(t, dir, "obs2.ndjson", lines(ls...))
	stampedImport(t, store, importer.Options{Now: func() time.Time { return now.Add(-time.Hour) }}, path2)
	for ref, r := range stored(t, store, "Observation") {
		if !r.LastUpdated.After(kick) || !r.LastUpdated.After(first[ref].LastUpdated) {
			t.Errorf("%s re-imported at %v, want after transactionTime %v and the version it replaced (%v)", ref.ID, r.LastUpdated, kick, first[ref].LastUpdated)
		}
	}
}

// TestImportStampsBundles: Bundle entries are stamped the same way; a
// deletion is stamped too, after the writes before it; a resource whose
// `urn:uuid:` references are resolved in the last pass is stored again,
// a new version with a later stamp.
func TestImportStampsBundles(t *testing.T) {
	dir := t.TempDir()
	store := mem.NewResourceStore(2)
	old := writeFile(t, dir, "old.ndjson", lines(`{"resourceType":"Patient","id":"old","meta":{"lastUpdated":"2002-02-02T00:00:00Z"}}`))
	stampedImport(t, store, importer.Options{}, old)
	before := stored(t, store, "Patient")[bulk.Ref{Type: "Patient", ID: "old"}].LastUpdated

	bundle := writeFile(t, dir, "bundle.json", `{"resourceType":"Bundle","type":"transaction","entry":[
  {"fullUrl":"urn:uuid:11111111-1111-1111-1111-111111111111",
   "resource":{"resourceType":"Patient","meta":{"lastUpdated":"2003-03-03T00:00:00Z"}},
   "request":{"method":"POST","url":"Patient"}},
  {"resource":{"resourceType":"Observation","id":"o1","meta":{"lastUpdated":"2003-03-03T00:00:00Z"},
     "subject":{"reference":"urn:uuid:11111111-1111-1111-1111-111111111111"},
     "performer":[{"reference":"urn:uuid:99999999-9999-9999-9999-999999999999"}]},
   "request":{"method":"PUT","url":"Observation/o1"}},
  {"request":{"method":"DELETE","url":"Patient/old"}}
]}`)
	collection := writeFile(t, dir, "later.ndjson", lines(
		`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Practitioner","id":"99999999-9999-9999-9999-999999999999","meta":{"lastUpdated":"2004-04-04T00:00:00Z"}}}]}`,
	))
	rep := stampedImport(t, store, importer.Options{}, bundle, collection)
	if rep.Deleted != 1 || rep.Unresolved != 0 {
		t.Errorf("report %+v, want 1 deletion and the performer resolved", rep)
	}
	got := stored(t, store, "Patient", "Observation", "Practitioner")
	p := got[bulk.Ref{Type: "Patient", ID: "11111111-1111-1111-1111-111111111111"}]
	o := got[bulk.Ref{Type: "Observation", ID: "o1"}]
	d := got[bulk.Ref{Type: "Practitioner", ID: "99999999-9999-9999-9999-999999999999"}]
	if p == nil || o == nil || d == nil {
		t.Fatalf("stored %v, want the Bundles' Patient, Observation and Practitioner", slices.Collect(func(yield func(bulk.Ref) bool) {
			for r := range got {
				yield(r)
			}
		}))
	}
	for _, r := range []*bulk.Resource{p, o, d} {
		if !strings.Contains(string(r.Body), `"extension":[{"url":"`+importer.SourceLastUpdatedURL+`"`) {
			t.Errorf("%s/%s = %s, want the source lastUpdated in meta.extension", r.Type, r.ID, r.Body)
		}
	}
	var ts []bulk.Tombstone
	_ = store.Tombstones(context.Background(), "Patient", bulk.Range{Until: now.AddDate(1, 0, 0)}, func(t bulk.Tombstone) error {
		ts = append(ts, t)
		return nil
	})
	if len(ts) != 1 || !ts[0].DeletedAt.After(before) {
		t.Fatalf("tombstones %v, want Patient/old deleted after it was stored (%v)", ts, before)
	}
	// The DELETE runs first, then the entries (one batch with the next
	// file's); the Observation's last reference is resolved once the
	// Practitioner is stored: stored again, later.
	if !ts[0].DeletedAt.Before(p.LastUpdated) || !p.LastUpdated.Equal(d.LastUpdated) || !d.LastUpdated.Before(o.LastUpdated) {
		t.Errorf("deleted at %v, Patient %v, Practitioner %v, Observation (resolved last) %v: want increasing, the batch of Patient and Practitioner at one stamp", ts[0].DeletedAt, p.LastUpdated, d.LastUpdated, o.LastUpdated)
	}
	if want := `"performer":[{"reference":"Practitioner/99999999-9999-9999-9999-999999999999"}]`; !strings.Contains(string(o.Body), want) {
		t.Errorf("Observation = %s, want %s", o.Body, want)
	}
}

// TestImportKeepLastUpdated: a backup restored as it was keeps every
// lastUpdated, takes no stamp and leaves meta alone.
func TestImportKeepLastUpdated(t *testing.T) {
	line := `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2020-01-01T00:00:00.000Z"}}`
	path := writeFile(t, t.TempDir(), "backup.ndjson", lines(line, `{"resourceType":"Patient","id":"p2"}`))
	store := mem.NewResourceStore(2)
	stampedImport(t, store, importer.Options{KeepLastUpdated: true}, path)
	got := stored(t, store, "Patient")
	if r := got[bulk.Ref{Type: "Patient", ID: "p1"}]; string(r.Body) != line || !r.LastUpdated.Equal(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("kept p1 = %s at %v, want it as it was", r.Body, r.LastUpdated)
	}
	if r := got[bulk.Ref{Type: "Patient", ID: "p2"}]; !r.LastUpdated.Equal(nowMS) {
		t.Errorf("p2 without lastUpdated at %v, want the import time %v", r.LastUpdated, nowMS)
	}
}

// gatedStore holds every Put until the test lets it through: a batch in
// flight.
type gatedStore struct {
	*mem.ResourceStore
	entered chan []*bulk.Resource
	release chan struct{}
}

func (g *gatedStore) Put(ctx context.Context, rs []*bulk.Resource) error {
	g.entered <- rs
	<-g.release
	return g.ResourceStore.Put(ctx, rs)
}

// TestImportHoldsTransactionTime: while a stamped batch is being stored, a
// kick-off's transactionTime stays below its stamp, so the export it starts
// leaves the batch to the next `_since` export instead of missing it (R55).
func TestImportHoldsTransactionTime(t *testing.T) {
	ctx := context.Background()
	store := &gatedStore{ResourceStore: mem.NewResourceStore(2), entered: make(chan []*bulk.Resource), release: make(chan struct{})}
	path := writeFile(t, t.TempDir(), "data.ndjson", lines(
		`{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2001-01-01T00:00:00Z"}}`,
		`{"resourceType":"Patient","id":"p2","meta":{"lastUpdated":"2001-01-01T00:00:00Z"}}`,
	))
	var (
		wg  sync.WaitGroup
		err error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err = importer.Import(ctx, store, importer.Options{Now: time.Now, BatchSize: 1}, path)
	}()
	for range 2 {
		batch := <-store.entered // stamped, not stored
		held := batch[0].LastUpdated
		kick, kerr := store.TransactionTime(ctx, time.Now().Add(time.Hour))
		if kerr != nil {
			t.Fatal(kerr)
		}
		if !kick.Before(held) {
			t.Errorf("transactionTime %v with a batch stamped %v in flight, want earlier", kick, held)
		}
		if _, gerr := store.Get(ctx, "Patient", batch[0].ID); gerr == nil {
			t.Errorf("%s visible before its Put", batch[0].ID)
		}
		store.release <- struct{}{}
	}
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	kick, _ := store.TransactionTime(ctx, time.Now())
	for ref, r := range stored(t, store.ResourceStore, "Patient") {
		if r.LastUpdated.After(kick) {
			t.Errorf("%s stamped %v, after the transactionTime %v of a kick-off after the import", ref.ID, r.LastUpdated, kick)
		}
	}
}

// TestImportStampsWithoutStoreClock: a store that is not a bulk.Clock gets
// stamps from a clock of the import's own.
func TestImportStampsWithoutStoreClock(t *testing.T) {
	path := writeFile(t, t.TempDir(), "data.ndjson", lines(`{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2001-01-01T00:00:00Z"}}`))
	store := newFakeStore()
	if _, err := importer.Import(context.Background(), store, importer.Options{Now: func() time.Time { return now }}, path); err != nil {
		t.Fatal(err)
	}
	r := store.resources[bulk.Ref{Type: "Patient", ID: "p1"}]
	if r == nil || !r.LastUpdated.Equal(nowMS) || !fhir.IsResourceType(gjson.GetBytes(r.Body, "resourceType").Str) ||
		gjson.GetBytes(r.Body, "meta.lastUpdated").Str != nowMS.Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("stored %+v, want stamped %v", r, nowMS)
	}
}
