package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// serveData runs `tranche serve` on the data dir data until stop, which
// waits for it to exit (and release the store), is called.
func serveData(t *testing.T, data string) (base, clientFile string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--demo-patients", "3",
			"--max-file-resources", "150", "--log-level", "error"}, pw, io.Discard)
		pw.Close()
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
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
	return base, clientFile, stop
}

// TestImportThenSinceLast is issue 13's report: `tranche import` of 324 new
// resources whose own lastUpdated is older than the last export, then
// `tranche export --since-last`, exported nothing. The server's clock now
// stamps them as they are stored; `--keep-last-updated` keeps the old
// behaviour, and says what it costs (R12, R55).
func TestImportThenSinceLast(t *testing.T) {
	fastPolls(t)
	data, out := t.TempDir(), t.TempDir()
	export := func(clientFile string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args := []string{"--client", clientFile, "--out", out, "--type", "Observation", "--since-last"}
		if err := exportCmd(context.Background(), args, &stdout, &stderr); err != nil {
			t.Fatalf("export --since-last = %v\n%s", err, stderr.String())
		}
		return stdout.String()
	}
	importFile := func(name string, n int, flags ...string) string {
		t.Helper()
		var lines []string
		for i := range n {
			lines = append(lines, fmt.Sprintf(`{"resourceType":"Observation","id":"%s-%d","meta":{"lastUpdated":"2020-01-01T00:00:00Z"},"status":"final"}`, name, i))
		}
		path := filepath.Join(t.TempDir(), name+".ndjson")
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		args := append(append([]string{"import", "--data", data}, flags...), path)
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("tranche %v = %d\n%s%s", args, code, stdout.String(), stderr.String())
		}
		return stdout.String()
	}

	_, clientFile, stop := serveData(t, data)
	if got := export(clientFile); !strings.Contains(got, "Exported ") {
		t.Fatalf("first export:\n%s", got)
	}
	stop()

	if got := importFile("feed", 324); strings.Contains(got, "keep-last-updated") {
		t.Errorf("a plain import warns about --keep-last-updated:\n%s", got)
	}
	_, clientFile, stop = serveData(t, data)
	if got := export(clientFile); !strings.Contains(got, "Exported 324 resources") {
		t.Errorf("export --since-last after importing 324 resources last updated in 2020:\n%s", got)
	}
	stop()

	got := importFile("backup", 3, "--keep-last-updated")
	if !strings.Contains(got, "--keep-last-updated") || !strings.Contains(got, "may not include these resources") {
		t.Errorf("import --keep-last-updated does not say what it means for _since:\n%s", got)
	}
	_, clientFile, _ = serveData(t, data)
	if got := export(clientFile); !strings.Contains(got, "Exported 0 resources") {
		t.Errorf("export --since-last after --keep-last-updated of resources last updated in 2020, want none:\n%s", got)
	}
}

// TestSinceLastWithoutEarlierExport: --since-last into an --out with no
// earlier export (none there yet, or not even the directory) is a full
// export with a notice saying so, not an error; the next one sends the
// first one's transactionTime as _since.
func TestSinceLastWithoutEarlierExport(t *testing.T) {
	fastPolls(t)
	var mu sync.Mutex
	var kickoffs []string
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "$export"):
			mu.Lock()
			kickoffs = append(kickoffs, r.URL.RawQuery)
			mu.Unlock()
			w.Header().Set("Content-Location", srv.URL+"/status/1")
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodGet && r.URL.Path == "/status/1":
			fmt.Fprintf(w, `{"transactionTime":"2026-05-05T00:00:00Z","request":%q,"requiresAccessToken":false,"output":[{"type":"Patient","url":%q,"count":1}],"error":[]}`, srv.URL+"/$export", srv.URL+"/file")
		case r.Method == http.MethodGet && r.URL.Path == "/file":
			fmt.Fprintln(w, `{"resourceType":"Patient","id":"p"}`)
		default: // DELETE: released
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "not", "yet")
	var stdout, stderr bytes.Buffer
	args := []string{"--fhir", srv.URL, "--out", out, "--since-last"}
	if err := exportCmd(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("export --since-last with no earlier export = %v, want a full export\n%s", err, stderr.String())
	}
	if want := "no earlier export in " + out + ": exporting everything"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks the notice %q:\n%s", want, stderr.String())
	}
	if strings.Contains(stdout.String(), "since ") {
		t.Errorf("a full export's summary shows a since:\n%s", stdout.String())
	}
	stderr.Reset()
	if err := exportCmd(context.Background(), args, io.Discard, &stderr); err != nil {
		t.Fatalf("second export --since-last = %v\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "no earlier export") {
		t.Errorf("the second export says there is no earlier one:\n%s", stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(kickoffs) != 2 || strings.Contains(kickoffs[0], "_since") || !strings.Contains(kickoffs[1], "_since=2026-05-05T00%3A00%3A00Z") {
		t.Errorf("kick-off queries = %q, want none with _since, then _since=2026-05-05T00:00:00Z", kickoffs)
	}
}
