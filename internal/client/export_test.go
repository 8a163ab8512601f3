package client_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tranchehq/tranche/internal/client"
)

// TestExportRefreshesExpiredURLs: with requiresAccessToken false the
// manifest's URLs are short-lived; a file whose URL has expired (S3 answers
// 403) is fetched with the fresh URL of another poll, and the files already
// saved are not fetched again.
func TestExportRefreshesExpiredURLs(t *testing.T) {
	var mu sync.Mutex
	polls := 0
	gets := map[string][]string{} // file → the poll its URL came from, per GET
	mux := http.NewServeMux()
	var base string
	mux.HandleFunc("/$export", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Location", base+"/status")
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("DELETE /status", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted) // the release after the download
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		polls++
		n := polls
		mu.Unlock()
		url := func(f string) string { return fmt.Sprintf("%s/s3/%s?poll=%d", base, f, n) }
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, manifestJSON(t, client.Manifest{TransactionTime: "2026-06-01T12:00:00Z", Request: base + "/$export", RequiresAccessToken: false,
			Output: []client.File{{Type: "Patient", URL: url("1"), Count: ptr(2)}, {Type: "Patient", URL: url("2"), Count: ptr(3)}}}))
	})
	mux.HandleFunc("/s3/{f}", func(w http.ResponseWriter, r *http.Request) {
		f, poll := r.PathValue("f"), r.URL.Query().Get("poll")
		mu.Lock()
		gets[f] = append(gets[f], poll)
		mu.Unlock()
		if r.Header.Get("Authorization") != "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if f == "2" && poll == "1" {
			w.WriteHeader(http.StatusForbidden) // Request has expired
			fmt.Fprint(w, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
			return
		}
		n := map[string]int{"1": 2, "2": 3}[f]
		fmt.Fprint(w, ndjson("Patient", n))
	})
	srv := serve(t, mux)
	base = srv.URL
	c, _ := newClient(t, base)
	c.Auth = client.StaticToken("secret")
	var notes []string
	sum, err := (&client.Export{Client: c, Out: t.TempDir(), Parallel: 1, OnNote: func(s string) { notes = append(notes, s) }}).Run(context.Background())
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if sum.Download.Resources["Patient"] != 5 {
		t.Errorf("Run() saved %d Patients, want 5", sum.Download.Resources["Patient"])
	}
	mu.Lock()
	defer mu.Unlock()
	if polls != 2 {
		t.Errorf("status polled %d times, want 2 (once more for fresh URLs)", polls)
	}
	if got := fmt.Sprint(gets); got != "map[1:[1] 2:[1 2]]" {
		t.Errorf("file GETs by poll = %s, want map[1:[1] 2:[1 2]] (file 1 kept, file 2 with the fresh URL)", got)
	}
	if len(notes) == 0 || !strings.Contains(notes[len(notes)-1], "fresh") {
		t.Errorf("notes = %q, want one about fresh URLs", notes)
	}
}

// TestExportTokenURLsNotRefreshed: with requiresAccessToken true a 403 is
// not an expired URL: no second poll.
func TestExportTokenURLsNotRefreshed(t *testing.T) {
	var mu sync.Mutex
	polls := 0
	mux := http.NewServeMux()
	var base string
	mux.HandleFunc("/$export", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Location", base+"/status")
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		polls++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, manifestJSON(t, client.Manifest{TransactionTime: "t", Request: base + "/$export", RequiresAccessToken: true,
			Output: []client.File{{Type: "Patient", URL: base + "/files/1", Count: ptr(1)}}}))
	})
	mux.HandleFunc("/files/1", func(w http.ResponseWriter, r *http.Request) {
		outcome(w, http.StatusForbidden, "forbidden", "Not yours.")
	})
	srv := serve(t, mux)
	base = srv.URL
	c, _ := newClient(t, base)
	c.Auth = client.StaticToken("secret")
	if _, err := (&client.Export{Client: c, Out: t.TempDir()}).Run(context.Background()); client.StatusCode(err) != http.StatusForbidden {
		t.Errorf("Run() error = %v, want the 403", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if polls != 1 {
		t.Errorf("status polled %d times, want 1", polls)
	}
}
