package handler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/importer"
)

// Importer loads the files dropped under an S3 prefix (the migration
// scenario): NDJSON, NDJSON.gz and Bundles, as `tranche import` does. Each
// file is downloaded to the function's temporary storage and imported;
// lines that cannot be imported are listed in an error object and nothing
// else is lost. The source object is left in place.
//
// For each object it writes, under Reports, {name}/report.json (Report:
// what was stored, replaced, left unchanged, deleted and refused, and why
// an import failed), {name}/errors.ndjson when lines were refused (one
// JSON object per bad line: file, line, message), and
// {name}/checkpoint.json, after every batch stored: how far the import
// got, so that the next invocation resumes there (importer.Options.Resume).
// What a killed invocation stored after its last checkpoint is read again
// and left as it is (a resource the same as the stored one is not written
// again, bulk.SameContent).
//
// HandleSQS is the deployed trigger (S3 → SQS → Lambda): an import that
// cannot finish before the invocation's deadline stops, checkpoints and
// queues a continuation; a failed one is retried by SQS and reported.
// Handle takes S3's own events, which Lambda retries itself.
type Importer struct {
	Store   importer.Store
	Fetch   func(ctx context.Context, key string) (io.ReadCloser, error)
	Reports bulk.ObjectStore
	// Prefix is the key prefix the trigger watches ("incoming/"); other
	// keys are ignored.
	Prefix string
	// TempDir holds downloads (default os.TempDir(): /tmp on Lambda).
	TempDir string
	Logger  *slog.Logger
	// FHIR is the stack's release: imports of other data are refused.
	FHIR *fhir.Model
	// Now is the wall clock the import stamps from (importer.Options.Now):
	// the store's clock sets each version's meta.lastUpdated at Now or
	// later, as it is stored, keeping the file's value in meta.extension,
	// so an export `_since` the last transactionTime gets it (R55).
	Now func() time.Time

	// Queue is the queue HandleSQS's notifications come from: an import
	// that ran out of time continues in a message sent to it, and a failed
	// one is retried after a delay. HandleSQS needs it.
	Queue ImportQueue
	// MaxReceives is the queue's maxReceiveCount (ImportMaxReceives): the
	// attempt that reaches it is the last before the dead-letter queue,
	// and its failure is reported as final. 0 reports none as final.
	MaxReceives int
	// Margin is how long before the invocation's deadline HandleSQS stops
	// reading, stores what it read and checkpoints (default 2 minutes, at
	// most a quarter of the time an invocation has).
	Margin time.Duration
	// Clock reads the time the deadline is compared with, and the
	// reports' times (default time.Now).
	Clock func() time.Time
	// BatchSize is importer.Options.BatchSize (0: the importer's).
	BatchSize int
}

// defaultImportMargin leaves a stopped import time for its last two
// batches (importer.writeQueue) and its report, throttled writes included.
const defaultImportMargin = 2 * time.Minute

// errContinue is importObject's answer for an import stopped at the
// invocation's deadline: it continues in another invocation.
var errContinue = errors.New("import continues in another invocation")

// errNoProgress fails an invocation that stopped before storing anything,
// so that a notification cannot continue forever.
var errNoProgress = bulk.Errorf(bulk.ETRANSIENT, "The import stored nothing before the invocation's deadline.")

// attempt is which delivery of a notification an invocation handles.
type attempt struct {
	n   int // SQS's ApproximateReceiveCount, 0 when unknown
	max int // the queue's maxReceiveCount, 0 when unknown
}

// final reports whether a failure of this attempt sends the notification
// to the dead-letter queue.
func (a attempt) final() bool { return a.max > 0 && a.n >= a.max }

// object is an S3 object a notification names.
type object struct {
	key string
	// upload names the upload (version, eTag, sequencer): a notification
	// delivered twice names the same one, a new upload another. Empty
	// when the event names none.
	upload string
}

// objectOf reads a notification's record; ok is false for keys outside
// the prefix, which are ignored.
func (im *Importer) objectOf(rec events.S3EventRecord) (object, bool) {
	key, err := url.QueryUnescape(rec.S3.Object.Key)
	if err != nil {
		key = rec.S3.Object.Key
	}
	if !strings.HasPrefix(key, im.Prefix) || strings.HasSuffix(key, "/") {
		im.logger().Info("import: ignoring object outside the import prefix", "key", key)
		return object{}, false
	}
	o := rec.S3.Object
	obj := object{key: key}
	if o.VersionID != "" || o.ETag != "" || o.Sequencer != "" {
		obj.upload = o.VersionID + "/" + o.ETag + "/" + o.Sequencer
	}
	return obj, true
}

// Handle imports the objects of an S3 event. A failed import fails the
// invocation (Lambda retries it) after writing its report; a retry resumes
// from the checkpoint.
func (im *Importer) Handle(ctx context.Context, ev events.S3Event) error {
	for _, rec := range ev.Records {
		obj, ok := im.objectOf(rec)
		if !ok {
			continue
		}
		if err := im.importObject(ctx, obj, attempt{}, nil); err != nil {
			return err
		}
	}
	return nil
}

func (im *Importer) logger() *slog.Logger {
	if im.Logger != nil {
		return im.Logger
	}
	return slog.Default()
}

func (im *Importer) clock() func() time.Time {
	if im.Clock != nil {
		return im.Clock
	}
	return time.Now
}

// importObject imports one object from its checkpoint. It returns
// errContinue when stop ended it, having checkpointed; a failure is
// reported (status retrying or, on the final attempt, failed).
func (im *Importer) importObject(ctx context.Context, obj object, at attempt, stop func() bool) (err error) {
	defer bulk.Wrap(&err, "import %s", obj.key)
	base := reportName(obj.key)
	ck, err := im.loadCheckpoint(ctx, base)
	if err != nil {
		return err
	}
	if ck.Status == StatusCompleted && obj.upload != "" && ck.Upload == obj.upload {
		im.logger().Info("import: this upload is imported already (a notification delivered again)", "key", obj.key)
		return nil
	}
	dir, err := os.MkdirTemp(im.TempDir, "import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The base name keeps the extension the importer reads the format from.
	local := filepath.Join(dir, safeName(path.Base(obj.key)))
	sum, err := im.download(ctx, obj.key, local)
	if err != nil {
		// The checkpoint is this notification's when it names its upload.
		keep := ck.Status == StatusRunning && obj.upload != "" && ck.Upload == obj.upload
		if !keep {
			ck = im.fresh(obj, "")
		}
		ck.Invocations++
		return im.fail(ctx, base, ck, keep, at, err)
	}
	ck = im.resume(ck, obj, sum)
	ck.Invocations++
	if at.final() {
		// Should this attempt die without a word (a timeout, out of
		// memory), the report says it was the last and why the one before
		// failed.
		im.report(ctx, base, ck, ck.report(StatusRunning, at, im.clock()()))
	}
	return im.run(ctx, base, local, ck, at, stop)
}

// fresh is the checkpoint of an import that starts at the beginning.
func (im *Importer) fresh(obj object, sum string) checkpoint {
	return checkpoint{Source: obj.key, Upload: obj.upload, SHA256: sum, Status: StatusRunning, Started: im.clock()().UTC()}
}

// resume is the checkpoint an import of the bytes with SHA-256 sum
// continues from: ck when it is a running import of the same bytes, else a
// fresh one (an import finished before, or of other bytes: a new upload).
func (im *Importer) resume(ck checkpoint, obj object, sum string) checkpoint {
	if ck.Status != StatusRunning || ck.SHA256 != sum || ck.Source != obj.key {
		return im.fresh(obj, sum)
	}
	ck.Upload = obj.upload
	return ck
}

// run imports the downloaded file from ck, checkpointing after each
// batch stored.
func (im *Importer) run(ctx context.Context, base, local string, ck checkpoint, at attempt, stop func() bool) error {
	started := im.clock()()
	var mu sync.Mutex
	last := ck
	opts := importer.Options{
		Now: im.Now, FHIR: im.FHIR, BatchSize: im.BatchSize,
		Resume: ck.Position, Deferred: ck.Deferred, Stop: stop,
		Committed: func(c importer.Commit) {
			next := ck.plus(c)
			mu.Lock()
			last = next
			mu.Unlock()
			// A checkpoint that is not written costs a longer redo, no data.
			if err := im.saveCheckpoint(ctx, base, next); err != nil {
				im.logger().Warn("import: writing the checkpoint failed", "key", ck.Source, "err", err)
			}
		},
	}
	rep, ierr := importer.Import(ctx, im.Store, opts, local)
	mu.Lock()
	state := last
	mu.Unlock()
	im.logFinished(ck.Source, rep, started, ierr)
	switch {
	case errors.Is(ierr, importer.ErrStopped) && state.Position == ck.Position:
		return im.fail(ctx, base, state, true, at, errNoProgress)
	case errors.Is(ierr, importer.ErrStopped):
		im.report(ctx, base, state, state.report(StatusRunning, at, im.clock()()))
		return errContinue
	case ierr != nil:
		return im.fail(ctx, base, state, true, at, ierr)
	}
	done := ck.plus(importer.Commit{Position: importer.Position{File: 1}, Types: rep.Types, Errors: rep.Errors})
	done.Status, done.Failure, done.Unresolved = StatusCompleted, "", ck.Unresolved+rep.Unresolved
	if err := im.writeReport(ctx, base, done, done.report(StatusCompleted, at, im.clock()())); err != nil {
		return err
	}
	return im.saveCheckpoint(ctx, base, done)
}

// fail reports why an attempt failed, in the report and, when save says
// the checkpoint is this import's, in the checkpoint (for the report of a
// later attempt), and returns err.
func (im *Importer) fail(ctx context.Context, base string, ck checkpoint, save bool, at attempt, err error) error {
	msg := bulk.ErrorMessage(err)
	status, reason := StatusRetrying, "The import stopped early and is retried: "+msg
	switch {
	case at.final():
		status = StatusFailed
		reason = fmt.Sprintf("Attempt %d of %d failed, the last: the notification is in the import queue's dead-letter queue. %s", at.n, at.max, msg)
	case at.max > 0:
		reason = fmt.Sprintf("Attempt %d of %d failed and is retried: %s", at.n, at.max, msg)
	}
	ck.Failure = reason
	im.logger().Error("import failed", "key", ck.Source, "attempt", at.n, "final", at.final(), "err", err)
	if save {
		if serr := im.saveCheckpoint(ctx, base, ck); serr != nil {
			im.logger().Warn("import: writing the checkpoint failed", "key", ck.Source, "err", serr)
		}
	}
	im.report(ctx, base, ck, ck.report(status, at, im.clock()()))
	return err
}

// report writes a report whose failure to write is only logged: the
// import's own outcome is what the caller returns.
func (im *Importer) report(ctx context.Context, base string, ck checkpoint, rep Report) {
	if err := im.writeReport(ctx, base, ck, rep); err != nil {
		im.logger().Warn("import: writing the report failed", "key", ck.Source, "err", err)
	}
}

// logFinished logs an invocation's part of an import; the embedded
// metrics count its resources and bad lines (internal/aws/metrics).
func (im *Importer) logFinished(key string, rep importer.Report, started time.Time, err error) {
	var stored int64
	for _, n := range rep.Resources {
		stored += n
	}
	outcome := "completed"
	switch {
	case errors.Is(err, importer.ErrStopped):
		outcome, err = "continues", nil
	case err != nil:
		outcome = "failed"
	}
	im.logger().Info("import finished", "key", key, "outcome", outcome, "resources", stored, "deleted", rep.Deleted,
		"bad_lines", len(rep.Errors), "duration_ms", im.clock()().Sub(started).Milliseconds(), "err", err)
}

// download copies key to local and returns the SHA-256 of its bytes.
func (im *Importer) download(ctx context.Context, key, local string) (string, error) {
	body, err := im.Fetch(ctx, key)
	if err != nil {
		return "", err
	}
	defer body.Close()
	f, err := os.Create(local)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), body); err != nil {
		f.Close()
		return "", bulk.Wrapf(err, bulk.ETRANSIENT, "Downloading %s failed.", key)
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

// reportName is a report folder for an object key: a hash of the key (so
// every key gets its own, and a retry overwrites it) and the key's base
// name made safe for object keys.
func reportName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return fmt.Sprintf("%s-%s", hex.EncodeToString(sum[:8]), safeName(path.Base(key)))
}

// safeName keeps letters, digits, '.', '-' and '_' of a file name, and no
// ".." or temp-file marker, at most 100 bytes.
func safeName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	s := string(b)
	for strings.Contains(s, "..") {
		s = strings.ReplaceAll(s, "..", "_.")
	}
	s = strings.ReplaceAll(s, ".tmp-", "_tmp-")
	if len(s) > 100 {
		s = s[len(s)-100:]
	}
	if s == "" || s == "." {
		s = "data"
	}
	return s
}
