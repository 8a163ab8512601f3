package test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/client"
)

// page is one manifest page as served: the raw fields, and the parsed
// files and link.
type page struct {
	status int
	fields map[string]json.RawMessage
	m      manifest
	next   string
}

func (s *server) getPage(url string) page {
	s.t.Helper()
	res := s.do("GET", url, nil, "Accept", "application/json")
	p := page{status: res.Status}
	if len(res.Body) == 0 {
		return p
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		s.t.Fatalf("GET %s: Content-Type %q, want application/json", url, ct)
	}
	if err := json.Unmarshal(res.Body, &p.fields); err != nil {
		s.t.Fatalf("GET %s: %v\n%s", url, err, res.Body)
	}
	_ = json.Unmarshal(res.Body, &p.m)
	var l struct {
		Link []struct{ Relation, URL string }
	}
	_ = json.Unmarshal(res.Body, &l)
	if len(l.Link) > 1 || len(l.Link) == 1 && l.Link[0].Relation != "next" {
		s.t.Fatalf("GET %s: link %+v, want one object with relation next (R66)", url, l.Link)
	}
	if len(l.Link) == 1 {
		p.next = l.Link[0].URL
	}
	return p
}

// sameExceptLink fails unless b is a, with at most a link added (R65).
func sameExceptLink(t *testing.T, what string, a, b page) {
	t.Helper()
	af, bf := maps.Clone(a.fields), maps.Clone(b.fields)
	if _, ok := af["link"]; ok {
		if string(af["link"]) != string(bf["link"]) {
			t.Errorf("%s: link changed from %s to %s (R65)", what, af["link"], bf["link"])
		}
	}
	delete(af, "link")
	delete(bf, "link")
	if diff := cmp.Diff(af, bf, cmp.Transformer("raw", func(r json.RawMessage) string { return string(r) })); diff != "" {
		t.Errorf("%s changed between polls (R65):\n%s", what, diff)
	}
}

// sameHeader fails unless page b repeats every field of page a but output,
// deleted and link (R66).
func sameHeader(t *testing.T, a, b page) {
	t.Helper()
	for k, v := range a.fields {
		switch k {
		case "output", "deleted", "link":
			continue
		}
		if string(b.fields[k]) != string(v) {
			t.Errorf("linked manifest has %s = %s, want %s as on the page before (R66)", k, b.fields[k], v)
		}
	}
}

// TestPartialManifestsExport: real exports with allowPartialManifests at
// every level come in pages of ManifestPageFiles files linked by `next`;
// every page repeats the other fields and the pages together list every
// file once (R65, R66).
func TestPartialManifestsExport(t *testing.T) {
	dir := generated(t, 40)
	cfg := testConfig(t)
	cfg.Export.ManifestPageFiles = 3
	cfg.Export.MaxFileResources = 300
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)
	group := slices.Sorted(maps.Keys(ds.groups))[1]

	for _, tc := range []struct {
		name, method, path, body string
		filter                   filter
	}{
		{name: "system", path: "/$export?allowPartialManifests=true&_since=" + "2024-01-01T00:00:00Z"},
		{name: "patient POST", method: "POST", path: "/Patient/$export",
			body:   `{"resourceType":"Parameters","parameter":[{"name":"allowPartialManifests","valueBoolean":true}]}`,
			filter: filter{compOnly: true}},
		{name: "group", path: "/Group/" + group + "/$export?allowPartialManifests=true", filter: filter{patients: ds.groups[group]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			method := tc.method
			if method == "" {
				method = "GET"
			}
			statusURL := s.kickoff(method, tc.path, []byte(tc.body))
			var first page
			deadline := time.Now().Add(time.Minute)
			for {
				first = s.getPage(statusURL)
				if first.status == http.StatusOK {
					break
				}
				if first.status != http.StatusAccepted || time.Now().After(deadline) {
					t.Fatalf("poll = %d", first.status)
				}
				if first.fields != nil && len(first.m.Output) != 3 {
					t.Fatalf("partial page 1 lists %d files, want a full page of 3 (R65)", len(first.m.Output))
				}
				time.Sleep(5 * time.Millisecond) // poll interval
			}
			checkManifestShape(t, mustJSON(first.fields), first.m)
			var files []manifestFile
			var deleted []manifestFile
			pages := []page{first}
			for p := first; ; {
				files = append(files, p.m.Output...)
				deleted = append(deleted, p.m.Deleted...)
				if len(p.m.Output)+len(p.m.Deleted) > 3 {
					t.Errorf("page lists %d files, want at most 3", len(p.m.Output)+len(p.m.Deleted))
				}
				if p.next == "" {
					break
				}
				next := s.getPage(p.next)
				if next.status != http.StatusOK {
					t.Fatalf("GET %s = %d, want 200 for a complete export's page", p.next, next.status)
				}
				sameHeader(t, p, next)
				pages = append(pages, next)
				p = next
			}
			if len(pages) < 3 {
				t.Errorf("export came in %d pages; want several to test paging", len(pages))
			}
			// Polling again gives the same pages.
			for i, p := range pages {
				url := statusURL
				if i > 0 {
					url = pages[i-1].next
				}
				sameExceptLink(t, fmt.Sprintf("page %d", i+1), p, s.getPage(url))
			}
			seen := map[string]bool{}
			for _, f := range append(files, deleted...) {
				if seen[f.URL] {
					t.Errorf("%s listed on two pages", f.URL)
				}
				seen[f.URL] = true
			}
			tx, _ := time.Parse(time.RFC3339Nano, first.m.TransactionTime)
			f := tc.filter
			f.txTimeUpTo = tx
			if strings.Contains(tc.path, "_since") {
				f.since = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
			}
			if diff := cmp.Diff(ds.expect(f), keys(t, s.download(files, false))); diff != "" {
				t.Errorf("exported set over all pages mismatch (-want +got):\n%s", diff)
			}
			if res := s.do("GET", statusURL+"/manifest/99", nil); res.Status != http.StatusNotFound {
				t.Errorf("a page past the last = %d, want 404", res.Status)
			}
		})
	}

	// Without allowPartialManifests: one manifest, no pages.
	s.t = t
	statusURL := s.kickoff("GET", "/$export", nil)
	m := s.wait(statusURL)
	if len(m.Output) <= 3 {
		t.Fatalf("plain export lists %d files", len(m.Output))
	}
	if res := s.do("GET", statusURL+"/manifest/2", nil); res.Status != http.StatusNotFound {
		t.Errorf("page 2 of an unpaged export = %d, want 404", res.Status)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestPartialManifestsWhileRunning drives a job's recorded progress by hand
// (no workflow runs it), so each state is held while polled: a 202 lists
// only recorded files, which can be downloaded at once; a returned page
// never changes but for a `link` once the next page is ready; pages fill in
// work-item order; completion turns the same pages into 200s (R65, R66).
func TestPartialManifestsWhileRunning(t *testing.T) {
	cfg := testConfig(t)
	cfg.Export.ManifestPageFiles = 3
	s := startServer(t, cfg)
	ctx := context.Background()
	jobs := s.app.DB.Jobs()
	clientID := s.tokens.(*client.BackendServices).ClientID
	id := storeJob(t, s, clientID, bulk.StatusInProgress, bulk.ExportRequest{AllowPartial: true})
	statusURL := s.URL + "/jobs/" + id

	file := func(name string, kind bulk.FileKind) bulk.OutputFile {
		key := id + "/" + name + ".ndjson"
		w, err := s.app.Objects.Create(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		body := `{"resourceType":"Patient","id":"` + name + `"}` + "\n"
		typ := "Patient"
		if kind == bulk.KindError {
			body, typ = `{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"informational"}]}`+"\n", "OperationOutcome"
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return bulk.OutputFile{Kind: kind, Type: typ, Key: key, Count: 1, Bytes: int64(len(body))}
	}
	plan := &bulk.Plan{Types: []string{"Patient"}, Items: []bulk.Item{{Index: 0}, {Index: 1}, {Index: 2}},
		Files: []bulk.OutputFile{file("errors", bulk.KindError)}}
	if _, err := jobs.SavePlan(ctx, id, plan); err != nil {
		t.Fatal(err)
	}
	var f []bulk.OutputFile
	for i := range 8 {
		f = append(f, file(fmt.Sprintf("f%d", i), bulk.KindOutput))
	}
	progress := func(item int, done bool, files ...bulk.OutputFile) {
		t.Helper()
		if err := jobs.SaveProgress(ctx, id, &bulk.ItemProgress{Index: item, Done: done, Part: 1, Files: files}); err != nil {
			t.Fatal(err)
		}
	}
	urls := func(p page) []string {
		var out []string
		for _, f := range p.m.Output {
			out = append(out, f.URL[strings.LastIndex(f.URL, "/")+1:])
		}
		return out
	}

	// Two files of item 0: less than a page, so nothing to list yet.
	progress(0, false, f[0], f[1])
	if p := s.getPage(statusURL); p.status != http.StatusAccepted || p.fields != nil {
		t.Fatalf("before a page is full: %d %v, want a bare 202", p.status, p.fields)
	}
	// Item 1 finishes first: its files wait until item 0 is done.
	progress(1, true, f[4], f[5])
	if p := s.getPage(statusURL); p.fields != nil {
		t.Fatalf("page listed %v before item 0's files filled it", urls(p))
	}
	// Item 0 records a third file: page 1 is ready.
	progress(0, false, f[0], f[1], f[2])
	p1 := s.getPage(statusURL)
	if p1.status != http.StatusAccepted || !slices.Equal(urls(p1), []string{"f0.ndjson", "f1.ndjson", "f2.ndjson"}) || p1.next != "" {
		t.Fatalf("page 1 = %d %v next %q, want 202 [f0 f1 f2] without a link (R65)", p1.status, urls(p1), p1.next)
	}
	if len(p1.m.Error) != 1 {
		t.Errorf("page 1 error = %+v, want the plan's error file", p1.m.Error)
	}
	// A listed file downloads while the job runs; an unrecorded one does not.
	s.download(p1.m.Output[:1], false)
	if res := s.do("GET", s.URL+"/files/"+id+"/f7.ndjson", nil); res.Status != http.StatusNotFound {
		t.Errorf("an unrecorded file of a running job = %d, want 404", res.Status)
	}
	// Item 0 is done with four files: f3, f4, f5 fill page 2, so page 1
	// gets its link and nothing else changes.
	progress(0, true, f[0], f[1], f[2], f[3])
	p1b := s.getPage(statusURL)
	sameExceptLink(t, "page 1", p1, p1b)
	if p1b.next == "" {
		t.Fatal("page 1 has no link once page 2 is ready")
	}
	p2 := s.getPage(p1b.next)
	if p2.status != http.StatusAccepted || !slices.Equal(urls(p2), []string{"f3.ndjson", "f4.ndjson", "f5.ndjson"}) || p2.next != "" {
		t.Fatalf("page 2 = %d %v next %q, want 202 [f3 f4 f5]", p2.status, urls(p2), p2.next)
	}
	sameHeader(t, p1b, p2)
	if res := s.do("GET", statusURL+"/manifest/3", nil); res.Status != http.StatusNotFound {
		t.Errorf("page 3 before it is ready = %d, want 404", res.Status)
	}
	// The last item and completion: the short last page appears, and every
	// page answers 200 with the same content.
	progress(2, true, f[6])
	if _, err := jobs.Transition(ctx, id, []bulk.Status{bulk.StatusInProgress}, bulk.StatusCompleted, nil); err != nil {
		t.Fatal(err)
	}
	p1c, p2c := s.getPage(statusURL), s.getPage(p1b.next)
	if p1c.status != http.StatusOK || p2c.status != http.StatusOK {
		t.Fatalf("complete: pages answer %d, %d, want 200", p1c.status, p2c.status)
	}
	sameExceptLink(t, "page 1", p1b, p1c)
	sameExceptLink(t, "page 2", p2, p2c)
	p3 := s.getPage(p2c.next)
	if p3.status != http.StatusOK || !slices.Equal(urls(p3), []string{"f6.ndjson"}) || p3.next != "" {
		t.Fatalf("page 3 = %d %v next %q, want 200 [f6] and no link", p3.status, urls(p3), p3.next)
	}
}
