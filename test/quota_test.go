package test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
)

// holdWorkflow starts no execution until release: the jobs it is asked to
// start stay accepted, so a test decides when an export may finish.
type holdWorkflow struct {
	bulk.Workflow
	mu   sync.Mutex
	held []string
}

func (h *holdWorkflow) Start(ctx context.Context, jobID string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = append(h.held, jobID)
	return nil
}

// release starts the held executions.
func (h *holdWorkflow) release(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range h.held {
		if err := h.Workflow.Start(context.Background(), id); err != nil {
			t.Fatalf("Start(%s): %v", id, err)
		}
	}
	h.held = nil
}

// TestConcurrencyQuotaRace: 20 simultaneous kick-offs of a client whose
// contract allows 4 concurrent exports get exactly 4 202s and 16 429s with
// Retry-After (R39), and a slot is free again once an export finished
// (issue 14 item 2). No export can finish while the others kick off: the
// workflow holds them until every answer is in.
func TestConcurrencyQuotaRace(t *testing.T) {
	s := authServer(t)
	const limit, n = 4, 20
	bs := s.newClientWith("system/*.rs", auth.RegistrationDefaults{Groups: []string{"*"}, MaxConcurrentExports: limit})
	ls := s.as(bs)
	hold := &holdWorkflow{Workflow: s.app.Service.Workflow}
	s.app.Service.Workflow = hold
	tok, err := bs.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	type answer struct {
		status     int
		retryAfter string
		location   string
		body       string
		err        error
	}
	answers := make([]answer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("GET", s.URL+"/$export?_type=Patient", nil)
			req.Header.Set("Accept", "application/fhir+json")
			req.Header.Set("Prefer", "respond-async")
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			answers[i] = answer{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After"), location: res.Header.Get("Content-Location"), body: string(b)}
		}()
	}
	close(start)
	wg.Wait()

	var accepted []string
	refused := 0
	for i, a := range answers {
		switch {
		case a.err != nil:
			t.Fatalf("kick-off %d: %v", i, a.err)
		case a.status == http.StatusAccepted:
			accepted = append(accepted, a.location)
		case a.status == http.StatusTooManyRequests:
			refused++
			if a.retryAfter == "" || !strings.Contains(a.body, "This client already has 4 exports running, its limit; retry when one finishes.") {
				t.Errorf("kick-off %d over the quota = 429 Retry-After %q %s, want Retry-After and the quota's message", i, a.retryAfter, a.body)
			}
		default:
			t.Errorf("kick-off %d = %d %s, want 202 or 429", i, a.status, a.body)
		}
	}
	if len(accepted) != limit || refused != n-limit {
		t.Fatalf("%d simultaneous kick-offs with a quota of %d: %d × 202 and %d × 429, want %d and %d", n, limit, len(accepted), refused, limit, n-limit)
	}
	if got, err := s.app.Service.ActiveJobs(context.Background(), bs.ClientID); err != nil || got != limit {
		t.Errorf("ActiveJobs = %d, %v; want %d", got, err, limit)
	}
	if res := ls.do("GET", "/$export?_type=Patient", nil); res.Status != http.StatusTooManyRequests {
		t.Errorf("kick-off with %d exports held = %d, want 429", limit, res.Status)
	}

	// Let them run: once they are done, the quota admits new exports.
	hold.release(t)
	for _, u := range accepted {
		ls.wait(u)
	}
	s.app.Service.Workflow = hold.Workflow
	ls.wait(ls.kickoff("GET", "/$export?_type=Patient", nil))
}
