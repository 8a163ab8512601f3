package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/client"
)

func done(t *testing.T) http.HandlerFunc {
	body := manifestJSON(t, client.Manifest{TransactionTime: "2026-06-01T12:00:00Z", Request: "http://x/$export", Output: []client.File{{Type: "Patient", URL: "http://x/f/1", Count: ptr(2)}}})
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Expires", "Mon, 01 Jun 2026 13:00:00 GMT")
		_, _ = io.WriteString(w, body)
	}
}

func accepted(retryAfter func() string, progress string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != nil {
			w.Header().Set("Retry-After", retryAfter())
		}
		w.Header().Set("X-Progress", progress)
		w.WriteHeader(http.StatusAccepted)
	}
}

func fixed(s string) func() string { return func() string { return s } }

func TestPoll(t *testing.T) {
	var clk *clock
	httpDate := func() string { return clk.Now().Add(7 * time.Second).Format(http.TimeFormat) }
	for _, tc := range []struct {
		name       string
		steps      func() []http.HandlerFunc
		wantSleeps []time.Duration
		wantPolls  int
	}{
		{
			name: "Retry-After seconds and HTTP-date",
			steps: func() []http.HandlerFunc {
				return []http.HandlerFunc{accepted(fixed("3"), "10%"), accepted(httpDate, "60%"), done(t)}
			},
			wantSleeps: []time.Duration{3 * time.Second, 7 * time.Second},
			wantPolls:  3,
		},
		{
			name: "exponential backoff without Retry-After",
			steps: func() []http.HandlerFunc {
				return []http.HandlerFunc{accepted(nil, "a"), accepted(nil, "b"), accepted(nil, "c"), done(t)}
			},
			wantSleeps: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second},
			wantPolls:  4,
		},
		{
			name: "429 then success",
			steps: func() []http.HandlerFunc {
				return []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Retry-After", "5")
					outcome(w, http.StatusTooManyRequests, "throttled", "Slow down.")
				}, done(t)}
			},
			wantSleeps: []time.Duration{5 * time.Second},
			wantPolls:  2,
		},
		{
			name: "transient OperationOutcome and a bare 503, then success",
			steps: func() []http.HandlerFunc {
				return []http.HandlerFunc{
					func(w http.ResponseWriter, r *http.Request) {
						outcome(w, http.StatusInternalServerError, "transient", "Status store busy.")
					},
					func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) },
					done(t),
				}
			},
			wantSleeps: []time.Duration{time.Second, 2 * time.Second},
			wantPolls:  3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := &script{steps: tc.steps()}
			srv := serve(t, sc)
			var c *client.Client
			c, clk = newClient(t, srv.URL)
			var seen []string
			m, err := c.Poll(context.Background(), srv.URL+"/status/1", func(st client.PollStatus) { seen = append(seen, st.Progress) })
			if err != nil {
				t.Fatalf("Poll() error = %v", err)
			}
			if m.TransactionTime != "2026-06-01T12:00:00Z" || len(m.Output) != 1 || *m.Output[0].Count != 2 || m.Expires.IsZero() {
				t.Errorf("Poll() manifest = %+v", m)
			}
			if diff := cmp.Diff(tc.wantSleeps, clk.Sleeps()); diff != "" {
				t.Errorf("Poll() waits (-want +got):\n%s", diff)
			}
			if got := sc.count(); got != tc.wantPolls {
				t.Errorf("Poll() sent %d requests, want %d", got, tc.wantPolls)
			}
			if len(seen) != tc.wantPolls-1 {
				t.Errorf("onProgress called %d times, want %d", len(seen), tc.wantPolls-1)
			}
			for _, r := range sc.reqs {
				if r.Header.Get("Accept") != "application/json" {
					t.Errorf("status request Accept = %q, want application/json", r.Header.Get("Accept"))
				}
			}
		})
	}
}

func TestPollFailures(t *testing.T) {
	t.Run("non-transient failure carries the outcome text", func(t *testing.T) {
		sc := &script{steps: []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
			outcome(w, http.StatusInternalServerError, "processing", "Export failed: the Observation index is corrupt.")
		}}}
		srv := serve(t, sc)
		c, _ := newClient(t, srv.URL)
		_, err := c.Poll(context.Background(), srv.URL+"/s", nil)
		if err == nil || !strings.Contains(err.Error(), "the Observation index is corrupt") {
			t.Fatalf("Poll() error = %v, want the OperationOutcome text", err)
		}
		if client.StatusCode(err) != 500 || sc.count() != 1 {
			t.Errorf("Poll() status %d after %d requests, want 500 after 1", client.StatusCode(err), sc.count())
		}
	})
	t.Run("404 for a deleted job", func(t *testing.T) {
		sc := &script{steps: []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
			outcome(w, http.StatusNotFound, "not-found", "No such export.")
		}}}
		srv := serve(t, sc)
		c, _ := newClient(t, srv.URL)
		if _, err := c.Poll(context.Background(), srv.URL+"/s", nil); client.StatusCode(err) != 404 || !strings.Contains(err.Error(), "No such export.") {
			t.Fatalf("Poll() error = %v, want 404 with the text", err)
		}
	})
	t.Run("gives up after MaxRetries transient failures", func(t *testing.T) {
		sc := &script{steps: []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }}}
		srv := serve(t, sc)
		c, clk := newClient(t, srv.URL)
		c.MaxRetries = 3
		_, err := c.Poll(context.Background(), srv.URL+"/s", nil)
		if err == nil || client.StatusCode(err) != http.StatusBadGateway {
			t.Fatalf("Poll() error = %v, want a 502 *Error", err)
		}
		if sc.count() != 4 || len(clk.Sleeps()) != 3 {
			t.Errorf("Poll() sent %d requests with %d waits, want 4 and 3", sc.count(), len(clk.Sleeps()))
		}
	})
	t.Run("context cancelled while waiting", func(t *testing.T) {
		srv := serve(t, accepted(fixed("1"), "x"))
		c, _ := newClient(t, srv.URL)
		ctx, cancel := context.WithCancel(context.Background())
		_, err := c.Poll(ctx, srv.URL+"/s", func(client.PollStatus) { cancel() })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Poll() error = %v, want context.Canceled", err)
		}
	})
}

func TestKickoff(t *testing.T) {
	type seen struct {
		Method, Path, Query, Accept, Prefer, ContentType string
		Body                                             map[string]any
	}
	var got seen
	sc := &script{steps: []http.HandlerFunc{
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "2")
			outcome(w, http.StatusTooManyRequests, "throttled", "One export at a time.")
		},
		func(w http.ResponseWriter, r *http.Request) {
			got = seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Accept: r.Header.Get("Accept"), Prefer: r.Header.Get("Prefer"), ContentType: r.Header.Get("Content-Type")}
			if b, _ := io.ReadAll(r.Body); len(b) > 0 {
				_ = json.Unmarshal(b, &got.Body)
			}
			w.Header().Set("Content-Location", "/bulkstatus/42") // relative: resolved anyway
			w.WriteHeader(http.StatusAccepted)
		},
	}}
	srv := serve(t, sc)
	c, clk := newClient(t, srv.URL+"/fhir/")
	u, err := c.Kickoff(context.Background(), client.Request{Level: client.LevelGroup, GroupID: "g 1", Types: []string{"Patient", "Observation"},
		Since: "2026-01-01T00:00:00Z", TypeFilters: []string{"Observation?status=final"}})
	if err != nil {
		t.Fatalf("Kickoff() error = %v", err)
	}
	if u != srv.URL+"/bulkstatus/42" {
		t.Errorf("Kickoff() = %q, want the absolute status URL", u)
	}
	want := seen{Method: "GET", Path: "/fhir/Group/g 1/$export", Query: "_since=2026-01-01T00%3A00%3A00Z&_type=Patient%2CObservation&_typeFilter=Observation%3Fstatus%3Dfinal",
		Accept: "application/fhir+json", Prefer: "respond-async"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET kick-off (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]time.Duration{2 * time.Second}, clk.Sleeps()); diff != "" {
		t.Errorf("Kickoff() waits after 429 (-want +got):\n%s", diff)
	}

	sc.mu.Lock()
	sc.n = 1 // skip the 429
	sc.mu.Unlock()
	if _, err := c.Kickoff(context.Background(), client.Request{Level: client.LevelPatient, Types: []string{"Patient"}, Patients: []string{"p1"}, Post: true}); err != nil {
		t.Fatalf("POST Kickoff() error = %v", err)
	}
	wantBody := map[string]any{"resourceType": "Parameters", "parameter": []any{
		map[string]any{"name": "_type", "valueString": "Patient"},
		map[string]any{"name": "patient", "valueReference": map[string]any{"reference": "Patient/p1"}},
	}}
	if got.Method != "POST" || got.Path != "/fhir/Patient/$export" || got.ContentType != "application/fhir+json" {
		t.Errorf("POST kick-off = %+v", got)
	}
	if diff := cmp.Diff(wantBody, got.Body); diff != "" {
		t.Errorf("POST Parameters (-want +got):\n%s", diff)
	}

	bad := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outcome(w, http.StatusBadRequest, "not-supported", "_typeFilter is not supported.")
	}))
	c.Base = bad.URL
	if _, err := c.Kickoff(context.Background(), client.Request{TypeFilters: []string{"Observation?x=y"}}); client.StatusCode(err) != 400 || !strings.Contains(err.Error(), "_typeFilter is not supported.") {
		t.Errorf("Kickoff() error = %v, want 400 with the outcome text", err)
	}
	if _, err := c.Kickoff(context.Background(), client.Request{Patients: []string{"p"}}); err == nil {
		t.Errorf("Kickoff(GET with patient) succeeded, want an error")
	}

	// A network error is not retried: the kick-off may have started a job,
	// and a wrong URL should fail at once.
	down := serve(t, http.NotFoundHandler())
	down.Close()
	c, clk = newClient(t, down.URL)
	if _, err := c.Kickoff(context.Background(), client.Request{}); err == nil || len(clk.Sleeps()) != 0 {
		t.Errorf("Kickoff(unreachable) = %v after %d waits, want an error at once", err, len(clk.Sleeps()))
	}
}

func TestCancel(t *testing.T) {
	var method string
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method = r.Method
		outcome(w, http.StatusAccepted, "informational", "Cancelled.")
	}))
	c, _ := newClient(t, srv.URL)
	if err := c.Cancel(context.Background(), srv.URL+"/jobs/1"); err != nil || method != "DELETE" {
		t.Fatalf("Cancel() = %v with method %q, want nil and DELETE", err, method)
	}
}
