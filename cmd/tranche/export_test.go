package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/client"
)

// fastPolls shortens the waits of the export command for one test: the
// local server asks for Retry-After of 1 s and more.
func fastPolls(t *testing.T) {
	old := exportSleep
	exportSleep = func(ctx context.Context, d time.Duration) error {
		return client.SleepContext(ctx, min(d, 5*time.Millisecond))
	}
	t.Cleanup(func() { exportSleep = old })
}

// serveDemo runs `tranche serve` with demo data, as a newcomer does, and
// returns its base URL and the demo client file it writes.
func serveDemo(t *testing.T) (base, clientFile string) {
	t.Helper()
	return serveDemoData(t, t.TempDir())
}

// serveDemoData is serveDemo with the data dir data.
func serveDemoData(t *testing.T, data string) (base, clientFile string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--demo-patients", "6",
			"--max-file-resources", "150", "--log-level", "error"}, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() && (base == "" || clientFile == "") {
		if _, u, ok := strings.Cut(sc.Text(), "serving FHIR Bulk Data at "); ok {
			base = u
		}
		if _, f, ok := strings.Cut(sc.Text(), "Demo client: "); ok {
			clientFile = f
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if base == "" || clientFile == "" {
		t.Fatalf("serve printed no base URL or demo client (%q, %q)", base, clientFile)
	}
	return base, clientFile
}

func TestExportUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--fhir", "http://x", "extra"},
		{"--fhir", "http://x", "--since", "yesterday"},
		{"--fhir", "http://x", "--since", "2026-01-01T00:00:00Z", "--since-last"},
		{"--fhir", "http://x", "--level", "group"},
		{"--fhir", "http://x", "--level", "patient:3"},
		{"--fhir", "http://x", "--level", "everything"},
		{"--fhir", "http://x", "--token", "t", "--client-id", "c"},
		{"--fhir", "http://x", "--client-id", "c"},
		{"--fhir", "http://x", "--parallel", "0"},
		{"--fhir", "http://x", "--resume", "http://x/jobs/1", "--type", "Patient"},
		{"--no-such-flag"},
	} {
		var stderr bytes.Buffer
		err := exportCmd(context.Background(), args, io.Discard, &stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("export %q = %v, want a usage error (exit 2)", args, err)
		}
		if stderr.Len() == 0 {
			t.Errorf("export %q printed no explanation", args)
		}
	}
	for _, args := range [][]string{
		{"--fhir", "http://x", "--initial-token", "t"},
		{"--fhir", "http://x", "--initial-token", "t", "--jwks-uri", "u", "--generate-key", "k"},
		{"--initial-token", "t", "--jwks-uri", "u"},
		{"--fhir", "http://x", "--jwks-uri", "u"},
	} {
		if err := registerCmd(context.Background(), args, io.Discard, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("register %q = %v, want a usage error", args, err)
		}
	}
}

// TestExportLocal: `make run`, then one `tranche export --client` line: an
// authorized export of the demo data, then an incremental one.
func TestExportLocal(t *testing.T) {
	fastPolls(t)
	base, clientFile := serveDemo(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"--client", clientFile, "--out", out, "--type", "Patient,Observation", "--since-last", "--parallel", "3"}
	if err := exportCmd(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("export = %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"Exported ", "Patient ", "Observation ", "transactionTime"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, want := range []string{"no earlier export", "export started: " + base + "/jobs/", "export ready:", "saved  Patient.000.ndjson"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("progress lines lack %q:\n%s", want, stderr.String())
		}
	}
	wm, err := client.ReadWatermark(out)
	if err != nil || wm == nil {
		t.Fatalf("no watermark after a successful export: %v", err)
	}
	// Nothing changed: the incremental export is empty but succeeds.
	stdout.Reset()
	stderr.Reset()
	if err := exportCmd(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("second export = %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "Exported 0 resources in 0 files") || !strings.Contains(stdout.String(), "since            "+wm.TransactionTime) {
		t.Errorf("incremental summary:\n%s", stdout.String())
	}
}

func TestExportFailure(t *testing.T) {
	fastPolls(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "$export") {
			w.Header().Set("Content-Location", "http://"+r.Host+"/status/1")
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"processing","diagnostics":"Export failed: out of disk."}]}`)
	}))
	defer srv.Close()
	err := exportCmd(context.Background(), []string{"--fhir", srv.URL, "--out", t.TempDir()}, io.Discard, io.Discard)
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "Export failed: out of disk.") {
		t.Fatalf("export = %v, want a failure (exit 1) with the server's text", err)
	}
}

// smartServer is a fake SMART Backend Services server: discovery,
// registration (checks the initial token, keeps the JWKS), a token endpoint
// verifying ES384 assertions against the registered key, and a one-file
// export that requires the token.
type smartServer struct {
	*httptest.Server
	mu    sync.Mutex
	jwks  []client.JWK
	fails []string
}

func newSMARTServer(t *testing.T) *smartServer {
	s := &smartServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"token_endpoint":%q,"registration_endpoint":%q}`, s.URL+"/auth/token", s.URL+"/auth/register")
	})
	mux.HandleFunc("POST /auth/register", func(w http.ResponseWriter, r *http.Request) {
		var meta struct {
			JWKS struct{ Keys []client.JWK } `json:"jwks"`
		}
		if r.Header.Get("Authorization") != "Bearer init" || json.NewDecoder(r.Body).Decode(&meta) != nil || len(meta.JWKS.Keys) != 1 {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_client_metadata"}`)
			return
		}
		s.mu.Lock()
		s.jwks = meta.JWKS.Keys
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"client_id":"cli-9"}`)
	})
	mux.HandleFunc("POST /auth/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if err := s.verify(r.PostForm.Get("client_assertion")); err != nil {
			s.mu.Lock()
			s.fails = append(s.fails, err.Error())
			s.mu.Unlock()
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"invalid_client","error_description":%q}`, err.Error())
			return
		}
		fmt.Fprint(w, `{"access_token":"tok","token_type":"bearer","expires_in":300,"scope":"system/*.read"}`)
	})
	mux.HandleFunc("/fhir/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/fhir/Patient/$export":
			w.Header().Set("Content-Location", s.URL+"/fhir/status")
			w.WriteHeader(http.StatusAccepted)
		case "/fhir/status":
			fmt.Fprintf(w, `{"transactionTime":"2026-05-05T00:00:00Z","request":"x","requiresAccessToken":true,"output":[{"type":"Patient","url":%q,"count":1}],"error":[]}`, s.URL+"/fhir/file")
		case "/fhir/file":
			fmt.Fprintln(w, `{"resourceType":"Patient","id":"p"}`)
		}
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *smartServer) verify(jwt string) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return errors.New("not a JWS")
	}
	var hdr map[string]string
	var claims map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(cb, &claims) != nil || len(sig) != 96 {
		return errors.New("malformed JWS")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.jwks {
		if k.Kid != hdr["kid"] || hdr["alg"] != "ES384" {
			continue
		}
		x, _ := base64.RawURLEncoding.DecodeString(k.X)
		y, _ := base64.RawURLEncoding.DecodeString(k.Y)
		pub := &ecdsa.PublicKey{Curve: elliptic.P384(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
		sum := sha512.Sum384([]byte(parts[0] + "." + parts[1]))
		if !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])) {
			return errors.New("bad signature")
		}
		if claims["iss"] != "cli-9" || claims["sub"] != "cli-9" || claims["aud"] != s.URL+"/auth/token" {
			return fmt.Errorf("claims %v", claims)
		}
		return nil
	}
	return fmt.Errorf("no registered key %q", hdr["kid"])
}

// TestRegisterThenExport: register with a generated key, then export with
// the client file it wrote, nothing else.
func TestRegisterThenExport(t *testing.T) {
	fastPolls(t)
	s := newSMARTServer(t)
	dir := t.TempDir()
	clientFile, keyFile := filepath.Join(dir, "client.json"), filepath.Join(dir, "key.jwk")
	var stdout bytes.Buffer
	err := registerCmd(context.Background(), []string{"--fhir", s.URL + "/fhir", "--initial-token", "init",
		"--generate-key", keyFile, "--out-client", clientFile}, &stdout, io.Discard)
	if err != nil {
		t.Fatalf("register = %v", err)
	}
	for _, f := range []string{clientFile, keyFile} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, st.Mode().Perm())
		}
	}
	cf, err := client.LoadClientFile(clientFile)
	if err != nil || cf.ClientID != "cli-9" || cf.TokenURL != s.URL+"/auth/token" || cf.FHIRBaseURL != s.URL+"/fhir" || cf.Scope != "system/*.read" {
		t.Fatalf("client file = %+v, %v", cf, err)
	}
	if err := registerCmd(context.Background(), []string{"--fhir", s.URL + "/fhir", "--initial-token", "init",
		"--generate-key", keyFile + "2", "--out-client", clientFile}, io.Discard, io.Discard); err == nil {
		t.Errorf("register over an existing client file succeeded, want a refusal")
	}

	stdout.Reset()
	var stderr bytes.Buffer
	if err := exportCmd(context.Background(), []string{"--client", clientFile, "--level", "patient", "--out", filepath.Join(dir, "out")}, &stdout, &stderr); err != nil {
		t.Fatalf("export --client = %v (token endpoint saw: %v)\n%s", err, s.fails, stderr.String())
	}
	if !strings.Contains(stdout.String(), "Exported 1 resources in 1 files") {
		t.Errorf("summary:\n%s", stdout.String())
	}
	// The same key as PEM-less JWK file with --key and --client-id.
	if err := exportCmd(context.Background(), []string{"--fhir", s.URL + "/fhir", "--key", keyFile, "--client-id", "cli-9", "--level", "patient",
		"--out", filepath.Join(dir, "out2")}, io.Discard, io.Discard); err != nil {
		t.Fatalf("export --key --client-id = %v (token endpoint saw: %v)", err, s.fails)
	}
}

// TestExportReleases: once every file is downloaded and checked, `tranche
// export` sends DELETE on the status URL (R68), after which the status URL
// answers 404 (R69) and the files are gone from the server (R71, R82);
// --keep leaves them. A --resume of a released export says what became of
// it.
func TestExportReleases(t *testing.T) {
	fastPolls(t)
	data := t.TempDir()
	_, clientFile := serveDemoData(t, data)
	ts, _, err := exportAuth(authFlags{client: clientFile})
	if err != nil {
		t.Fatal(err)
	}
	get := func(u string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		tok, err := ts.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	// runExport runs tranche export into a fresh root out and returns its
	// watermark, saved manifest, server-side file directory and summary.
	var out string
	runExport := func(extra ...string) (*client.Watermark, *client.Manifest, string, string) {
		t.Helper()
		out = t.TempDir()
		var stdout, stderr bytes.Buffer
		args := append([]string{"--client", clientFile, "--out", out, "--type", "Patient"}, extra...)
		if err := exportCmd(context.Background(), args, &stdout, &stderr); err != nil {
			t.Fatalf("export %q = %v\n%s", extra, err, stderr.String())
		}
		wm, err := client.ReadWatermark(out)
		if err != nil || wm == nil {
			t.Fatalf("no watermark: %v", err)
		}
		raw, err := os.ReadFile(filepath.Join(out, wm.Dir, client.ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		m, err := client.ParseManifest(raw)
		if err != nil || len(m.Output) == 0 {
			t.Fatalf("saved manifest %s: %v", raw, err)
		}
		jobDir := filepath.Join(data, "files", wm.StatusURL[strings.LastIndex(wm.StatusURL, "/")+1:])
		return wm, m, jobDir, stdout.String()
	}

	wm, m, jobDir, summary := runExport()
	if want := "released         " + wm.StatusURL; !strings.Contains(summary, want) {
		t.Errorf("summary lacks %q:\n%s", want, summary)
	}
	if got := get(wm.StatusURL); got != http.StatusNotFound {
		t.Errorf("status URL after the export = %d, want 404 (R69)", got)
	}
	for _, f := range m.Output {
		if got := get(f.URL); got != http.StatusNotFound {
			t.Errorf("file %s after the export = %d, want 404", f.URL, got)
		}
	}
	if _, err := os.Stat(jobDir); !os.IsNotExist(err) {
		t.Errorf("server-side files of the released export: %v, want gone", err)
	}
	err = exportCmd(context.Background(), []string{"--client", clientFile, "--out", out, "--resume", wm.StatusURL}, io.Discard, io.Discard)
	if want := "downloaded into " + filepath.Join(out, wm.Dir) + " and then released"; err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), want) {
		t.Errorf("--resume of a released export = %v, want a 404 that says %q", err, want)
	}

	wm, m, jobDir, summary = runExport("--keep")
	if want := "kept             " + wm.StatusURL; !strings.Contains(summary, want) {
		t.Errorf("summary lacks %q:\n%s", want, summary)
	}
	if got := get(wm.StatusURL); got != http.StatusOK {
		t.Errorf("status URL after --keep = %d, want 200", got)
	}
	for _, f := range m.Output {
		if got := get(f.URL); got != http.StatusOK {
			t.Errorf("file %s after --keep = %d, want 200", f.URL, got)
		}
	}
	if _, err := os.Stat(jobDir); err != nil {
		t.Errorf("server-side files after --keep: %v", err)
	}
}

// TestExportReleaseFails: a DELETE the server refuses is a warning; the
// export succeeded and exits 0.
func TestExportReleaseFails(t *testing.T) {
	fastPolls(t)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "$export"):
			w.Header().Set("Content-Location", srv.URL+"/status/1")
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodGet && r.URL.Path == "/status/1":
			fmt.Fprintf(w, `{"transactionTime":"2026-05-05T00:00:00Z","request":"x","requiresAccessToken":false,"output":[{"type":"Patient","url":%q,"count":1}],"error":[]}`, srv.URL+"/file")
		case r.Method == http.MethodGet && r.URL.Path == "/file":
			fmt.Fprintln(w, `{"resourceType":"Patient","id":"p"}`)
		default: // DELETE
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"processing","diagnostics":"Cannot delete now."}]}`)
		}
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	if err := exportCmd(context.Background(), []string{"--fhir", srv.URL, "--out", t.TempDir()}, &stdout, &stderr); err != nil {
		t.Fatalf("export = %v, want success (exit 0) despite the failed release", err)
	}
	if !strings.Contains(stderr.String(), "warning: releasing the export on the server failed") || !strings.Contains(stderr.String(), "Cannot delete now.") ||
		!strings.Contains(stderr.String(), "The export itself succeeded.") {
		t.Errorf("no warning about the release:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "Exported 1 resources") || !strings.Contains(stdout.String(), "not released     "+srv.URL+"/status/1") {
		t.Errorf("summary:\n%s", stdout.String())
	}
}

// countingServer answers every request with 500 and counts them.
func countingServer(t *testing.T) (*httptest.Server, *int) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestExportOutNotWritable: an --out that cannot hold the files is a
// usage error naming --out, before any request reaches the server.
func TestExportOutNotWritable(t *testing.T) {
	srv, requests := countingServer(t)
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		out  string
		want string
	}{
		{file, "--out " + file + " is a file: give a directory"},
		{filepath.Join(file, "sub"), "--out " + filepath.Join(file, "sub") + ": cannot create the directory (mkdir " + file + ": not a directory)"},
	} {
		for _, extra := range [][]string{nil, {"--resume", srv.URL + "/status/1"}, {"--since-last"}} {
			var stderr bytes.Buffer
			args := append([]string{"--fhir", srv.URL, "--out", tc.out}, extra...)
			err := exportCmd(context.Background(), args, io.Discard, &stderr)
			if !errors.Is(err, errUsage) {
				t.Errorf("export %q = %v, want a usage error (exit 2)", args, err)
			}
			if !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), "no export was started") {
				t.Errorf("export %q: stderr = %q, want %q and that no export was started", args, stderr.String(), tc.want)
			}
		}
	}
	if *requests != 0 {
		t.Errorf("the server got %d requests, want none", *requests)
	}
}

// TestExportFailedRemovesNewOut: a failed export leaves no empty --out
// directories it created behind; an --out that existed stays.
func TestExportFailedRemovesNewOut(t *testing.T) {
	fastPolls(t)
	srv, requests := countingServer(t)
	root := t.TempDir()
	out := filepath.Join(root, "new", "export")
	if err := exportCmd(context.Background(), []string{"--fhir", srv.URL, "--out", out}, io.Discard, io.Discard); err == nil || errors.Is(err, errUsage) {
		t.Fatalf("export against a failing server = %v, want a failure (exit 1)", err)
	}
	if *requests == 0 {
		t.Fatalf("no kick-off reached the server")
	}
	if _, err := os.Stat(filepath.Join(root, "new")); !os.IsNotExist(err) {
		t.Errorf("the failed export left %s behind (%v)", filepath.Join(root, "new"), err)
	}
	if err := exportCmd(context.Background(), []string{"--fhir", srv.URL, "--out", root}, io.Discard, io.Discard); err == nil {
		t.Fatal("export against a failing server succeeded")
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("a failed export removed the --out that existed: %v", err)
	}
}

// TestExportFHIROverridesClientFile: --fhir given explicitly wins over the
// client file's fhir_base_url, and the file's token_url (which belongs to
// that other server) is not used: the token endpoint is discovered from
// --fhir, unless --token-url names one.
func TestExportFHIROverridesClientFile(t *testing.T) {
	fastPolls(t)
	s := newSMARTServer(t)
	dir := t.TempDir()
	clientFile, keyFile := filepath.Join(dir, "client.json"), filepath.Join(dir, "key.jwk")
	if err := registerCmd(context.Background(), []string{"--fhir", s.URL + "/fhir", "--initial-token", "init",
		"--generate-key", keyFile, "--out-client", clientFile}, io.Discard, io.Discard); err != nil {
		t.Fatalf("register = %v", err)
	}
	cf, err := client.LoadClientFile(clientFile)
	if err != nil {
		t.Fatal(err)
	}
	// The same client, its file written for a server that is gone.
	cf.FHIRBaseURL, cf.TokenURL = "http://127.0.0.1:1/fhir", "http://127.0.0.1:1/auth/token"
	moved := filepath.Join(dir, "moved.json")
	if err := cf.Save(moved); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		extra    []string
		wantNote string
	}{
		{[]string{"--fhir", s.URL + "/fhir"}, "its token_url is not used: the token endpoint comes from " + s.URL + "/fhir/.well-known/smart-configuration"},
		{[]string{"--fhir", s.URL + "/fhir/", "--token-url", s.URL + "/auth/token"}, "the token endpoint is --token-url " + s.URL + "/auth/token"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"--client", moved, "--level", "patient", "--out", filepath.Join(dir, fmt.Sprint("out", i))}, tc.extra...)
		if err := exportCmd(context.Background(), args, &stdout, &stderr); err != nil {
			t.Fatalf("export %q = %v (token endpoint saw: %v)\n%s", args, err, s.fails, stderr.String())
		}
		if want := "--fhir " + tc.extra[1] + " overrides the client file's fhir_base_url http://127.0.0.1:1/fhir; " + tc.wantNote; !strings.Contains(stderr.String(), want) {
			t.Errorf("export %q: stderr lacks %q:\n%s", args, want, stderr.String())
		}
		if !strings.Contains(stdout.String(), "Exported 1 resources") {
			t.Errorf("export %q summary:\n%s", args, stdout.String())
		}
	}
	// --fhir naming the file's own server (a trailing slash, another
	// case) is no override: nothing to say, the file's token_url is used.
	var stderr bytes.Buffer
	args := []string{"--client", clientFile, "--fhir", strings.ToUpper(s.URL[:4]) + s.URL[4:] + "/fhir/", "--level", "patient", "--out", filepath.Join(dir, "out-same")}
	if err := exportCmd(context.Background(), args, io.Discard, &stderr); err != nil {
		t.Fatalf("export %q = %v\n%s", args, err, stderr.String())
	}
	if strings.Contains(stderr.String(), "overrides") {
		t.Errorf("export %q with the file's own base URL notes an override:\n%s", args, stderr.String())
	}
}

func TestSameBase(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"http://h/fhir", "http://h/fhir", true},
		{"http://h/fhir/", "http://h/fhir", true},
		{"HTTP://H:8080/fhir", "http://h:8080/fhir", true},
		{"http://h/fhir", "http://h/FHIR", false},
		{"http://h:8080/fhir", "http://h:9090/fhir", false},
		{"https://h/fhir", "http://h/fhir", false},
	} {
		if got := sameBase(tc.a, tc.b); got != tc.want {
			t.Errorf("sameBase(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
