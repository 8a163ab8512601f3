package handler

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/importer"
)

// The states of an object's import, in report.json and checkpoint.json.
const (
	// StatusRunning: the import is under way or continues in another
	// invocation (a continuation is queued). A report left running while
	// its notification is in the dead-letter queue means the last attempt
	// died without reporting (a timeout, out of memory): see the log.
	StatusRunning = "running"
	// StatusCompleted: every line was read; what could be stored is.
	StatusCompleted = "completed"
	// StatusRetrying: an attempt failed (Failure says why) and the
	// notification is delivered again.
	StatusRetrying = "retrying"
	// StatusFailed: the last attempt failed; the notification is in the
	// dead-letter queue and Failure says why.
	StatusFailed = "failed"
)

// maxListedErrors bounds the bad lines a report lists (errors.ndjson) and
// a checkpoint carries, so that a file of garbage cannot make every
// checkpoint of its import megabytes: the report counts them all.
const maxListedErrors = 10000

// checkpoint is {name}/checkpoint.json: how far the import of one upload
// of an object is stored, so that the next invocation resumes there
// (importer.Options.Resume), with what the invocations before it did.
type checkpoint struct {
	Source string `json:"source"`
	// Upload names the S3 upload (version, eTag, sequencer) whose
	// notification is being imported, SHA256 the bytes read: a checkpoint
	// applies to the same bytes only.
	Upload      string    `json:"upload,omitempty"`
	SHA256      string    `json:"sha256"`
	Status      string    `json:"status"`
	Started     time.Time `json:"started"`
	Invocations int       `json:"invocations"`
	// Position is where the next invocation resumes; Types, ErrorCount,
	// Errors and Deferred are what the input before it did.
	Position   importer.Position          `json:"position"`
	Types      map[string]importer.Counts `json:"types"`
	ErrorCount int                        `json:"errorCount"`
	Errors     []importer.LineError       `json:"errors,omitempty"`
	Deferred   []bulk.Ref                 `json:"deferred,omitempty"`
	Unresolved int64                      `json:"unresolved"`
	// Failure is the last failed attempt's reason, client-safe.
	Failure string `json:"failure,omitempty"`
}

// plus is ck with this invocation's commit c added.
func (ck checkpoint) plus(c importer.Commit) checkpoint {
	out := ck
	out.Position, out.Deferred = c.Position, c.Deferred
	out.Types = addCounts(ck.Types, c.Types)
	out.ErrorCount = ck.ErrorCount + len(c.Errors)
	out.Errors = slices.Clip(ck.Errors)
	if n := maxListedErrors - len(out.Errors); n > 0 {
		out.Errors = append(out.Errors, c.Errors[:min(n, len(c.Errors))]...)
	}
	return out
}

func addCounts(a, b map[string]importer.Counts) map[string]importer.Counts {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]importer.Counts{}
	}
	for typ, c := range b {
		s := out[typ]
		s.New += c.New
		s.Replaced += c.Replaced
		s.Unchanged += c.Unchanged
		s.Deleted += c.Deleted
		out[typ] = s
	}
	return out
}

// Report is {name}/report.json: what the import of an object did, so far
// while it runs, and why it failed when it did.
type Report struct {
	Source string `json:"source"`
	// Status is StatusRunning, StatusCompleted, StatusRetrying or
	// StatusFailed.
	Status string `json:"status"`
	// Attempt is the notification's delivery (SQS's receive count) and
	// MaxAttempts the last before the dead-letter queue; 0 when unknown.
	Attempt     int `json:"attempt,omitempty"`
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// Invocations counts the Lambda invocations the import took.
	Invocations int       `json:"invocations"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"` // when this report was written
	// Position is how far the input is stored (importer.Position).
	Position importer.Position `json:"position"`
	// Resources counts the resources imported per type: stored new,
	// replaced or unchanged; Types says which, per type.
	Resources map[string]int64           `json:"resources"`
	Types     map[string]importer.Counts `json:"types"`
	// New, Replaced, Unchanged and Deleted total Types; Refused counts
	// the lines and entries refused (Errors is the same number, the name
	// older readers know), ErrorsListed those errors.ndjson lists.
	New          int64 `json:"new"`
	Replaced     int64 `json:"replaced"`
	Unchanged    int64 `json:"unchanged"`
	Deleted      int64 `json:"deleted"`
	Refused      int   `json:"refused"`
	Errors       int   `json:"errors"`
	ErrorsListed int   `json:"errorsListed"`
	Unresolved   int64 `json:"unresolved"`
	// Failure says, client-safe, why the import stopped early.
	Failure string `json:"failure,omitempty"`
}

// report is what ck says, written at now.
func (ck checkpoint) report(status string, at attempt, now time.Time) Report {
	r := Report{
		Source: ck.Source, Status: status, Attempt: at.n, MaxAttempts: at.max,
		Invocations: ck.Invocations, Started: ck.Started, Finished: now, Position: ck.Position,
		Resources: map[string]int64{}, Types: ck.Types,
		Refused: ck.ErrorCount, Errors: ck.ErrorCount, ErrorsListed: len(ck.Errors),
		Unresolved: ck.Unresolved, Failure: ck.Failure,
	}
	if r.Types == nil {
		r.Types = map[string]importer.Counts{}
	}
	for typ, c := range r.Types {
		if n := c.New + c.Replaced + c.Unchanged; n > 0 {
			r.Resources[typ] = n
		}
		r.New, r.Replaced, r.Unchanged, r.Deleted = r.New+c.New, r.Replaced+c.Replaced, r.Unchanged+c.Unchanged, r.Deleted+c.Deleted
	}
	return r
}

// loadCheckpoint reads {base}/checkpoint.json; a missing one is the zero
// checkpoint.
func (im *Importer) loadCheckpoint(ctx context.Context, base string) (checkpoint, error) {
	var ck checkpoint
	o, err := im.Reports.Open(ctx, base+"/checkpoint.json")
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return ck, nil
	} else if err != nil {
		return ck, err
	}
	defer o.Close()
	raw, err := io.ReadAll(o)
	if err != nil {
		return ck, bulk.Wrapf(err, bulk.ETRANSIENT, "Reading the import's checkpoint failed.")
	}
	if err := json.Unmarshal(raw, &ck); err != nil {
		// Not ours to trust: the import starts again, which is safe.
		im.logger().Warn("import: ignoring an unreadable checkpoint", "report", base, "err", err)
		return checkpoint{}, nil
	}
	return ck, nil
}

func (im *Importer) saveCheckpoint(ctx context.Context, base string, ck checkpoint) error {
	doc, _ := json.Marshal(ck)
	return im.put(ctx, base+"/checkpoint.json", doc)
}

// writeReport writes {base}/errors.ndjson, when lines were refused, and
// {base}/report.json.
func (im *Importer) writeReport(ctx context.Context, base string, ck checkpoint, rep Report) error {
	if len(ck.Errors) > 0 {
		if err := im.writeErrors(ctx, base+"/errors.ndjson", ck.Source, ck.Errors); err != nil {
			return err
		}
	}
	doc, _ := json.MarshalIndent(rep, "", "  ")
	return im.put(ctx, base+"/report.json", doc)
}

func (im *Importer) writeErrors(ctx context.Context, name, source string, errs []importer.LineError) error {
	w, err := im.Reports.Create(ctx, name)
	if err != nil {
		return err
	}
	defer w.Abort()
	enc := json.NewEncoder(w)
	for _, e := range errs {
		if err := enc.Encode(map[string]any{"file": source, "line": e.Line, "message": e.Message}); err != nil {
			return err
		}
	}
	return w.Close()
}

func (im *Importer) put(ctx context.Context, name string, data []byte) error {
	w, err := im.Reports.Create(ctx, name)
	if err != nil {
		return err
	}
	defer w.Abort()
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Close()
}
