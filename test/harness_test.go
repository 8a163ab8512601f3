// Package test holds the end-to-end tests: they start the local server (the
// same wiring `tranche serve` uses), import data, and drive the HTTP API
// through whole exports, checking the output against sets computed
// independently from the input files.
package test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/importer"
	"github.com/tranchehq/tranche/internal/testenv"
)

// server is a running local deployment. Requests carry an access token of a
// registered test client, obtained from the server's own token endpoint
// with a signed assertion, unless the server is open.
type server struct {
	t      testing.TB
	cfg    config.Config
	app    *app.Local
	http   *httptest.Server
	URL    string
	tokens client.TokenSource
}

// importInto loads paths into the store in dir before the server opens it,
// keeping the files' lastUpdated (`tranche import --keep-last-updated`), the
// times the tests' expectations are computed from; now stands in for a
// missing one, and deletions happen at it. sincegap_test.go imports with
// the server's clock.
func importInto(t testing.TB, cfg config.Config, now time.Time, paths ...string) importer.Report {
	t.Helper()
	db, err := app.OpenStore(cfg)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	defer db.Close()
	rep, err := importer.Import(context.Background(), db.Resources(), importer.Options{Now: func() time.Time { return now }, KeepLastUpdated: true}, paths...)
	if err != nil {
		t.Fatalf("Import(%v): %v", paths, err)
	}
	if len(rep.Errors) > 0 {
		t.Fatalf("Import(%v) reported bad lines: %v", paths, rep.Errors)
	}
	return rep
}

func testConfig(t testing.TB) config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Shards = 4
	cfg.Demo = false
	cfg.PurgeEvery = 0
	cfg.Auth.MaxPollsPerMinute = 0 // tests poll as fast as the server answers
	// Small files and items so tests cross file and item boundaries.
	cfg.Export.MaxFileResources = 700
	cfg.Export.ItemResources = 1500
	cfg.Export.PatientBatch = 7
	return cfg
}

// startServer starts the local server on cfg (app.NewLocal with opts).
func startServer(t testing.TB, cfg config.Config, opts ...app.LocalOption) *server {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	l, err := app.NewLocal(context.Background(), cfg, logger, opts...)
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	hs := httptest.NewServer(l.Handler)
	s := &server{t: t, cfg: cfg, app: l, http: hs, URL: hs.URL}
	t.Cleanup(s.stop)
	if !cfg.Auth.Open {
		s.tokens = s.newClient("system/*.read", []string{"*"})
	}
	return s
}

// newClient registers a client with an ES384 key and returns its token
// source.
func (s *server) newClient(scope string, groups []string) *client.BackendServices {
	s.t.Helper()
	key, err := client.GenerateES384()
	if err != nil {
		s.t.Fatal(err)
	}
	md, _ := json.Marshal(map[string]any{"client_name": "test", "scope": scope,
		"jwks": map[string]any{"keys": []client.JWK{key.PublicJWK()}}})
	c, _, err := s.app.API.Authz.Authority.Register(context.Background(), md, auth.RegistrationDefaults{Groups: groups})
	if err != nil {
		s.t.Fatalf("Register: %v", err)
	}
	return &client.BackendServices{ClientID: c.ID, Key: key, TokenURL: s.URL + "/token", FHIRBase: s.URL, Scope: scope}
}

func (s *server) stop() {
	if s.http != nil {
		s.http.Close()
		s.http = nil
		_ = s.app.Close()
	}
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (s *server) do(method, url string, body []byte, headers ...string) response {
	s.t.Helper()
	if !strings.HasPrefix(url, "http") {
		url = s.URL + url
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		s.t.Fatalf("NewRequest: %v", err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	if strings.Contains(url, "/$export") && (method == "GET" || method == "POST") {
		// The headers a kick-off needs (IG 1.3; 400 without them), unless
		// the test names them, even as "" to send none.
		for k, v := range map[string]string{"Accept": "application/fhir+json", "Prefer": "respond-async"} {
			if _, ok := req.Header[k]; !ok {
				req.Header.Set(k, v)
			}
		}
		for _, k := range []string{"Accept", "Prefer"} {
			if req.Header.Get(k) == "" {
				req.Header.Del(k)
			}
		}
	}
	if _, ok := req.Header["Authorization"]; !ok && s.tokens != nil && strings.HasPrefix(url, s.URL) {
		tok, err := s.tokens.Token(context.Background())
		if err != nil {
			s.t.Fatalf("token: %v", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	} else if req.Header.Get("Authorization") == "none" {
		req.Header.Del("Authorization")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// kickoff starts an export and returns its status URL (R5).
func (s *server) kickoff(method, path string, body []byte) string {
	s.t.Helper()
	res := s.do(method, path, body, "Accept", "application/fhir+json", "Prefer", "respond-async", "Content-Type", "application/fhir+json")
	if res.Status != http.StatusAccepted {
		s.t.Fatalf("%s %s = %d %s, want 202", method, path, res.Status, res.Body)
	}
	loc := res.Header.Get("Content-Location")
	if !strings.HasPrefix(loc, s.URL+"/") {
		s.t.Fatalf("%s %s: Content-Location %q is not an absolute URL on this server (R5)", method, path, loc)
	}
	return loc
}

type manifest struct {
	TransactionTime     string         `json:"transactionTime"`
	Request             string         `json:"request"`
	RequiresAccessToken *bool          `json:"requiresAccessToken"`
	OutputOrganizedBy   string         `json:"outputOrganizedBy"`
	Output              []manifestFile `json:"output"`
	Deleted             []manifestFile `json:"deleted"`
	Error               []manifestFile `json:"error"`
}

type manifestFile struct {
	Type            string `json:"type"`
	URL             string `json:"url"`
	Count           int64  `json:"count"`
	ContinuesInFile string `json:"continuesInFile"`
}

// wait polls the status URL until the job is done (readiness, not sleeps:
// each poll returns at once) and checks the in-progress responses (R45–R47).
func (s *server) wait(statusURL string) manifest {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		res := s.do("GET", statusURL, nil, "Accept", "application/json")
		switch res.Status {
		case http.StatusAccepted:
			if p := res.Header.Get("X-Progress"); len(p) >= 100 {
				s.t.Fatalf("X-Progress %q is 100 characters or more (R46)", p)
			}
			if res.Header.Get("Retry-After") == "" {
				s.t.Fatalf("in-progress status has no Retry-After (R47)")
			}
			time.Sleep(5 * time.Millisecond) // poll interval, not a wait for a condition
			continue
		case http.StatusOK:
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				s.t.Fatalf("manifest Content-Type = %q, want application/json (R52)", ct)
			}
			if res.Header.Get("Expires") == "" {
				s.t.Errorf("manifest has no Expires header (R53)")
			}
			var m manifest
			if err := json.Unmarshal(res.Body, &m); err != nil {
				s.t.Fatalf("manifest is not JSON: %v\n%s", err, res.Body)
			}
			checkManifestShape(s.t, res.Body, m)
			return m
		default:
			s.t.Fatalf("GET %s = %d %s", statusURL, res.Status, res.Body)
		}
	}
	s.t.Fatalf("export %s did not finish in time", statusURL)
	return manifest{}
}

// checkManifestShape checks the required manifest fields (R54, R58, R61).
func checkManifestShape(t testing.TB, raw []byte, m manifest) {
	t.Helper()
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(raw, &keys)
	for _, k := range []string{"transactionTime", "request", "requiresAccessToken", "output", "error"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("manifest lacks %q (R54)", k)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, m.TransactionTime); err != nil {
		t.Errorf("transactionTime %q is not an instant (R54)", m.TransactionTime)
	}
	if !strings.HasPrefix(m.Request, "http") {
		t.Errorf("request %q is not the full kick-off URL (R56)", m.Request)
	}
	for _, f := range m.Output {
		if (f.Type == "") != (m.OutputOrganizedBy != "") || !strings.HasPrefix(f.URL, "http") {
			t.Errorf("manifest output %+v (organized by %q): want a type unless organized, and an absolute url (R58, R64)", f, m.OutputOrganizedBy)
		}
	}
	for _, f := range append(m.Deleted, m.Error...) {
		if f.Type == "" || !strings.HasPrefix(f.URL, "http") {
			t.Errorf("manifest file %+v lacks type or an absolute url (R58)", f)
		}
	}
}

// line is one exported resource.
type line struct {
	Type string
	ID   string
	Raw  []byte
}

// download fetches every file of a manifest array and checks the file rules
// (R58, R59, R75, R76); it returns all lines. Files without a type
// (organized output) may hold any type.
// deletion is one line of a manifest's deleted files.
type deletion struct {
	URL         string    // the DELETE entry's request.url, Type/id
	LastUpdated time.Time // the Bundle's meta.lastUpdated: the deletion time
}

// deletions downloads deleted files and parses every line, failing the
// test on one that is not a transaction Bundle of one DELETE entry (R88).
// They come in file order.
func (s *server) deletions(files []manifestFile) []deletion {
	s.t.Helper()
	var out []deletion
	for _, l := range s.download(files, false) {
		var b struct {
			ResourceType, Type string
			Meta               struct{ LastUpdated string }
			Entry              []struct {
				Request struct{ Method, URL string }
			}
		}
		if err := json.Unmarshal(l.Raw, &b); err != nil || b.ResourceType != "Bundle" || b.Type != "transaction" ||
			len(b.Entry) != 1 || b.Entry[0].Request.Method != "DELETE" {
			s.t.Fatalf("deleted line is not a transaction Bundle with one DELETE entry (R88): %s", l.Raw)
		}
		lu, _ := time.Parse(time.RFC3339Nano, b.Meta.LastUpdated)
		out = append(out, deletion{URL: b.Entry[0].Request.URL, LastUpdated: lu})
	}
	return out
}

// deletedURLs lists the deletions' URLs, sorted.
func deletedURLs(ds []deletion) []string {
	var urls []string
	for _, d := range ds {
		urls = append(urls, d.URL)
	}
	slices.Sort(urls)
	return urls
}

func (s *server) download(files []manifestFile, gz bool) []line {
	s.t.Helper()
	var all []line
	for _, f := range files {
		hdr := []string{"Accept", "application/fhir+ndjson"}
		if gz {
			hdr = append(hdr, "Accept-Encoding", "gzip")
		}
		// The default transport would decompress for us and hide the header:
		// ask for gzip explicitly and decode here.
		res := s.do("GET", f.URL, nil, hdr...)
		if res.Status != http.StatusOK {
			s.t.Fatalf("GET %s = %d %s", f.URL, res.Status, res.Body)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/fhir+ndjson" {
			s.t.Errorf("GET %s Content-Type = %q, want application/fhir+ndjson (R75)", f.URL, ct)
		}
		body := res.Body
		if gz {
			if res.Header.Get("Content-Encoding") != "gzip" {
				s.t.Fatalf("GET %s with Accept-Encoding: gzip: Content-Encoding = %q (R78)", f.URL, res.Header.Get("Content-Encoding"))
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				s.t.Fatalf("GET %s: not gzip: %v", f.URL, err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				s.t.Fatalf("GET %s: bad gzip: %v", f.URL, err)
			}
		} else if res.Header.Get("Content-Encoding") != "" {
			s.t.Fatalf("GET %s without Accept-Encoding got Content-Encoding %q (R78)", f.URL, res.Header.Get("Content-Encoding"))
		}
		if len(body) == 0 || body[len(body)-1] != '\n' {
			s.t.Errorf("GET %s: file does not end with a newline (R76)", f.URL)
		}
		var n int64
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			raw := append([]byte(nil), sc.Bytes()...)
			var head struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			}
			if err := json.Unmarshal(raw, &head); err != nil {
				s.t.Fatalf("GET %s line %d is not JSON (R76): %v", f.URL, n+1, err)
			}
			if f.Type != "" && head.ResourceType != f.Type {
				s.t.Fatalf("GET %s line %d is a %s in a %s file (R59)", f.URL, n+1, head.ResourceType, f.Type)
			}
			all = append(all, line{Type: head.ResourceType, ID: head.ID, Raw: raw})
			n++
		}
		if n != f.Count {
			s.t.Errorf("GET %s has %d lines, manifest count says %d (R58)", f.URL, n, f.Count)
		}
	}
	return all
}

// sharedData returns a path under ../../shared/data, or skips.
func sharedData(t *testing.T, name string) string {
	t.Helper()
	p, _ := filepath.Abs(filepath.Join("..", "..", "shared", "data", name))
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, "shared dataset %s not present (%v): skipping; the generated-data tests cover fresh clones", name, err)
	}
	return p
}
