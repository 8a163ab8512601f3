// Package importer loads FHIR data (NDJSON files, plain or gzipped,
// Bundles, and Bulk Data exports by their manifest.json) into a
// bulk.ResourceStore: `tranche import`.
//
// Each resource is stored as compact JSON with meta.lastUpdated set by the
// store's clock as it is stored (see Options.KeepLastUpdated), with its
// Patient compartment and, for Groups, its member Patients. A resource the
// same as the one stored is not stored again (bulk.ResourceSink.Put), so
// importing the same data twice changes nothing, and an import cut short
// is finished by running it again, or resumed where its last stored write
// left it (Options.Resume, Options.Committed). Bad lines are reported and
// skipped; a store error stops the import. `urn:uuid:` references are
// resolved to Type/id in a last pass, so that a resource may reference one
// imported later in the same run.
package importer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
)

// Options configure an import.
type Options struct {
	// Now returns the import's wall clock: the clock stamps each write at
	// Now or later. With KeepLastUpdated, resources without
	// meta.lastUpdated get, and deletions are recorded at, its reading at
	// the start. Default time.Now.
	Now func() time.Time
	// KeepLastUpdated keeps each resource's own meta.lastUpdated, as when
	// restoring a backup as it was. By default Tranche, like any FHIR
	// server, sets meta.lastUpdated when it stores a version, from the
	// store's clock (Clock), and keeps a source meta.lastUpdated in
	// meta.extension (SourceLastUpdatedURL): then a chain of exports each
	// `_since` the previous transactionTime returns every version exactly
	// once, imports in flight or not (R12, R55). A kept lastUpdated may lie
	// at or before a transactionTime given out already: exports `_since`
	// that time do not return the resource. A resource the same as the
	// stored one but for meta.lastUpdated is left as it is, stored
	// lastUpdated and all (bulk.ResourceSink.Put).
	KeepLastUpdated bool
	// Clock stamps the versions stored: default the store's, when it is a
	// bulk.Clock (every Tranche store is), else a clock of this import's.
	Clock bulk.Clock
	// BatchSize is the number of resources per store Put. Default 10000:
	// the embedded store writes far fewer pages per resource in large batches.
	BatchSize int
	// FHIR is the release to import as (nil: the store's, or for a store
	// that records none, the data's; see version.go). Data of another
	// release is refused before anything is written.
	FHIR *fhir.Model
	// Progress, if not nil, is called once the files are listed, after
	// each batch and each file, and at the end, on Import's goroutine.
	Progress func(p Progress)
	// HTTPClient fetches the files a manifest lists that are not next to
	// it (default http.DefaultClient). It sends no credentials of its own.
	HTTPClient *http.Client

	// Resume continues an import that Stop ended, or that was killed,
	// where its last Commit said: the input before it is not read again
	// (its errors are not reported again either). Zero starts at the
	// beginning. The files must be the same, in the same order.
	Resume Position
	// Deferred are the resources the import before Resume stored with
	// `urn:uuid:` references left in them (Commit.Deferred), resolved in
	// the last pass with this run's.
	Deferred []bulk.Ref
	// Stop, if set, is asked before each unit of input (a line of NDJSON,
	// an entry of a Bundle file): once it returns true the import stores
	// what it has read and returns ErrStopped, without the last pass.
	Stop func() bool
	// Committed, if set, is called on the writer's goroutine each time a
	// write is stored, and once more, on Import's, when Stop ends the
	// import: an import stopped or killed after it can Resume at
	// c.Position with Deferred c.Deferred. c's slices are prefixes of
	// lists the import only appends to: they may be kept, not modified.
	// The call delays the next write.
	Committed func(c Commit)
}

// ErrStopped is Import's error when Options.Stop ended it; the last
// Options.Committed call says where to resume.
var ErrStopped = errors.New("importer: stopped before the end of the input")

// Position is how far an import's input is stored: the files before File
// (in the order Import reads them) and the first Unit units of file File.
// A unit is a line of an NDJSON file, or an entry of a Bundle file (a
// .json document) in the order the entries apply: a transaction's DELETEs
// first. Lines of a file a fetched manifest lists are not units: such a
// file resumes from its start.
type Position struct {
	File int   `json:"file"`
	Unit int64 `json:"unit"`
}

// Commit is how far an import has stored its input, for Options.Committed.
type Commit struct {
	// Position is where to resume: everything before it is stored.
	Position Position
	// Types counts what this run's stored writes did (Report.Types).
	Types map[string]Counts
	// Errors are this run's lines and files skipped for a fault, before
	// Position; those before Options.Resume are not in them.
	Errors []LineError
	// Deferred are the resources before Position stored with `urn:uuid:`
	// references left in them, Options.Deferred included.
	Deferred []bulk.Ref
}

// Progress is how far an import has got.
type Progress struct {
	Files      int `json:"files"`      // files read to the end
	TotalFiles int `json:"totalFiles"` // files to read
	// BytesRead counts bytes read from files, compressed as stored.
	BytesRead int64 `json:"bytesRead"`
	// TotalBytes is the size of the files to read, known up front
	// (TotalBytes): short of remote files whose size their manifest does
	// not give.
	TotalBytes int64 `json:"totalBytes"`
	// Resources counts the resources stored (committed), new, replaced or
	// unchanged.
	Resources int64 `json:"resources"`
	// TotalResources is the resources to import when every file comes
	// from a manifest that counts them, else 0.
	TotalResources int64 `json:"totalResources,omitempty"`
	// File is the file being read, if any.
	File string `json:"file,omitempty"`
}

// LineError is a line that could not be imported. For a Bundle entry,
// Message names the entry and Line is where the entry starts in a
// pretty-printed file (the Bundle's line in NDJSON). Line 0 is about the
// whole file, which was skipped.
type LineError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"` // 1-based
	Message string `json:"message"`
}

// SkippedFile is a file that was not imported on purpose, with why.
type SkippedFile struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// Counts are what an import did with the resources of one type.
type Counts struct {
	// New counts resources that were not stored (or were deleted).
	New int64 `json:"new"`
	// Replaced counts new versions of stored resources, a resource listed
	// twice counting twice.
	Replaced int64 `json:"replaced"`
	// Unchanged counts resources stored already as they are, which were
	// not written again, and deletions of resources deleted already.
	Unchanged int64 `json:"unchanged"`
	// Deleted counts the deletions (DELETE entries) recorded.
	Deleted int64 `json:"deleted"`
}

// GroupChange is a Group that an import replaced with another member
// list: an import of generated data can shrink a Group users rely on.
type GroupChange struct {
	ID     string `json:"id"`
	Before int    `json:"before"` // members before the import
	After  int    `json:"after"`  // members after it
	Joined int    `json:"joined"` // members the old list did not have
	Left   int    `json:"left"`   // members the new list does not have
}

// Report is the outcome of an import, so far when it was cut short.
type Report struct {
	// Files is the number of files read.
	Files int `json:"files"`
	// Bytes is the number of bytes read.
	Bytes int64 `json:"bytes"`
	// Resources counts the resources imported per type: new, replaced or
	// unchanged (Types says which).
	Resources map[string]int64 `json:"resources"`
	// Types counts what was done with each type's resources.
	Types map[string]Counts `json:"types"`
	// Deleted counts the deletions recorded (Counts.Deleted, all types).
	Deleted int64 `json:"deleted"`
	// Errors lists the lines and files that were skipped for a fault, in
	// input order.
	Errors []LineError `json:"errors,omitempty"`
	// Skipped lists the files that were skipped on purpose: not FHIR, or
	// an export's error files.
	Skipped []SkippedFile `json:"skipped,omitempty"`
	// GroupChanges lists the stored Groups whose member list the import
	// changed, by id.
	GroupChanges []GroupChange `json:"groupChanges,omitempty"`
	// Unresolved counts the `urn:uuid:` references that name no stored
	// resource (or more than one); they are left as they were.
	Unresolved int64 `json:"unresolved"`
}

const (
	defaultBatchSize = 10000
	// maxBatchBytes bounds a batch by size as well, since a resource can be
	// megabytes (a DocumentReference with inline attachment data).
	maxBatchBytes = 32 << 20
)

// Import loads the files at paths into store. A path may be a file (read
// whatever its name) or a directory, whose *.ndjson, *.ndjson.gz, *.json and
// *.json.gz files are read recursively in lexical order. NDJSON lines may be
// resources or Bundles; a .json file holds one resource or Bundle (Synthea
// writes pretty-printed transaction Bundles), or else NDJSON.
//
// A Bulk Data manifest (a .json object with transactionTime and output,
// as `tranche export` saves next to the files) imports the files it
// lists, deletions first: each from the manifest's directory when it is
// there, else fetched from its URL. A file both in the directory and in
// its manifest is imported once. Error files (OperationOutcomes) and other
// JSON that is not FHIR are skipped and listed in Report.Skipped.
//
// Bad lines are listed in the Report and skipped. Import returns an error
// only for a path that cannot be read, a store error or ctx's end; what was
// stored until then stays stored, and the Report says how much that was:
// running the same import again finishes it, since what is stored already
// is left as it is.
//
// Store writes run on a goroutine of their own, overlapping the parsing, and
// the last pass reads the store while it writes: store must be safe for
// concurrent use.
func Import(ctx context.Context, store Store, opts Options, paths ...string) (rep Report, err error) {
	defer bulk.Wrap(&err, "importer.Import")
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = defaultBatchSize
	}
	files, skipped, err := listInputs(paths)
	if err != nil {
		return Report{Resources: map[string]int64{}, Types: map[string]Counts{}}, err
	}
	model, err := resolveModel(ctx, store, opts, files)
	if err != nil {
		return Report{Resources: map[string]int64{}, Types: map[string]Counts{}}, err
	}
	var sess bulk.ClockSession
	if !opts.KeepLastUpdated {
		clock := opts.Clock
		if clock == nil {
			if c, ok := store.(bulk.Clock); ok {
				clock = c
			} else {
				clock = &bulk.LocalClock{}
			}
		}
		if sess, err = clock.Begin(ctx); err != nil {
			return Report{Resources: map[string]int64{}, Types: map[string]Counts{}}, err
		}
		// After the writer is closed (below): its last write is stored.
		defer func() {
			if eerr := sess.End(context.WithoutCancel(ctx)); err == nil {
				err = eerr
			}
		}()
	}
	// One import time for the run: every resource without meta.lastUpdated
	// gets the same instant, at millisecond precision so that the stored
	// text and LastUpdated agree exactly.
	now := opts.Now().UTC().Truncate(time.Millisecond)
	im := &importer{
		ctx:        ctx,
		model:      model,
		store:      store,
		w:          startWriter(ctx, store, now, sess, opts.Now),
		opts:       opts,
		now:        now,
		nowText:    now.Format(instantLayout),
		inBatch:    map[bulk.Ref]int{},
		superseded: map[string]int64{},
		deferred:   slices.Clone(opts.Deferred),
	}
	im.w.committed = opts.Committed
	im.markDone(opts.Resume)
	im.report.Skipped = skipped
	im.progress.TotalFiles = len(files)
	im.progress.TotalBytes, im.progress.TotalResources = totals(files)
	im.reportProgress()
	err = im.run(files)
	if cerr := im.w.close(); err == nil || (errors.Is(err, ErrStopped) && cerr != nil) {
		err = cerr
	}
	if errors.Is(err, ErrStopped) && opts.Committed != nil {
		// Every write is stored: the input up to where it stopped is, even
		// the lines that needed none.
		types, _ := im.w.counts()
		opts.Committed(im.done.commit(types))
	}
	var stored int64
	im.report.Types, stored = im.w.counts()
	im.report.Resources = map[string]int64{}
	for typ, c := range im.report.Types {
		if n := c.New + c.Replaced + c.Unchanged; n > 0 {
			im.report.Resources[typ] = n
		}
		im.report.Deleted += c.Deleted
	}
	// Read whatever ended the import: what was committed is the truth.
	im.report.GroupChanges = im.groupChanges(context.WithoutCancel(ctx))
	im.report.Bytes = im.progress.BytesRead
	im.progress.Resources, im.progress.File = stored, ""
	if im.opts.Progress != nil {
		im.opts.Progress(im.progress)
	}
	return im.report, err
}

// run reads files, then resolves what references it can. Stopped
// (ErrStopped), it hands the writer what it read and skips the last pass.
func (im *importer) run(files []input) error {
	for i, f := range files {
		if i < im.opts.Resume.File {
			continue // stored by the run Resume continues
		}
		im.file, im.units = i, 0
		// The first file of a run is asked at its first unit: a run that
		// resumes always starts.
		if i > im.opts.Resume.File && im.stopping() {
			return im.stopped()
		}
		im.progress.File = f.name
		if err := im.readInput(f); errors.Is(err, ErrStopped) {
			return im.stopped()
		} else if err != nil {
			return err
		}
		im.markDone(Position{File: i + 1})
		im.report.Files++
		im.progress.Files++
		im.reportProgress()
	}
	if err := im.flush(); err != nil {
		return err
	}
	// resolveDeferred reads what was stored.
	if err := im.w.wait(); err != nil {
		return err
	}
	return im.resolveDeferred()
}

// importer is the state of one Import call. Its methods run on the caller's
// goroutine; only the writer's run on another.
type importer struct {
	ctx     context.Context
	model   *fhir.Model // the store's release
	store   Store
	w       *writer
	opts    Options
	now     time.Time
	nowText string

	report   Report // but Resources and Deleted, which the writer counts
	progress Progress

	batch      []*bulk.Resource
	batchOffs  []int // where in each body the writer puts the stamp, or -1
	batchBytes int
	inBatch    map[bulk.Ref]int // index in batch, so a later version replaces an earlier one
	// superseded counts per type the resources a later version replaced
	// in the batch: replaced, once the batch is stored.
	superseded map[string]int64

	// restoring is set while resolveDeferred stores resources again, which
	// are not counted twice.
	restoring bool

	// deferred lists the resources stored with `urn:uuid:` references
	// still in them, to resolve once everything is stored. Memory is
	// bounded by this list, not by the data.
	deferred []bulk.Ref

	// done is how far the input is handed to the writer: each write
	// carries it, and is a Commit once stored (Options.Committed).
	done mark
	// depth is readInput's nesting (a fetched manifest reads its files
	// inside its own): units count in the top-level files only.
	depth int
	// file is the index of the top-level file being read, units the units
	// of it finished.
	file  int
	units int64
	// quiet drops lineError reports: a resumed Bundle's checks of entries
	// reported before Resume.
	quiet bool
}

// mark is a Position with the errors and deferred references of the input
// before it: prefixes of the importer's lists, which only grow.
type mark struct {
	pos      Position
	errs     []LineError
	deferred []bulk.Ref
}

func (m mark) commit(types map[string]Counts) Commit {
	return Commit{Position: m.pos, Types: types, Errors: m.errs, Deferred: m.deferred}
}

// markDone notes that the input before p is handed to the writer.
func (im *importer) markDone(p Position) {
	errs, deferred := im.report.Errors, im.deferred
	im.done = mark{pos: p, errs: errs[:len(errs):len(errs)], deferred: deferred[:len(deferred):len(deferred)]}
}

// unitDone notes the end of a unit of the top-level file being read.
func (im *importer) unitDone() {
	if im.depth == 1 {
		im.units++
		im.markDone(Position{File: im.file, Unit: im.units})
	}
}

// resumed reports whether the current unit of the top-level file was
// stored before Options.Resume, so is skipped.
func (im *importer) resumed() bool {
	return im.depth == 1 && im.file == im.opts.Resume.File && im.units < im.opts.Resume.Unit
}

// stopping asks Options.Stop, at a unit's start.
func (im *importer) stopping() bool {
	return im.opts.Stop != nil && im.opts.Stop()
}

// stopped hands the writer what was read before the unit that was not
// started, and ends the reading.
func (im *importer) stopped() error {
	if err := im.flush(); err != nil {
		return err
	}
	return ErrStopped
}

// loc says where a resource came from, for errors.
type loc struct {
	file  string
	line  int
	entry int // Bundle.entry index, or -1
}

func (im *importer) lineError(l loc, format string, args ...any) {
	if im.quiet {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if l.entry >= 0 {
		msg = fmt.Sprintf("Bundle.entry[%d]: %s", l.entry, msg)
	}
	im.report.Errors = append(im.report.Errors, LineError{File: l.file, Line: l.line, Message: msg})
}

// fileError reports a whole file skipped for a fault.
func (im *importer) fileError(file, format string, args ...any) {
	im.report.Errors = append(im.report.Errors, LineError{File: file, Message: fmt.Sprintf(format, args...)})
}

// skip notes a file skipped on purpose.
func (im *importer) skip(file, reason string) {
	im.report.Skipped = append(im.report.Skipped, SkippedFile{File: file, Reason: reason})
}

// add queues a resource for storing, flushing a full batch. off is where
// its body holds the placeholder for the stamp (stampMeta), or -1.
func (im *importer) add(r *bulk.Resource, off int) error {
	ref := bulk.Ref{Type: r.Type, ID: r.ID}
	if i, ok := im.inBatch[ref]; ok {
		im.superseded[r.Type]++
		// The same id twice in one batch: the later one wins, as it would
		// across batches, whatever order the store applies a batch in.
		im.batchBytes += len(r.Body) - len(im.batch[i].Body)
		im.batch[i], im.batchOffs[i] = r, off
	} else {
		im.inBatch[ref] = len(im.batch)
		im.batch = append(im.batch, r)
		im.batchOffs = append(im.batchOffs, off)
		im.batchBytes += len(r.Body)
	}
	if len(im.batch) >= im.opts.BatchSize || im.batchBytes >= maxBatchBytes {
		return im.flush()
	}
	return nil
}

// flush hands the queued resources to the writer.
func (im *importer) flush() error {
	if err := im.ctx.Err(); err != nil {
		return err
	}
	if len(im.batch) == 0 {
		return nil
	}
	op := writeOp{put: im.batch, offs: im.batchOffs, count: !im.restoring, superseded: im.superseded, mark: im.done}
	if err := im.w.send(op); err != nil {
		return err
	}
	// The writer owns the batch now.
	im.batch = make([]*bulk.Resource, 0, min(im.opts.BatchSize, defaultBatchSize))
	im.batchOffs = make([]int, 0, cap(im.batch))
	im.superseded = map[string]int64{}
	im.batchBytes = 0
	clear(im.inBatch)
	im.reportProgress()
	return nil
}

// reportProgress tells opts.Progress how far the import has got.
func (im *importer) reportProgress() {
	if im.opts.Progress != nil {
		_, im.progress.Resources = im.w.counts()
		im.opts.Progress(im.progress)
	}
}

// delete queues the deletion of ref after the queued resources, so that
// earlier writes stay earlier. The writer stamps it with the clock, or
// records it at the import time with KeepLastUpdated.
func (im *importer) delete(ref bulk.Ref) error {
	if err := im.flush(); err != nil {
		return err
	}
	return im.w.send(writeOp{del: &ref, at: im.now, mark: im.done})
}

// instantLayout writes a FHIR instant in UTC with milliseconds.
const instantLayout = "2006-01-02T15:04:05.000Z07:00"

// instantRE is the R4 instant regex (datatypes.html#instant).
var instantRE = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`)

// parseInstant parses a FHIR instant; ok is false for anything else,
// including dates that do not exist (February 30th).
func parseInstant(s string) (time.Time, bool) {
	if !instantRE.MatchString(s) {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// groupChanges compares the member lists of the stored Groups the import
// replaced with those they had before it.
func (im *importer) groupChanges(ctx context.Context) []GroupChange {
	var out []GroupChange
	before := im.w.groupsBefore()
	for _, id := range slices.Sorted(maps.Keys(before)) {
		was := slices.Sorted(slices.Values(before[id]))
		members, err := im.store.GroupMembers(ctx, id)
		if err != nil {
			continue // deleted later in the run (counted), or unreadable
		}
		now := slices.Sorted(slices.Values(members))
		c := GroupChange{ID: id, Before: len(was), After: len(now)}
		for _, m := range now {
			if _, ok := slices.BinarySearch(was, m); !ok {
				c.Joined++
			}
		}
		for _, m := range was {
			if _, ok := slices.BinarySearch(now, m); !ok {
				c.Left++
			}
		}
		if c.Joined+c.Left > 0 {
			out = append(out, c)
		}
	}
	return out
}
