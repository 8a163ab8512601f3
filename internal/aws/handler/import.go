package handler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
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
// For each file it writes, under Reports, {name}/report.json (what was
// stored) and, when lines were skipped, {name}/errors.ndjson (one JSON
// object per bad line: file, line, message). A store error fails the
// invocation so Lambda retries it; an import is idempotent (a re-imported
// resource replaces itself).
type Importer struct {
	Store   bulk.ResourceStore
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
}

// Report is report.json.
type Report struct {
	Source     string           `json:"source"`
	Started    time.Time        `json:"started"`
	Finished   time.Time        `json:"finished"`
	Resources  map[string]int64 `json:"resources"`
	Deleted    int64            `json:"deleted"`
	Errors     int              `json:"errors"`
	Unresolved int64            `json:"unresolved"`
	// Failure is set when the import stopped early (it is retried).
	Failure string `json:"failure,omitempty"`
}

// Handle imports the objects of an S3 event.
func (im *Importer) Handle(ctx context.Context, ev events.S3Event) error {
	for _, rec := range ev.Records {
		key, err := url.QueryUnescape(rec.S3.Object.Key)
		if err != nil {
			key = rec.S3.Object.Key
		}
		if !strings.HasPrefix(key, im.Prefix) || strings.HasSuffix(key, "/") {
			im.logger().Info("import: ignoring object outside the import prefix", "key", key)
			continue
		}
		if err := im.importObject(ctx, key); err != nil {
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

func (im *Importer) importObject(ctx context.Context, key string) (err error) {
	defer bulk.Wrap(&err, "import %s", key)
	log := im.logger().With("key", key)
	started := time.Now().UTC()
	dir, err := os.MkdirTemp(im.TempDir, "import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The base name keeps the extension the importer reads the format from.
	local := filepath.Join(dir, safeName(path.Base(key)))
	if err := im.download(ctx, key, local); err != nil {
		return err
	}
	rep, ierr := importer.Import(ctx, im.Store, importer.Options{Now: im.Now, FHIR: im.FHIR}, local)
	report := Report{
		Source: key, Started: started, Finished: time.Now().UTC(),
		Resources: rep.Resources, Deleted: rep.Deleted, Errors: len(rep.Errors), Unresolved: rep.Unresolved,
	}
	if ierr != nil {
		report.Failure = "The import stopped early and is retried: " + bulk.ErrorMessage(ierr)
	}
	base := reportName(key)
	if len(rep.Errors) > 0 {
		if err := im.writeErrors(ctx, base+"/errors.ndjson", key, rep.Errors); err != nil {
			return err
		}
	}
	doc, _ := json.MarshalIndent(report, "", "  ")
	if err := im.put(ctx, base+"/report.json", doc); err != nil {
		return err
	}
	var stored int64
	for _, n := range rep.Resources {
		stored += n
	}
	log.Info("import finished", "resources", stored, "deleted", rep.Deleted, "bad_lines", len(rep.Errors),
		"duration_ms", time.Since(started).Milliseconds(), "err", ierr)
	return ierr
}

func (im *Importer) download(ctx context.Context, key, local string) error {
	body, err := im.Fetch(ctx, key)
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := os.Create(local)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		return bulk.Wrapf(err, bulk.ETRANSIENT, "Downloading %s failed.", key)
	}
	return f.Close()
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
