package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeDemo runs `tranche serve` as a newcomer does: an empty data dir
// gets demo data and a demo client, `tranche token` and `tranche export`
// work with the client file it wrote, and a signal (context cancel) shuts it
// down cleanly.
func TestServeDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	data := t.TempDir()
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--demo-patients", "15", "--log-level", "warn"}, pw, &stderr)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var base string
	for sc.Scan() {
		if _, url, ok := strings.Cut(sc.Text(), "serving FHIR Bulk Data at "); ok {
			base = url
			break
		}
	}
	if base == "" {
		t.Fatalf("serve printed no base URL; stderr: %s", stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	clientFile := filepath.Join(data, DemoClientFile)
	var tok bytes.Buffer
	if code := run(ctx, []string{"token", "--client", clientFile}, &tok, &stderr); code != 0 {
		t.Fatalf("tranche token = %d: %s", code, stderr.String())
	}
	req, _ := http.NewRequest("GET", base+"/Patient/$export", nil)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("kick-off without a token = %v %v, want 401", res, err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("kick-off = %d, want 202", res.StatusCode)
	}
	status := res.Header.Get("Content-Location")
	var m struct{ Output []struct{ Type string } }
	for deadline := time.Now().Add(time.Minute); ; {
		req, _ := http.NewRequest("GET", status, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			break
		}
		if res.StatusCode != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("status = %d %s", res.StatusCode, b)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	if len(m.Output) < 10 {
		t.Errorf("demo Patient export has %d files, want one per compartment type (10+)", len(m.Output))
	}
	// The README quickstart: one export command with the demo client file.
	var out bytes.Buffer
	if code := run(ctx, []string{"export", "--client", clientFile, "--out", t.TempDir(), "--level", "group:group-10"}, &out, &stderr); code != 0 {
		t.Errorf("tranche export --client demo-client.json = %d\n%s\n%s", code, out.String(), stderr.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exit = %d, want 0; stderr: %s", code, stderr.String())
	}
}

func TestCommandLineErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 2},
		{[]string{"nope"}, 2},
		{[]string{"serve", "--addr", "nonsense"}, 1},
		{[]string{"serve", "--bogus"}, 2},
		{[]string{"import", "--data", dir}, 2},
		{[]string{"import", "--data", dir, filepath.Join(dir, "missing.ndjson")}, 1},
		{[]string{"generate"}, 2},
		{[]string{"generate", "--out", dir, "--base", "yesterday"}, 2},
		{[]string{"version"}, 0},
	} {
		var out, errb bytes.Buffer
		if got := run(context.Background(), tc.args, &out, &errb); got != tc.want {
			t.Errorf("run(%q) = %d, want %d\nstdout: %s\nstderr: %s", tc.args, got, tc.want, out.String(), errb.String())
		}
	}
}

func TestGenerateImport(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"generate", "--patients", "5", "--out", dir}, &out, &errb); code != 0 {
		t.Fatalf("generate = %d: %s", code, errb.String())
	}
	bad := filepath.Join(dir, "Bad.ndjson")
	if err := os.WriteFile(bad, []byte("{\"resourceType\":\"Patient\",\"id\":\"ok-1\"}\nnot json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	code := run(context.Background(), []string{"import", "--data", data, dir}, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "Bad.ndjson:2:") {
		t.Errorf("import with a bad line = %d, want 1 and the bad line reported as file:2\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "Imported ") {
		t.Errorf("import summary missing:\n%s", out.String())
	}
}
