package test

// End-to-end tests of the Bulk Data client (internal/client, the engine of
// `tranche export`): against the local server at every level, incremental
// (--since-last), resumed and cancelled exports, and against an independent
// fake server with other URL shapes, throttling, transient errors and a
// redirecting file server.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/client"
)

// newBulkClient returns a client for base that polls at most every 5 ms
// (the local server asks for 1 s and more).
func newBulkClient(base string) *client.Client {
	return &client.Client{
		Base: base,
		HTTP: &http.Client{},
		Sleep: func(ctx context.Context, d time.Duration) error {
			return client.SleepContext(ctx, min(d, 5*time.Millisecond))
		},
	}
}

// bulkClient is newBulkClient for the local server, with the token source
// of its registered test client when authorization is on.
func (s *server) bulkClient() *client.Client {
	c := newBulkClient(s.URL)
	if s.tokens != nil {
		c.Auth = s.tokens
	}
	return c
}

// savedLines reads the output files of an export directory (not deleted/
// or error/), checking each is of its file name's type.
func savedLines(t *testing.T, dir string) []line {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	var out []line
	for _, f := range files {
		typ, _, _ := strings.Cut(filepath.Base(f), ".")
		readLines(t, f, func(b []byte) {
			if len(b) == 0 {
				return
			}
			var h struct{ ResourceType, ID string }
			if err := json.Unmarshal(b, &h); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if h.ResourceType != typ {
				t.Fatalf("%s holds a %s", f, h.ResourceType)
			}
			out = append(out, line{Type: h.ResourceType, ID: h.ID, Raw: append([]byte(nil), b...)})
		})
	}
	return out
}

func checkExport(t *testing.T, sum *client.Summary, ds *dataset, f filter) {
	t.Helper()
	tx, err := time.Parse(time.RFC3339Nano, sum.TransactionTime)
	if err != nil {
		t.Fatalf("transactionTime %q: %v", sum.TransactionTime, err)
	}
	f.txTimeUpTo = tx
	got := keys(t, savedLines(t, sum.Dir))
	if diff := cmp.Diff(ds.expect(f), got); diff != "" {
		t.Errorf("exported set mismatch (-want +got):\n%s", diff)
	}
	var n int64
	for _, c := range sum.Download.Resources {
		n += c
	}
	if n != int64(len(got)) {
		t.Errorf("summary counts %d resources, the files hold %d", n, len(got))
	}
}

func TestClientLevels(t *testing.T) {
	dir := generated(t, 30)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)
	groups := slices.Sorted(maps.Keys(ds.groups))

	for _, tc := range []struct {
		name   string
		req    client.Request
		filter filter
	}{
		{"system", client.Request{Level: client.LevelSystem}, filter{}},
		{"system POST _type", client.Request{Types: []string{"Patient", "Condition"}, Post: true}, filter{types: []string{"Patient", "Condition"}}},
		{"patient", client.Request{Level: client.LevelPatient}, filter{compOnly: true}},
		{"group", client.Request{Level: client.LevelGroup, GroupID: groups[0]}, filter{patients: ds.groups[groups[0]]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			exp := &client.Export{Client: s.bulkClient(), Request: tc.req, Out: out, Parallel: 4}
			sum, err := exp.Run(context.Background())
			if err != nil {
				t.Fatalf("Export.Run() error = %v", err)
			}
			checkExport(t, sum, ds, tc.filter)
			if _, err := os.Stat(filepath.Join(sum.Dir, client.ManifestFile)); err != nil {
				t.Errorf("manifest.json not saved: %v", err)
			}
			wm, err := client.ReadWatermark(out)
			if err != nil || wm == nil || wm.TransactionTime != sum.TransactionTime || wm.StatusURL != sum.StatusURL {
				t.Errorf("watermark = %+v, %v; want transactionTime %s", wm, err, sum.TransactionTime)
			}
		})
	}
}

// TestClientSinceLast: the second --since-last export into the same root
// asks for _since = the first one's transactionTime and returns only what
// changed since, in a directory of its own.
func TestClientSinceLast(t *testing.T) {
	dir := generated(t, 12)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)
	out := t.TempDir()
	first, err := (&client.Export{Client: s.bulkClient(), Out: out, SinceLast: true, Parallel: 2}).Run(context.Background())
	if err != nil {
		t.Fatalf("first export: %v", err)
	}
	if first.Since != "" {
		t.Errorf("first export with no watermark used _since %q, want a full export", first.Since)
	}
	checkExport(t, first, ds, filter{})

	// New data after the first export: two new Patients and a changed
	// Observation, stamped just after its transactionTime.
	t1, _ := time.Parse(time.RFC3339Nano, first.TransactionTime)
	later := t1.Add(time.Millisecond)
	var obs string
	for k, r := range ds.byKey {
		if r.Type == "Observation" && (obs == "" || k < obs) {
			obs = k
		}
	}
	_, obsID, _ := strings.Cut(obs, "/")
	changes := filepath.Join(t.TempDir(), "changes.ndjson")
	body := `{"resourceType":"Patient","id":"new-1"}` + "\n" + `{"resourceType":"Patient","id":"new-2"}` + "\n" +
		fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"amended"}`, obsID) + "\n"
	if err := os.WriteFile(changes, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	s.stop()
	importInto(t, cfg, later, changes)
	clk := &clock{}
	clk.AdvancePast(later) // the next transactionTime must be later
	s = startServer(t, cfg, app.WithClock(clk.Now))

	second, err := (&client.Export{Client: s.bulkClient(), Out: out, SinceLast: true, Parallel: 2}).Run(context.Background())
	if err != nil {
		t.Fatalf("second export: %v", err)
	}
	if second.Since != first.TransactionTime {
		t.Errorf("second export _since = %q, want the first transactionTime %q", second.Since, first.TransactionTime)
	}
	if second.Dir == first.Dir {
		t.Errorf("both exports went to %s", first.Dir)
	}
	got := keys(t, savedLines(t, second.Dir))
	if diff := cmp.Diff([]string{obs, "Patient/new-1", "Patient/new-2"}, got); diff != "" {
		t.Errorf("incremental export (-want +got):\n%s", diff)
	}
	if wm, _ := client.ReadWatermark(out); wm == nil || wm.TransactionTime != second.TransactionTime {
		t.Errorf("watermark = %+v, want the second transactionTime", wm)
	}
	// The first export's files are untouched.
	checkExport(t, first, ds, filter{})
}

// TestClientResume: an export interrupted during its download (as by
// Ctrl-C) keeps running on the server; --resume with its status URL
// fetches only the missing files.
func TestClientResume(t *testing.T) {
	dir := generated(t, 30)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)
	out := t.TempDir()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := s.bulkClient()
	var once sync.Once
	c.OnDownload = func(p client.DownloadProgress) {
		if p.File != nil && p.Done >= 2 {
			once.Do(cancel)
		}
	}
	exp := &client.Export{Client: c, Out: out, Parallel: 1}
	sum, err := exp.Run(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "--resume "+sum.StatusURL) {
		t.Fatalf("interrupted Run() error = %v, want context.Canceled and how to resume", err)
	}
	if sum.Cancelled {
		t.Fatal("export cancelled without CancelOnInterrupt")
	}
	files := len(sum.Manifest.Output)
	if files < 4 {
		t.Fatalf("export has %d files; the test needs several", files)
	}
	if wm, _ := client.ReadWatermark(out); wm != nil {
		t.Errorf("an interrupted export left a watermark: %+v", wm)
	}

	resumed, err := (&client.Export{Client: s.bulkClient(), Out: out, Resume: sum.StatusURL, Parallel: 3}).Run(context.Background())
	if err != nil {
		t.Fatalf("resumed Run() error = %v", err)
	}
	if resumed.Dir != sum.Dir {
		t.Errorf("resumed into %s, want %s", resumed.Dir, sum.Dir)
	}
	if sk := resumed.Download.Skipped; sk < 2 || sk >= files {
		t.Errorf("resume skipped %d of %d files, want the 2+ already complete", sk, files)
	}
	checkExport(t, resumed, ds, filter{})
	if parts, _ := filepath.Glob(filepath.Join(resumed.Dir, "*.part")); len(parts) != 0 {
		t.Errorf("partial files left: %v", parts)
	}
}

// TestClientCancelOnInterrupt: an interrupt with CancelOnInterrupt sends
// DELETE, and the server then forgets the export.
func TestClientCancelOnInterrupt(t *testing.T) {
	dir := generated(t, 8)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	s := startServer(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exp := &client.Export{Client: s.bulkClient(), Out: t.TempDir(), CancelOnInterrupt: true,
		OnKickoff: func(string, bool) { cancel() }}
	sum, err := exp.Run(ctx)
	if !errors.Is(err, context.Canceled) || !sum.Cancelled {
		t.Fatalf("Run() = cancelled %v, error %v; want a DELETE after the interrupt", sum.Cancelled, err)
	}
	if res := s.do("GET", sum.StatusURL, nil); res.Status != http.StatusNotFound {
		t.Errorf("status after DELETE = %d, want 404", res.Status)
	}
}

// TestClientAuthorized: the whole SMART Backend Services flow against the
// local server with authorization on: RFC 7591 registration with the
// operator's token, discovery, a signed ES384 assertion, and an export whose
// polls and downloads carry the token.
func TestClientAuthorized(t *testing.T) {
	dir := generated(t, 10)
	cfg := testConfig(t)
	cfg.Auth.Open = false
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)
	regToken, err := os.ReadFile(filepath.Join(cfg.DataDir, app.RegistrationTokenFile))
	if err != nil {
		t.Fatalf("registration token: %v", err)
	}
	key, err := client.GenerateES384()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := client.Register(context.Background(), client.RegisterRequest{FHIRBase: s.URL, InitialToken: strings.TrimSpace(string(regToken)),
		ClientName: "e2e", JWKS: []client.JWK{key.PublicJWK()}})
	if err != nil {
		t.Fatalf("Register() error = %v", err)
	}
	c := newBulkClient(s.URL)
	c.Auth = &client.BackendServices{ClientID: reg.ClientID, Key: key, FHIRBase: s.URL}
	groups := slices.Sorted(maps.Keys(ds.groups))
	sum, err := (&client.Export{Client: c, Out: t.TempDir(), Parallel: 2,
		Request: client.Request{Level: client.LevelGroup, GroupID: groups[0]}}).Run(context.Background())
	if err != nil {
		t.Fatalf("authorized Export.Run() error = %v", err)
	}
	if !sum.Manifest.RequiresAccessToken {
		t.Errorf("requiresAccessToken = false on a server with authorization")
	}
	checkExport(t, sum, ds, filter{patients: ds.groups[groups[0]]})

	// Without a token the same export is refused.
	_, err = newBulkClient(s.URL).Kickoff(context.Background(), client.Request{})
	if client.StatusCode(err) != http.StatusUnauthorized {
		t.Errorf("Kickoff() without a token error = %v, want 401", err)
	}
}

// fakeBulk is a small Bulk Data server written from the IG, unlike Tranche
// in every URL: kick-off under /fhir/r4, status at /bulkstatus/{id}, files
// at /output/{n}.ndjson on another server. Its status endpoint first
// throttles (429), then fails transiently, then reports progress.
type fakeBulk struct {
	t         *testing.T
	fhir      *httptest.Server
	files     *httptest.Server
	token     string // required on FHIR routes when set
	viaFHIR   bool   // manifest points at /fhir/r4/file/{n}, which redirects to the file server
	needToken bool   // requiresAccessToken

	mu        sync.Mutex
	polls     int
	deleted   bool
	fileAuth  []string
	kickoff   *http.Request
	fileCount int
}

var fakeFiles = []struct{ typ, body string }{
	{"Patient", `{"resourceType":"Patient","id":"a"}` + "\n" + `{"resourceType":"Patient","id":"b"}` + "\n"},
	{"Observation", `{"resourceType":"Observation","id":"o1"}` + "\n"},
	{"Observation", `{"resourceType":"Observation","id":"o2"}` + "\n" + `{"resourceType":"Observation","id":"o3"}` + "\n"},
}

func newFakeBulk(t *testing.T) *fakeBulk {
	f := &fakeBulk{t: t}
	f.files = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.fileAuth = append(f.fileAuth, r.Header.Get("Authorization"))
		f.fileCount++
		f.mu.Unlock()
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/output/%d.ndjson", &n); err != nil || n < 1 || n > len(fakeFiles) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		_, _ = io.WriteString(w, fakeFiles[n-1].body) // never compressed: identity must work too
	}))
	t.Cleanup(f.files.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("/fhir/r4/$export", f.kickoffHandler)
	mux.HandleFunc("GET /bulkstatus/{id}", f.status)
	mux.HandleFunc("DELETE /bulkstatus/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.deleted = true
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /fhir/r4/file/{n}", func(w http.ResponseWriter, r *http.Request) {
		if !f.authorized(w, r) {
			return
		}
		http.Redirect(w, r, f.files.URL+"/output/"+r.PathValue("n")+".ndjson", http.StatusFound)
	})
	f.fhir = httptest.NewServer(mux)
	t.Cleanup(f.fhir.Close)
	return f
}

func (f *fakeBulk) authorized(w http.ResponseWriter, r *http.Request) bool {
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		w.Header().Set("WWW-Authenticate", "Bearer")
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login","diagnostics":"no token"}]}`)
		return false
	}
	return true
}

func (f *fakeBulk) kickoffHandler(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	if r.Header.Get("Prefer") != "respond-async" || r.Header.Get("Accept") != "application/fhir+json" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.kickoff = r.Clone(context.Background())
	f.mu.Unlock()
	w.Header().Set("Content-Location", f.fhir.URL+"/bulkstatus/77")
	w.WriteHeader(http.StatusAccepted)
}

func (f *fakeBulk) status(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	f.mu.Lock()
	f.polls++
	n, deleted := f.polls, f.deleted
	f.mu.Unlock()
	if deleted || r.PathValue("id") != "77" {
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found","diagnostics":"gone"}]}`)
		return
	}
	switch n {
	case 1:
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	case 2:
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"try again"}]}`)
	case 3:
		w.Header().Set("X-Progress", "Building files")
		w.WriteHeader(http.StatusAccepted)
	default:
		var out []map[string]any
		for i, ff := range fakeFiles {
			u := fmt.Sprintf("%s/output/%d.ndjson", f.files.URL, i+1)
			if f.viaFHIR {
				u = fmt.Sprintf("%s/fhir/r4/file/%d", f.fhir.URL, i+1)
			}
			out = append(out, map[string]any{"type": ff.typ, "url": u, "count": bytes.Count([]byte(ff.body), []byte("\n"))})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"transactionTime": "2026-03-04T05:06:07.890+01:00", "request": f.fhir.URL + "/fhir/r4/$export?_type=Patient,Observation",
			"requiresAccessToken": f.needToken, "output": out, "error": []any{},
		})
	}
}

func TestClientAgainstFakeServer(t *testing.T) {
	t.Run("requiresAccessToken false, files on another server", func(t *testing.T) {
		f := newFakeBulk(t)
		f.token = "s3cret"
		c := newBulkClient(f.fhir.URL + "/fhir/r4")
		c.Auth = client.StaticToken("s3cret")
		out := t.TempDir()
		sum, err := (&client.Export{Client: c, Out: out, Request: client.Request{Types: []string{"Patient", "Observation"}}, Parallel: 2}).Run(context.Background())
		if err != nil {
			t.Fatalf("Run() error = %v", err)
		}
		if got := f.kickoff.URL.Query().Get("_type"); got != "Patient,Observation" {
			t.Errorf("kick-off _type = %q", got)
		}
		if f.polls != 4 {
			t.Errorf("status polled %d times, want 4 (429, transient 503, 202, 200)", f.polls)
		}
		for _, a := range f.fileAuth {
			if a != "" {
				t.Errorf("requiresAccessToken false, yet the file server got Authorization %q", a)
			}
		}
		if diff := cmp.Diff(map[string]int64{"Patient": 2, "Observation": 3}, sum.Download.Resources); diff != "" {
			t.Errorf("resources (-want +got):\n%s", diff)
		}
		if filepath.Base(sum.Dir) != "2026-03-04T040607.890Z" {
			t.Errorf("export directory %s, want one named for the transactionTime in UTC", sum.Dir)
		}
		if got := keys(t, savedLines(t, sum.Dir)); !slices.Equal(got, []string{"Observation/o1", "Observation/o2", "Observation/o3", "Patient/a", "Patient/b"}) {
			t.Errorf("saved %v", got)
		}
		if !sum.Released || !f.deleted {
			t.Errorf("released %v, DELETE sent %v; want the downloaded export released (R68)", sum.Released, f.deleted)
		}
	})
	t.Run("token required, redirect to another server", func(t *testing.T) {
		f := newFakeBulk(t)
		f.token, f.viaFHIR, f.needToken = "s3cret", true, true
		c := newBulkClient(f.fhir.URL + "/fhir/r4")
		c.Auth = client.StaticToken("s3cret")
		sum, err := (&client.Export{Client: c, Out: t.TempDir(), Parallel: 3, Keep: true}).Run(context.Background())
		if err != nil {
			t.Fatalf("Run() error = %v", err)
		}
		if sum.Released || f.deleted {
			t.Errorf("Keep: released %v, DELETE sent %v; want neither", sum.Released, f.deleted)
		}
		if f.fileCount != 3 || len(sum.Download.Files) != 3 {
			t.Fatalf("file server served %d files, want 3", f.fileCount)
		}
		for _, a := range f.fileAuth {
			if a != "" {
				t.Errorf("the bearer token followed the redirect to the file server (%q)", a)
			}
		}
	})
	t.Run("interrupt with cancel", func(t *testing.T) {
		f := newFakeBulk(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		exp := &client.Export{Client: newBulkClient(f.fhir.URL + "/fhir/r4"), Out: t.TempDir(), CancelOnInterrupt: true,
			OnPoll: func(st client.PollStatus) {
				if st.Status == http.StatusAccepted {
					cancel()
				}
			}}
		if _, err := exp.Run(ctx); !errors.Is(err, context.Canceled) || !f.deleted {
			t.Errorf("Run() error = %v, DELETE sent = %v; want both", err, f.deleted)
		}
	})
}
