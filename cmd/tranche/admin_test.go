package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/admin"
	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/config"
)

// operatorRun runs a tranche command that must succeed and returns its
// stdout.
func operatorRun(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("tranche %s = %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String()
}

func statsJSON(t *testing.T, data string) admin.Stats {
	t.Helper()
	var st admin.Stats
	out := operatorRun(t, "stats", "--data", data, "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, out)
	}
	return st
}

// TestOperatorCommands is issue 16 items 2 and 3: clients add, list and
// remove, import and stats work on a running server (through its admin
// socket, while it holds the store) and on a stopped one (on the store).
func TestOperatorCommands(t *testing.T) {
	data := t.TempDir()
	obs := func(name string, n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"resourceType":"Observation","id":"%s-%d","status":"final"}`+"\n", name, i)
		}
		path := filepath.Join(t.TempDir(), name+".ndjson")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	clients := func(t *testing.T, base string) {
		t.Helper()
		file := filepath.Join(t.TempDir(), "payer.json")
		out := operatorRun(t, "clients", "add", "--data", data, "--name", "payer", "--generate-key", file, "--groups", "group-10")
		if !strings.Contains(out, "Added client") {
			t.Errorf("clients add:\n%s", out)
		}
		cf, err := client.LoadClientFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if cf.FHIRBaseURL != base {
			t.Errorf("client file's FHIR base = %q, want %q", cf.FHIRBaseURL, base)
		}
		if out := operatorRun(t, "clients", "list", "--data", data); !strings.Contains(out, cf.ClientID) || !strings.Contains(out, "group-10") {
			t.Errorf("clients list lacks %s:\n%s", cf.ClientID, out)
		}
		var errb bytes.Buffer
		if code := run(context.Background(), []string{"clients", "add", "--data", data, "--name", "bad", "--jwks-uri", "http://10.0.0.1/jwks"}, io.Discard, &errb); code != 1 || strings.Contains(errb.String(), "bolt") {
			t.Errorf("clients add with a private jwks_uri = %d %q, want 1 and the reason", code, errb.String())
		}
		operatorRun(t, "clients", "remove", "--data", data, cf.ClientID)
		if out := operatorRun(t, "clients", "list", "--data", data); strings.Contains(out, cf.ClientID) {
			t.Errorf("removed client still listed:\n%s", out)
		}
		errb.Reset()
		if code := run(context.Background(), []string{"clients", "remove", "--data", data, "nobody"}, io.Discard, &errb); code != 1 || !strings.Contains(errb.String(), "nobody") {
			t.Errorf("clients remove nobody = %d %q, want 1 naming it", code, errb.String())
		}
	}

	base, _, stop := serveData(t, data)
	t.Run("Running", func(t *testing.T) {
		fi, err := os.Lstat(admin.SocketPath(data))
		if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
			t.Fatalf("admin socket: %v %v, want a socket with mode 0600", fi, err)
		}
		clients(t, base) // --fhir defaults to the running server's base URL

		var out, errb bytes.Buffer
		handled, rep, err := adminImport(context.Background(), data, []string{obs("live", 25)}, false, "", &out, &errb)
		if !handled || err != nil || rep.Resources["Observation"] != 25 {
			t.Fatalf("adminImport on a running server = %v %+v %v, want 25 Observations through the server", handled, rep, err)
		}
		if !strings.Contains(out.String(), "through the server") {
			t.Errorf("adminImport does not say it went through the server:\n%s", out.String())
		}
		if handled, _, err := adminImport(context.Background(), data, []string{filepath.Join(data, "missing.ndjson")}, false, "", io.Discard, io.Discard); !handled || err == nil {
			t.Errorf("adminImport of a missing file = %v %v, want it handled with an error", handled, err)
		}

		st := statsJSON(t, data)
		if st.Server == nil || st.Server.BaseURL != base || st.Resources["Observation"] < 25 || st.Resources["Patient"] != 3 || st.Bytes == 0 {
			t.Errorf("stats --json on a running server = %+v", st)
		}
		if len(st.Groups) == 0 || st.LastUpdated.IsZero() {
			t.Errorf("stats --json lacks the demo Groups or the last import: %+v", st)
		}
		text := operatorRun(t, "stats", "--data", data)
		for _, want := range []string{"running at " + base, "Observation", fmt.Sprint(st.Resources["Observation"]), "GROUP", st.Groups[0].ID, "Last import", "Jobs: accepted 0"} {
			if !strings.Contains(text, want) {
				t.Errorf("stats lacks %q:\n%s", want, text)
			}
		}
	})
	running := statsJSON(t, data)
	stop()
	if _, err := os.Lstat(admin.SocketPath(data)); !os.IsNotExist(err) {
		t.Errorf("admin socket after shutdown: %v, want it removed", err)
	}

	t.Run("Stopped", func(t *testing.T) {
		st := statsJSON(t, data)
		running.Server = nil
		if st.Server != nil || st.Resources["Observation"] != running.Resources["Observation"] || len(st.Groups) != len(running.Groups) || !st.LastUpdated.Equal(running.LastUpdated) {
			t.Errorf("stats --json on the stopped server = %+v, want %+v", st, running)
		}
		if text := operatorRun(t, "stats", "--data", data); !strings.Contains(text, "not running") {
			t.Errorf("stats on a stopped server:\n%s", text)
		}
		clients(t, "http://127.0.0.1:8080")
		handled, _, err := adminImport(context.Background(), data, []string{obs("stopped", 2)}, false, "", io.Discard, io.Discard)
		if handled || err != nil {
			t.Errorf("adminImport on a stopped server = %v %v, want it left to the caller", handled, err)
		}
		var errb bytes.Buffer
		if code := run(context.Background(), []string{"stats", "--data", t.TempDir()}, io.Discard, &errb); code != 1 || !strings.Contains(errb.String(), "no store") {
			t.Errorf("stats on an empty data dir = %d %q, want 1 saying there is no store", code, errb.String())
		}
	})
}

// TestServeBusyPort: serve binds its address before it generates demo data
// into an empty store, so a busy port costs nothing.
func TestServeBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	data := t.TempDir()
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--addr", l.Addr().String(), "--data", data}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "address already in use") {
		t.Errorf("serve on a busy port = %d %q, want 1 and the reason", code, errb.String())
	}
	if strings.Contains(out.String(), "demo data") {
		t.Errorf("serve on a busy port generated demo data:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(data, "tranche.db")); !os.IsNotExist(err) {
		t.Errorf("serve on a busy port created the store: %v", err)
	}
}

// TestServeSameDataDir: a second serve on a data dir that a server (or an
// import) holds fails at once, saying so, with no call trace.
func TestServeSameDataDir(t *testing.T) {
	data := t.TempDir()
	base, _, stop := serveData(t, data)
	second := func() (int, string) {
		var errb bytes.Buffer
		code := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--log-level", "error"}, io.Discard, &errb)
		return code, errb.String()
	}
	start := time.Now()
	code, msg := second()
	if code != 1 || !strings.Contains(msg, "another tranche server") || !strings.Contains(msg, base) || strings.Contains(msg, "bolt") {
		t.Errorf("second serve = %d %q, want 1 naming the server that holds the data dir", code, msg)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("second serve took %v to fail", d)
	}
	stop()

	// No server, but a process holds the store (an import): its lock.
	cfg := config.Default()
	cfg.DataDir = data
	db, err := app.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	code, msg = second()
	if code != 1 || !strings.Contains(msg, "in use by another tranche process") || strings.Contains(msg, "bolt") {
		t.Errorf("serve on a locked store = %d %q, want 1 saying another process holds it", code, msg)
	}
}
