package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/config"
)

// TestFileEncodings downloads every file of an export from a server that
// stores files as they are and from one that stores them gzip-encoded
// (--gzip-files): whatever the store holds, a client that accepts gzip
// gets gzip of the same bytes (the stored file itself, with its length,
// when it is gzip-encoded), one that does not gets the bytes, and a Range
// is of the bytes (R78).
func TestFileEncodings(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run("gzip-files="+strconv.FormatBool(gz), func(t *testing.T) {
			files := exportAll(t, gz)
			for _, u := range files {
				body, h := get(t, u, nil)
				if h.Get("Content-Encoding") != "" || len(body) == 0 || body[0] != '{' {
					t.Fatalf("GET %s without Accept-Encoding: Content-Encoding %q, body %.20q…, want NDJSON", u, h.Get("Content-Encoding"), body)
				}
				if cl := h.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
					t.Errorf("GET %s: Content-Length %s, want %d", u, cl, len(body))
				}
				enc, h := get(t, u, map[string]string{"Accept-Encoding": "gzip"})
				if h.Get("Content-Encoding") != "gzip" || !bytes.Equal(gunzip(t, enc), body) {
					t.Errorf("GET %s with gzip: Content-Encoding %q and %d bytes that do not decode to the %d identity bytes", u, h.Get("Content-Encoding"), len(enc), len(body))
				}
				if cl := h.Get("Content-Length"); gz && cl != strconv.Itoa(len(enc)) {
					t.Errorf("GET %s with gzip: Content-Length %q, want the stored file's %d (sent as it is)", u, cl, len(enc))
				}
				if res := head(t, u); gz && (res.Get("Content-Encoding") != "gzip" || res.Get("Content-Length") != strconv.Itoa(len(enc))) {
					t.Errorf("HEAD %s with gzip: Content-Encoding %q, Content-Length %q; want gzip, %d", u, res.Get("Content-Encoding"), res.Get("Content-Length"), len(enc))
				}
				part, h := get(t, u, map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=10-19"})
				if h.Get("Content-Encoding") != "" || !bytes.Equal(part, body[10:20]) {
					t.Errorf("GET %s Range bytes=10-19: Content-Encoding %q, %q; want identity %q", u, h.Get("Content-Encoding"), part, body[10:20])
				}
			}
		})
	}
}

// exportAll runs a system export of 2 patients on an open local server
// and returns the manifest's file URLs.
func exportAll(t *testing.T, gzipFiles bool) []string {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir, cfg.Shards, cfg.Demo, cfg.PurgeEvery = t.TempDir(), 2, false, 0
	cfg.Auth.Open, cfg.GzipFiles = true, gzipFiles
	loadPatients(t, cfg, 2)
	l, err := app.NewLocal(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	hs := httptest.NewServer(l.API.Handler())
	t.Cleanup(func() { hs.Close(); l.Close() })

	_, h := get(t, hs.URL+"/$export", map[string]string{"Accept": "application/fhir+json", "Prefer": "respond-async"})
	status := h.Get("Content-Location")
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		res, err := http.Get(status)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			continue
		}
		var m struct {
			Output []struct {
				URL string `json:"url"`
			} `json:"output"`
		}
		if err := json.Unmarshal(raw, &m); err != nil || len(m.Output) == 0 {
			t.Fatalf("manifest %s: %v", raw, err)
		}
		var urls []string
		for _, o := range m.Output {
			urls = append(urls, o.URL)
		}
		return urls
	}
	t.Fatal("the export did not finish in a minute")
	return nil
}

// get sends a GET with headers (none but those: Go's transparent gzip is
// off) and returns the body as received.
func get(t *testing.T, u string, headers map[string]string) ([]byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode >= 300 {
		t.Fatalf("GET %s = %s, %v", u, res.Status, err)
	}
	return body, res.Header
}

// head sends a HEAD that accepts gzip and returns the response's header.
func head(t *testing.T, u string) http.Header {
	t.Helper()
	req, err := http.NewRequest("HEAD", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HEAD %s = %s", u, res.Status)
	}
	return res.Header
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}
