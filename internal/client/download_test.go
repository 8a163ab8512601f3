package client_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/client"
)

// fileServer serves NDJSON files by path, gzip-encoded when asked, and
// records the Authorization header of each request.
type fileServer struct {
	mu    sync.Mutex
	files map[string]string
	auth  map[string][]string // path → Authorization values seen
	gets  map[string]int
	// gzipped counts responses sent with Content-Encoding: gzip.
	gzipped int
}

func newFileServer(files map[string]string) *fileServer {
	return &fileServer{files: files, auth: map[string][]string{}, gets: map[string]int{}}
}

func (f *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.auth[r.URL.Path] = append(f.auth[r.URL.Path], r.Header.Get("Authorization"))
	f.gets[r.URL.Path]++
	body, ok := f.files[r.URL.Path]
	gz := strings.Contains(r.Header.Get("Accept-Encoding"), "gzip")
	if ok && gz {
		f.gzipped++
	}
	f.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	if gz {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, body)
		_ = zw.Close()
		return
	}
	_, _ = io.WriteString(w, body)
}

func (f *fileServer) authSeen(path string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.auth[path]
}

func (f *fileServer) getCount(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets[path]
}

func ndjson(typ string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"resourceType":%q,"id":"%s-%d"}`+"\n", typ, strings.ToLower(typ), i)
	}
	return b.String()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDownload(t *testing.T) {
	fs := newFileServer(map[string]string{
		"/f/p1": ndjson("Patient", 3), "/f/p2": ndjson("Patient", 2), "/f/o1": ndjson("Observation", 5),
		"/f/del": ndjson("Bundle", 1), "/f/err": ndjson("OperationOutcome", 1),
	})
	srv := serve(t, fs)
	c, _ := newClient(t, srv.URL)
	c.Auth = client.StaticToken("secret")
	var events []client.DownloadProgress
	var mu sync.Mutex
	c.OnDownload = func(p client.DownloadProgress) {
		mu.Lock()
		defer mu.Unlock()
		if p.File != nil {
			events = append(events, p)
		}
	}
	m := &client.Manifest{TransactionTime: "2026-06-01T12:00:00Z", Request: srv.URL + "/$export", RequiresAccessToken: true,
		Output: []client.File{
			{Type: "Patient", URL: srv.URL + "/f/p1", Count: ptr(3)}, {Type: "Patient", URL: srv.URL + "/f/p2", Count: ptr(2)},
			{Type: "Observation", URL: srv.URL + "/f/o1"}, // no count: counted anyway
		},
		Deleted: []client.File{{Type: "Bundle", URL: srv.URL + "/f/del", Count: ptr(1)}},
		Error:   []client.File{{Type: "OperationOutcome", URL: srv.URL + "/f/err"}},
	}
	dir := t.TempDir()
	res, err := c.Download(context.Background(), m, dir, 3)
	if err != nil {
		t.Fatalf("Download() error = %v", err)
	}
	want := map[string]string{
		"Patient.000.ndjson": ndjson("Patient", 3), "Patient.001.ndjson": ndjson("Patient", 2),
		"Observation.000.ndjson":    ndjson("Observation", 5),
		"deleted/Bundle.000.ndjson": ndjson("Bundle", 1), "error/OperationOutcome.000.ndjson": ndjson("OperationOutcome", 1),
	}
	for name, body := range want {
		if got := readFile(t, filepath.Join(dir, name)); got != body {
			t.Errorf("%s = %q, want %q", name, got, body)
		}
	}
	if diff := cmp.Diff(map[string]int64{"Patient": 5, "Observation": 5}, res.Resources); diff != "" {
		t.Errorf("Download() resources (-want +got):\n%s", diff)
	}
	if res.Deleted != 1 || res.Errors != 1 || res.Skipped != 0 || len(events) != 5 {
		t.Errorf("Download() = deleted %d, errors %d, skipped %d, %d file events; want 1, 1, 0, 5", res.Deleted, res.Errors, res.Skipped, len(events))
	}
	if fs.gzipped != 5 {
		t.Errorf("%d of 5 files were requested with Accept-Encoding: gzip", fs.gzipped)
	}
	if got := fs.authSeen("/f/p1"); len(got) != 1 || got[0] != "Bearer secret" {
		t.Errorf("requiresAccessToken true: Authorization = %q, want the bearer token", got)
	}
	if raw := readFile(t, filepath.Join(dir, client.ManifestFile)); !strings.Contains(raw, `"transactionTime":"2026-06-01T12:00:00Z"`) {
		t.Errorf("manifest.json = %s", raw)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*.part"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestDownloadNoTokenWhenNotRequired(t *testing.T) {
	fs := newFileServer(map[string]string{"/f/1": ndjson("Patient", 1)})
	srv := serve(t, fs)
	c, _ := newClient(t, srv.URL)
	c.Auth = client.StaticToken("secret")
	m := &client.Manifest{TransactionTime: "t", Request: "r", RequiresAccessToken: false, Output: []client.File{{Type: "Patient", URL: srv.URL + "/f/1", Count: ptr(1)}}}
	if _, err := c.Download(context.Background(), m, t.TempDir(), 1); err != nil {
		t.Fatal(err)
	}
	if got := fs.authSeen("/f/1"); len(got) != 1 || got[0] != "" {
		t.Errorf("requiresAccessToken false: Authorization = %q, want none", got)
	}
}

// TestDownloadRedirect: the FHIR server redirects file requests to a file
// server on another origin (here the same host name, another port, which
// Go's own redirect rule would still send the token to). The token reaches
// the FHIR server and never the file server.
func TestDownloadRedirect(t *testing.T) {
	files := newFileServer(map[string]string{"/blob/1": ndjson("Patient", 2)})
	fileSrv := serve(t, files)
	fhir := newFileServer(nil)
	fhirSrv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fhir.mu.Lock()
		fhir.auth[r.URL.Path] = append(fhir.auth[r.URL.Path], r.Header.Get("Authorization"))
		fhir.mu.Unlock()
		switch r.URL.Path {
		case "/files/1":
			http.Redirect(w, r, fileSrv.URL+"/blob/1", http.StatusTemporaryRedirect)
		case "/files/same":
			http.Redirect(w, r, "/files/1", http.StatusFound) // same origin first, then away
		}
	}))
	for _, path := range []string{"/files/1", "/files/same"} {
		c, _ := newClient(t, fhirSrv.URL)
		c.Auth = client.StaticToken("secret")
		m := &client.Manifest{TransactionTime: "t", Request: path, RequiresAccessToken: true, Output: []client.File{{Type: "Patient", URL: fhirSrv.URL + path, Count: ptr(2)}}}
		if _, err := c.Download(context.Background(), m, t.TempDir(), 1); err != nil {
			t.Fatalf("Download(%s) error = %v", path, err)
		}
	}
	for _, a := range fhir.authSeen("/files/1") {
		if a != "Bearer secret" {
			t.Errorf("FHIR server got Authorization %q, want the token", a)
		}
	}
	if got := fhir.authSeen("/files/same"); len(got) != 1 || got[0] != "Bearer secret" {
		t.Errorf("FHIR server got Authorization %q, want the token", got)
	}
	for _, a := range files.authSeen("/blob/1") {
		if a != "" {
			t.Fatalf("file server on another origin got Authorization %q: the token followed the redirect", a)
		}
	}
	if n := len(files.authSeen("/blob/1")); n != 2 {
		t.Errorf("file server got %d requests, want 2", n)
	}
}

func TestDownloadCountMismatch(t *testing.T) {
	fs := newFileServer(map[string]string{"/f/1": ndjson("Patient", 2)})
	srv := serve(t, fs)
	c, _ := newClient(t, srv.URL)
	c.MaxRetries = 2
	m := &client.Manifest{TransactionTime: "t", Request: "r", Output: []client.File{{Type: "Patient", URL: srv.URL + "/f/1", Count: ptr(3)}}}
	dir := t.TempDir()
	_, err := c.Download(context.Background(), m, dir, 1)
	if err == nil || !strings.Contains(err.Error(), "2 resources, but the manifest count says 3") {
		t.Fatalf("Download() error = %v, want a count mismatch", err)
	}
	if n := fs.getCount("/f/1"); n != 3 {
		t.Errorf("file fetched %d times, want 3 (1 + 2 retries)", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "Patient.000.ndjson")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file failing its count check was kept (stat: %v)", err)
	}
}

func TestDownloadRetries(t *testing.T) {
	body := ndjson("Observation", 50)
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	_, _ = io.WriteString(zw, body)
	_ = zw.Close()
	gz := zbuf.Bytes()
	sc := &script{steps: []http.HandlerFunc{
		func(w http.ResponseWriter, r *http.Request) { // 503 with Retry-After
			w.Header().Set("Retry-After", "4")
			w.WriteHeader(http.StatusServiceUnavailable)
		},
		func(w http.ResponseWriter, r *http.Request) { // a gzip stream cut short
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(gz[:len(gz)/2])
		},
		func(w http.ResponseWriter, r *http.Request) { // a corrupt gzip stream (bad CRC)
			bad := append([]byte(nil), gz...)
			bad[len(bad)-8] ^= 0xff
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(bad)
		},
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(gz)
		},
	}}
	srv := serve(t, sc)
	c, clk := newClient(t, srv.URL)
	m := &client.Manifest{TransactionTime: "t", Request: "r", Output: []client.File{{Type: "Observation", URL: srv.URL + "/f", Count: ptr(50)}}}
	dir := t.TempDir()
	if _, err := c.Download(context.Background(), m, dir, 1); err != nil {
		t.Fatalf("Download() error = %v", err)
	}
	if got := readFile(t, filepath.Join(dir, "Observation.000.ndjson")); got != body {
		t.Errorf("saved file differs from the served one")
	}
	if diff := cmp.Diff([]time.Duration{4 * time.Second, time.Second, 2 * time.Second}, clk.Sleeps()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}

	// A 404 is not retried.
	c404, _ := newClient(t, srv.URL)
	nf := serve(t, http.NotFoundHandler())
	m.Output[0].URL = nf.URL + "/gone"
	if _, err := c404.Download(context.Background(), m, t.TempDir(), 1); client.StatusCode(err) != 404 {
		t.Errorf("Download(404) error = %v, want a 404 *Error", err)
	}
}

func TestDownloadResume(t *testing.T) {
	fs := newFileServer(map[string]string{"/f/1": ndjson("Patient", 4), "/f/2": ndjson("Patient", 3), "/f/3": ndjson("Condition", 2)})
	srv := serve(t, fs)
	c, _ := newClient(t, srv.URL)
	m := &client.Manifest{TransactionTime: "2026-06-01T12:00:00Z", Request: "r", Output: []client.File{
		{Type: "Patient", URL: srv.URL + "/f/1", Count: ptr(4)},
		{Type: "Patient", URL: srv.URL + "/f/2", Count: ptr(3)},
		{Type: "Condition", URL: srv.URL + "/f/3", Count: ptr(2)},
	}}
	dir := t.TempDir()
	// An earlier run: manifest saved, the first file complete, the second
	// cut short in its .part file, the third not started.
	if err := os.WriteFile(filepath.Join(dir, client.ManifestFile), []byte(manifestJSON(t, *m)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Patient.000.ndjson"), []byte(ndjson("Patient", 4)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Patient.001.ndjson.part"), []byte(ndjson("Patient", 3)[:40]), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := c.Download(context.Background(), m, dir, 2)
	if err != nil {
		t.Fatalf("Download() error = %v", err)
	}
	if fs.getCount("/f/1") != 0 || fs.getCount("/f/2") != 1 || fs.getCount("/f/3") != 1 {
		t.Errorf("requests = %d, %d, %d; want the complete file skipped and the others fetched once",
			fs.getCount("/f/1"), fs.getCount("/f/2"), fs.getCount("/f/3"))
	}
	if got := readFile(t, filepath.Join(dir, "Patient.001.ndjson")); got != ndjson("Patient", 3) {
		t.Errorf("partial file redone as %q", got)
	}
	if res.Skipped != 1 || res.Resources["Patient"] != 7 || res.Resources["Condition"] != 2 {
		t.Errorf("Download() = skipped %d, resources %v; want 1 and Patient 7, Condition 2", res.Skipped, res.Resources)
	}

	other := *m
	other.TransactionTime = "2026-06-02T12:00:00Z"
	if _, err := c.Download(context.Background(), &other, dir, 2); !errors.Is(err, client.ErrOtherExport) {
		t.Errorf("Download(another export into the same dir) error = %v, want ErrOtherExport", err)
	}
}

// TestDownloadParallel: with parallel 4, four requests are in flight at
// once (the handler waits until it sees them).
func TestDownloadParallel(t *testing.T) {
	var inflight, peak atomic.Int32
	all := make(chan struct{})
	var once sync.Once
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := inflight.Add(1); n >= 4 {
			once.Do(func() { close(all) })
		}
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if n := inflight.Load(); n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-all:
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(w, ndjson("Patient", 1))
	}))
	c, _ := newClient(t, srv.URL)
	m := &client.Manifest{TransactionTime: "t", Request: "r"}
	for i := 0; i < 8; i++ {
		m.Output = append(m.Output, client.File{Type: "Patient", URL: fmt.Sprintf("%s/f/%d", srv.URL, i), Count: ptr(1)})
	}
	if _, err := c.Download(context.Background(), m, t.TempDir(), 4); err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != 4 {
		t.Errorf("peak concurrent downloads = %d, want 4", p)
	}
}

// TestDownloadStall: a server that stops sending mid-file is dropped after
// StallTimeout and the file is fetched again.
func TestDownloadStall(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	sc := &script{steps: []http.HandlerFunc{
		func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"resourceType":"Patient",`)
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		},
		func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, ndjson("Patient", 1)) },
	}}
	srv := serve(t, sc)
	c, _ := newClient(t, srv.URL)
	c.StallTimeout = 50 * time.Millisecond
	m := &client.Manifest{TransactionTime: "t", Request: "r", Output: []client.File{{Type: "Patient", URL: srv.URL + "/f", Count: ptr(1)}}}
	if _, err := c.Download(context.Background(), m, t.TempDir(), 1); err != nil {
		t.Fatalf("Download() error = %v", err)
	}
	if sc.count() != 2 {
		t.Errorf("requests = %d, want 2 (the stalled one, then a retry)", sc.count())
	}
}
