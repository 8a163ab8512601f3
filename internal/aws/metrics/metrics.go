// Package metrics turns the export's log lines into CloudWatch metrics with
// the embedded metric format (EMF): a slog handler adds an "_aws" member to
// the lines that report an export event, naming which of the line's own
// attributes are metrics. CloudWatch Logs extracts them; no API call, no
// agent. Operators get, per stack: jobs accepted, completed and failed,
// resources and duration per job, resources and files per item checkpoint.
package metrics

import (
	"context"
	"log/slog"
	"os"
	"time"
)

// Namespace is the CloudWatch namespace: TRANCHE_METRICS_NAMESPACE, or
// "Tranche".
func Namespace() string {
	if ns := os.Getenv("TRANCHE_METRICS_NAMESPACE"); ns != "" {
		return ns
	}
	return "Tranche"
}

// metric names an attribute of a log line and its CloudWatch unit.
type metric struct{ attr, unit string }

// events maps the export's log messages to the metrics they carry. Counters
// that a line implies (one job failed) are added as attributes.
var events = map[string]struct {
	add     string // attribute set to 1 on the line, a counter
	metrics []metric
}{
	"export accepted":               {add: "jobs_accepted"},
	"export completed":              {add: "jobs_completed", metrics: []metric{{"resources", "Count"}, {"items", "Count"}, {"duration_ms", "Milliseconds"}}},
	"export failed":                 {add: "jobs_failed"},
	"export item checkpoint":        {add: "item_checkpoints", metrics: []metric{{"resources", "Count"}, {"files", "Count"}, {"elapsed_ms", "Milliseconds"}}},
	"import finished":               {add: "imports", metrics: []metric{{"resources", "Count"}, {"bad_lines", "Count"}, {"duration_ms", "Milliseconds"}}},
	"expired export purged":         {add: "jobs_purged"},
	"workflow start failed":         {add: "workflow_start_failures"},
	"resuming export after restart": {add: "jobs_resumed"},
}

// Handler wraps next (a JSON handler writing to stdout) so that the lines
// of export events carry EMF metadata in namespace. Other lines pass as
// they are.
func Handler(next slog.Handler, namespace string) slog.Handler {
	return &handler{next: next, namespace: namespace}
}

type handler struct {
	next      slog.Handler
	namespace string
	grouped   bool // WithGroup was called: attributes are no longer top level
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	ev, ok := events[r.Message]
	if !ok || h.grouped {
		return h.next.Handle(ctx, r)
	}
	have := map[string]bool{}
	r.Attrs(func(a slog.Attr) bool {
		have[a.Key] = true
		return true
	})
	defs := []map[string]string{{"Name": ev.add, "Unit": "Count"}}
	for _, m := range ev.metrics {
		if have[m.attr] {
			defs = append(defs, map[string]string{"Name": m.attr, "Unit": m.unit})
		}
	}
	r = r.Clone()
	ts := r.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	r.AddAttrs(
		slog.Int(ev.add, 1),
		slog.Any("_aws", map[string]any{
			"Timestamp": ts.UnixMilli(),
			"CloudWatchMetrics": []map[string]any{{
				"Namespace":  h.namespace,
				"Dimensions": [][]string{{}},
				"Metrics":    defs,
			}},
		}),
	)
	return h.next.Handle(ctx, r)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{next: h.next.WithAttrs(as), namespace: h.namespace, grouped: h.grouped}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name), namespace: h.namespace, grouped: true}
}
