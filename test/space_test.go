package test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/api"
	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/local/fsobj"
)

// TestOutputBudget: a server whose output budget (--max-output-bytes) is
// used up by an unexpired export refuses the next kick-off with 429,
// Retry-After and an OperationOutcome (requirements 2, R6, R39), after
// purging the expired exports that held space too. Releasing the holder
// (DELETE, R68, R69) frees its space; an export then crossing the budget
// fails with an OperationOutcome that says it ran out of space (R49).
func TestOutputBudget(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.Open = true // one owner for the jobs of both server runs
	importInto(t, cfg, importTime, generated(t, 6))
	s := startServer(t, cfg)
	held := s.kickoff("GET", "/$export?_type=Patient", nil)
	s.wait(held)
	held = strings.TrimPrefix(held, s.URL) // the next server listens elsewhere
	s.stop()

	// An expired export with a file, as a stopped server leaves it until
	// its purge.
	db, err := app.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	expired := &bulk.Job{ID: "expired0expired0expired0expired0", ClientID: api.OpenClientID, Status: bulk.StatusCompleted,
		Request: bulk.ExportRequest{Level: bulk.LevelSystem}, TransactionTime: now.Add(-2 * time.Hour),
		CreatedAt: now.Add(-2 * time.Hour), UpdatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}
	if err := db.Jobs().CreateJob(context.Background(), expired); err != nil {
		t.Fatal(err)
	}
	db.Close()
	files := filepath.Join(cfg.DataDir, "files")
	objs, err := fsobj.New(files)
	if err != nil {
		t.Fatal(err)
	}
	w, err := objs.Create(context.Background(), expired.ID+"/Patient.00000.000.000.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, `{"resourceType":"Patient","id":"old"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	cfg.MaxOutputBytes = 1
	s = startServer(t, cfg)
	res := s.do("GET", "/$export?_type=Patient", nil, "Accept", "application/fhir+json", "Prefer", "respond-async")
	if res.Status != http.StatusTooManyRequests {
		t.Fatalf("kick-off with the budget used up = %d %s, want 429", res.Status, res.Body)
	}
	// The held export expires in a day: the wait is capped at 5 minutes.
	if ra := res.Header.Get("Retry-After"); ra != "300" {
		t.Errorf("Retry-After = %q, want 300", ra)
	}
	if issue := outcomeIssue(t, res); issue.Code != "throttled" || !strings.Contains(issue.Details.Text, "no space left for export files") {
		t.Errorf("kick-off OperationOutcome issue = %+v, want throttled, saying why", issue)
	}
	if _, err := os.Stat(filepath.Join(files, expired.ID)); !os.IsNotExist(err) {
		t.Errorf("the expired export's files were not purged first: %v", err)
	}
	if res := s.do("GET", held, nil); res.Status != http.StatusOK {
		t.Errorf("the unexpired export = %d, want 200: it is kept", res.Status)
	}

	if res := s.do("DELETE", held, nil); res.Status != http.StatusAccepted {
		t.Fatalf("DELETE = %d %s, want 202 (R68)", res.Status, res.Body)
	}
	if res := s.do("GET", held, nil); res.Status != http.StatusNotFound {
		t.Errorf("status after DELETE = %d, want 404 (R69)", res.Status)
	}
	over := s.kickoff("GET", "/$export?_type=Patient", nil)
	for deadline := time.Now().Add(time.Minute); ; {
		res = s.do("GET", over, nil, "Accept", "application/fhir+json")
		if res.Status != http.StatusAccepted || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	if res.Status != http.StatusInternalServerError {
		t.Fatalf("status of an export past the budget = %d %s, want 500", res.Status, res.Body)
	}
	if issue := outcomeIssue(t, res); issue.Code != "processing" || issue.Details.Text != export.NoSpaceFailure {
		t.Errorf("failed export's issue = %+v, want processing with %q", issue, export.NoSpaceFailure)
	}
	if left, _ := filepath.Glob(filepath.Join(files, "*", "*.ndjson")); len(left) != 0 {
		t.Errorf("files left after the failure: %v", left)
	}
}

type issue struct {
	Severity, Code string
	Details        struct{ Text string }
}

// outcomeIssue decodes the one issue of an OperationOutcome response.
func outcomeIssue(t *testing.T, res response) issue {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type = %q, want application/fhir+json", ct)
	}
	var oo struct {
		ResourceType string
		Issue        []issue
	}
	if err := json.Unmarshal(res.Body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
		t.Fatalf("not an OperationOutcome with one issue: %s", res.Body)
	}
	return oo.Issue[0]
}
