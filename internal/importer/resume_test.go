package importer_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/importer"
	"github.com/tranchehq/tranche/internal/mem"
)

// resumeData is an NDJSON file with what a resumed import must carry over:
// bad lines (reported once), a Group naming a later Patient by urn:uuid
// (resolved in the last pass, after the stops), a Bundle line (one unit)
// and a deletion.
func resumeData(t *testing.T, dir string) string {
	var ls []string
	ls = append(ls, `{"resourceType":"Group","id":"g1","type":"person","actual":true,"member":[{"entity":{"reference":"urn:uuid:p9"}}]}`)
	for i := range 12 {
		ls = append(ls, fmt.Sprintf(`{"resourceType":"Patient","id":"p%d","gender":"female"}`, i))
		if i%5 == 2 {
			ls = append(ls, fmt.Sprintf(`{"resourceType":"Patient","id":"bad%d",`, i))
		}
	}
	ls = append(ls,
		`{"resourceType":"Bundle","type":"transaction","entry":[`+
			`{"request":{"method":"DELETE","url":"Patient/p3"}},`+
			`{"request":{"method":"PUT","url":"Observation/o1"},"resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}},`+
			`{"request":{"method":"PUT","url":"Observation/o2"},"resource":{"resourceType":"Patient","id":"o2"}}]}`,
		`{"resourceType":"Observation","id":"o3","subject":{"reference":"Patient/p2"}}`,
	)
	return writeFile(t, dir, "data.ndjson", lines(ls...))
}

// resumeBundle is a transaction Bundle file, whose entries are the units,
// DELETEs first, with an entry that fails its checks.
func resumeBundle(t *testing.T, dir string) string {
	var es []string
	for i := range 7 {
		es = append(es, fmt.Sprintf(`{"fullUrl":"urn:uuid:pp%d","request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient","id":"pp%d"}}`, i, i))
		es = append(es, fmt.Sprintf(`{"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","id":"oo%d","subject":{"reference":"urn:uuid:pp%d"}}}`, i, (i+1)%7))
	}
	es = append(es,
		`{"request":{"method":"DELETE","url":"Patient/p5"}}`,
		`{"request":{"method":"PATCH","url":"Patient/pp1"}}`,
	)
	return writeFile(t, dir, "bundle.json", "{\n \"resourceType\": \"Bundle\",\n \"type\": \"transaction\",\n \"entry\": [\n  "+strings.Join(es, ",\n  ")+"\n ]\n}\n")
}

// runs is an import done in several runs, each resuming where the last
// Commit of the one before said.
type runs struct {
	store  *mem.ResourceStore
	errors []importer.LineError
	types  map[string]importer.Counts
	n      int
}

// run imports paths from c (nil: the start) with the options o, and returns
// the last Commit it heard and Import's error. Errors and counts of a run
// that finished are added from its report.
func (r *runs) run(t *testing.T, o importer.Options, c *importer.Commit, paths ...string) (*importer.Commit, error) {
	t.Helper()
	r.n++
	if c != nil {
		o.Resume, o.Deferred = c.Position, slices.Clone(c.Deferred)
	}
	var last *importer.Commit
	o.Committed = func(c importer.Commit) {
		cp := c
		cp.Errors, cp.Deferred = slices.Clone(c.Errors), slices.Clone(c.Deferred)
		last = &cp
	}
	rep, err := importer.Import(context.Background(), r.store, o, paths...)
	switch {
	case err == nil:
		r.add(rep.Errors, rep.Types)
	case last != nil:
		r.add(last.Errors, last.Types)
	}
	return last, err
}

func (r *runs) add(errs []importer.LineError, types map[string]importer.Counts) {
	r.errors = append(r.errors, errs...)
	for typ, c := range types {
		s := r.types[typ]
		s.New, s.Replaced, s.Unchanged, s.Deleted = s.New+c.New, s.Replaced+c.Replaced, s.Unchanged+c.Unchanged, s.Deleted+c.Deleted
		r.types[typ] = s
	}
}

// direct imports paths in one run into a store of their own.
func direct(t *testing.T, paths ...string) (*mem.ResourceStore, importer.Report) {
	t.Helper()
	store := mem.NewResourceStore(2)
	rep, err := importer.Import(context.Background(), store, importer.Options{}, paths...)
	if err != nil {
		t.Fatal(err)
	}
	return store, rep
}

// sameStore compares two stores' resources but for what storing sets
// (bulk.SameContent), and their deletions.
func sameStore(t *testing.T, want, got *mem.ResourceStore) {
	t.Helper()
	ctx := context.Background()
	wc, _ := want.Count(ctx)
	gc, _ := got.Count(ctx)
	if diff := cmp.Diff(wc, gc); diff != "" {
		t.Errorf("resources per type (-direct +resumed):\n%s", diff)
	}
	for _, typ := range slices.Sorted(maps.Keys(wc)) {
		w, g := stored(t, want, typ), stored(t, got, typ)
		for ref, wr := range w {
			if gr, ok := g[ref]; !ok || !bulk.SameContent(wr.Body, gr.Body) || !slices.Equal(wr.Patients, gr.Patients) || !slices.Equal(wr.Members, gr.Members) {
				t.Errorf("%s/%s = %+v, want %s", ref.Type, ref.ID, gr, wr.Body)
			}
		}
	}
	for _, typ := range []string{"Patient", "Observation"} {
		if diff := cmp.Diff(tombstoneIDs(t, want, typ), tombstoneIDs(t, got, typ)); diff != "" {
			t.Errorf("%s deletions (-direct +resumed):\n%s", typ, diff)
		}
	}
}

func tombstoneIDs(t *testing.T, store *mem.ResourceStore, typ string) []string {
	t.Helper()
	var ids []string
	err := store.Tombstones(context.Background(), typ, bulk.Range{Until: now.AddDate(100, 0, 0)}, func(ts bulk.Tombstone) error {
		ids = append(ids, ts.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// stopAfter stops a run before its (n+1)th unit.
func stopAfter(n int) func() bool {
	asked := 0
	return func() bool { asked++; return asked > n }
}

// TestImportResume: an import that Options.Stop ends again and again,
// each run resuming at its last Commit, stores what one run stores,
// reports each bad line once, counts each resource once, and resolves the
// urn:uuid references of the runs before in the last pass.
func TestImportResume(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		paths []string
		every int // units per run
	}{
		{"NDJSON", []string{resumeData(t, dir)}, 3},
		{"one line per run", []string{resumeData(t, dir)}, 1},
		{"Bundle file", []string{resumeBundle(t, dir)}, 4},
		{"two files", []string{resumeData(t, dir), resumeBundle(t, dir)}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantRep := direct(t, tc.paths...)
			r := &runs{store: mem.NewResourceStore(2), types: map[string]importer.Counts{}}
			var c *importer.Commit
			for {
				next, err := r.run(t, importer.Options{BatchSize: 2, Stop: stopAfter(tc.every)}, c, tc.paths...)
				if err == nil {
					break
				}
				if !errors.Is(err, importer.ErrStopped) {
					t.Fatalf("run %d: Import = %v, want ErrStopped or nil", r.n, err)
				}
				if next == nil || (c != nil && next.Position == c.Position) {
					t.Fatalf("run %d stopped without progress (commit %+v after %+v)", r.n, next, c)
				}
				c = next
				if r.n > 100 {
					t.Fatal("the import does not end")
				}
			}
			if r.n < 3 {
				t.Errorf("the import ended in %d runs: the test does not stop it", r.n)
			}
			sameStore(t, want, r.store)
			if diff := cmp.Diff(wantRep.Errors, r.errors); diff != "" {
				t.Errorf("errors of the runs (-one run +resumed):\n%s", diff)
			}
			if diff := cmp.Diff(wantRep.Types, r.types); diff != "" {
				t.Errorf("counts of the runs (-one run +resumed):\n%s", diff)
			}
		})
	}
}

// TestImportResumeAfterKill: a run that dies (its store fails) after some
// writes is resumed from the last Commit it heard: what it stored after
// that is read again and left as it is (bulk.SameContent), nothing is
// lost, and each bad line is reported once.
func TestImportResumeAfterKill(t *testing.T) {
	dir := t.TempDir()
	paths := []string{resumeData(t, dir), resumeBundle(t, dir)}
	want, wantRep := direct(t, paths...)
	r := &runs{store: mem.NewResourceStore(2), types: map[string]importer.Counts{}}
	// The first run stores 3 batches and then dies in the 4th Put: the
	// commit of the 3rd is where the second resumes.
	killed := &failingPuts{ResourceStore: r.store, after: 3}
	o := importer.Options{BatchSize: 2}
	var last *importer.Commit
	o.Committed = func(c importer.Commit) {
		cp := c
		cp.Errors, cp.Deferred = slices.Clone(c.Errors), slices.Clone(c.Deferred)
		last = &cp
	}
	if _, err := importer.Import(context.Background(), killed, o, paths...); bulk.ErrorCode(err) != bulk.ETRANSIENT {
		t.Fatalf("Import(store that dies) = %v, want its error", err)
	}
	if last == nil || last.Position == (importer.Position{}) {
		t.Fatalf("the killed run committed %+v", last)
	}
	r.add(last.Errors, last.Types)
	if _, err := r.run(t, importer.Options{BatchSize: 2}, last, paths...); err != nil {
		t.Fatal(err)
	}
	sameStore(t, want, r.store)
	if diff := cmp.Diff(wantRep.Errors, r.errors); diff != "" {
		t.Errorf("errors (-one run +killed and resumed):\n%s", diff)
	}
	// What the dead run stored after its last commit is counted again,
	// as unchanged: nothing is counted less, nothing new twice.
	for typ, w := range wantRep.Types {
		g := r.types[typ]
		if g.New+g.Replaced+g.Unchanged+g.Deleted < w.New+w.Replaced+w.Unchanged+w.Deleted || g.New > w.New {
			t.Errorf("%s counted %+v by the runs, %+v by one run", typ, g, w)
		}
	}
}

// failingPuts is a store whose Put fails after some succeeded: a run
// killed mid-import.
type failingPuts struct {
	bulk.ResourceStore
	after, puts int
}

func (f *failingPuts) Put(ctx context.Context, rs []*bulk.Resource) error {
	if f.puts++; f.puts > f.after {
		return bulk.Errorf(bulk.ETRANSIENT, "The store is gone.")
	}
	return f.ResourceStore.Put(ctx, rs)
}

// TestImportStopAtOnce: a Stop that is true from the start stores nothing
// and commits the Resume position, so a caller sees no progress.
func TestImportStopAtOnce(t *testing.T) {
	path := resumeData(t, t.TempDir())
	store := mem.NewResourceStore(2)
	var commits []importer.Commit
	o := importer.Options{Resume: importer.Position{Unit: 4}, Stop: func() bool { return true }, Committed: func(c importer.Commit) { commits = append(commits, c) }}
	if _, err := importer.Import(context.Background(), store, o, path); !errors.Is(err, importer.ErrStopped) {
		t.Fatalf("Import = %v, want ErrStopped", err)
	}
	if len(commits) != 1 || commits[0].Position != o.Resume {
		t.Errorf("commits = %+v, want one at %+v", commits, o.Resume)
	}
	if n, _ := store.Count(context.Background()); len(n) != 0 {
		t.Errorf("stored %v, want nothing", n)
	}
}
