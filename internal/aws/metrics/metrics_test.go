package metrics_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/aws/metrics"
)

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(metrics.Handler(slog.NewJSONHandler(&buf, nil), "Tranche/test"))
	log.With("job", "j1").Info("export completed", "resources", 1200, "items", 3, "duration_ms", 5400)
	log.Info("export failed", "job", "j2")
	log.Info("http", "status", 200)

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3", len(lines))
	}
	var done map[string]any
	if err := json.Unmarshal(lines[0], &done); err != nil {
		t.Fatal(err)
	}
	aws := done["_aws"].(map[string]any)
	cw := aws["CloudWatchMetrics"].([]any)[0].(map[string]any)
	want := []any{
		map[string]any{"Name": "jobs_completed", "Unit": "Count"},
		map[string]any{"Name": "resources", "Unit": "Count"},
		map[string]any{"Name": "items", "Unit": "Count"},
		map[string]any{"Name": "duration_ms", "Unit": "Milliseconds"},
	}
	if diff := cmp.Diff(want, cw["Metrics"]); diff != "" {
		t.Errorf("metrics mismatch (-want +got):\n%s", diff)
	}
	if cw["Namespace"] != "Tranche/test" || done["jobs_completed"] != 1.0 || done["resources"] != 1200.0 || done["job"] != "j1" {
		t.Errorf("line = %s: want namespace, counter and the line's own values at top level", lines[0])
	}
	var failed map[string]any
	json.Unmarshal(lines[1], &failed)
	if failed["jobs_failed"] != 1.0 || failed["_aws"] == nil {
		t.Errorf("failed line = %s, want jobs_failed 1 with EMF", lines[1])
	}
	var plain map[string]any
	json.Unmarshal(lines[2], &plain)
	if _, ok := plain["_aws"]; ok {
		t.Errorf("plain line = %s, want no EMF", lines[2])
	}
}
