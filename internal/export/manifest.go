package export

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// Manifest is the complete-status body (requirements 3.4, R54), and with
// allowPartialManifests one page of it (3.5).
type Manifest struct {
	TransactionTime     string         `json:"transactionTime"`
	Request             string         `json:"request"`
	RequiresAccessToken bool           `json:"requiresAccessToken"`
	OutputOrganizedBy   string         `json:"outputOrganizedBy,omitempty"`
	Output              []ManifestFile `json:"output"`
	Deleted             []ManifestFile `json:"deleted"`
	Error               []ManifestFile `json:"error"`
	Link                []ManifestLink `json:"link,omitempty"`
}

// ManifestFile is one output, deleted or error entry (R58). Organized
// output files have no type (R64) and may continue in another file (R92).
type ManifestFile struct {
	Type            string `json:"type,omitempty"`
	URL             string `json:"url"`
	Count           int64  `json:"count"`
	ContinuesInFile string `json:"continuesInFile,omitempty"`
}

// ManifestLink links a manifest page to the next (R66).
type ManifestLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// Instant formats t as a FHIR instant with milliseconds.
func Instant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// newManifest returns a manifest with the fields every page repeats, the
// error files among them.
func (s *Service) newManifest(j *bulk.Job, p *bulk.Plan, requiresToken bool, fileURL func(key string) string) *Manifest {
	m := &Manifest{
		TransactionTime: Instant(j.TransactionTime), Request: j.Request.RequestURL, RequiresAccessToken: requiresToken,
		OutputOrganizedBy: j.Request.OrganizeBy,
		Output:            []ManifestFile{}, Deleted: []ManifestFile{}, Error: []ManifestFile{},
	}
	if p != nil {
		for _, f := range p.Files {
			m.add(f, fileURL)
		}
	}
	return m
}

// add lists a file in the array of its kind.
func (m *Manifest) add(f bulk.OutputFile, fileURL func(key string) string) {
	mf := ManifestFile{Type: f.Type, URL: fileURL(f.Key), Count: f.Count}
	if f.ContinuesIn != "" {
		mf.ContinuesInFile = fileURL(f.ContinuesIn)
	}
	switch f.Kind {
	case bulk.KindDeleted:
		m.Deleted = append(m.Deleted, mf)
	case bulk.KindError:
		m.Error = append(m.Error, mf)
	default:
		m.Output = append(m.Output, mf)
	}
}

// finished is what a completed job recorded: it never changes again, so
// clients polling a finished job (often, and many at once) do not decode it
// from the store on every poll.
type finished struct {
	plan     *bulk.Plan
	progress []*bulk.ItemProgress
}

// finishedRecords returns a completed job's plan (nil if it was never
// planned) and checkpoints, cached.
func (s *Service) finishedRecords(ctx context.Context, j *bulk.Job) (*bulk.Plan, []*bulk.ItemProgress, error) {
	if f, ok := s.finished.Load(j.ID); ok {
		return f.(*finished).plan, f.(*finished).progress, nil
	}
	progress, err := s.Jobs.Progress(ctx, j.ID)
	if err != nil {
		return nil, nil, err
	}
	p, err := s.Jobs.GetPlan(ctx, j.ID)
	if err != nil && bulk.ErrorCode(err) != bulk.ENOTFOUND {
		return nil, nil, err
	}
	if j.Status == bulk.StatusCompleted {
		s.finished.Store(j.ID, &finished{plan: p, progress: progress})
	}
	return p, progress, nil
}

// Manifest assembles a completed job's manifest from its items' recorded
// files. fileURL turns an object key into the absolute URL the client
// downloads (minted now, so signed URLs are fresh on every poll: R80).
func (s *Service) Manifest(ctx context.Context, j *bulk.Job, requiresToken bool, fileURL func(key string) string) (*Manifest, error) {
	p, progress, err := s.finishedRecords(ctx, j)
	if err != nil {
		return nil, err
	}
	m := s.newManifest(j, p, requiresToken, fileURL)
	var files []bulk.OutputFile
	for _, p := range progress {
		files = append(files, p.Files...)
	}
	// By type, then key: each type's files together, in the order written
	// (organized files, which have no type, in the order written).
	slices.SortFunc(files, func(a, b bulk.OutputFile) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	for _, f := range files {
		m.add(f, fileURL)
	}
	return m, nil
}

// ManifestPage returns page n (from 1) of the manifest of an export with
// allowPartialManifests, or nil if that page is not ready yet
// (requirements 3.5, R65, R66).
//
// The pages cut one sequence of files into pages of ManifestPageFiles
// files: the files of work item 0, then of item 1, and so on, each item's
// in the order its checkpoints recorded them. A running item's files are
// only ever appended to, and a later item's follow once every item before
// it is done, so the known prefix of the sequence only grows. A page is
// ready once the known prefix fills it, or when the job is complete (the
// last page may be shorter, and an export of nothing has one empty page).
// So a page never changes once returned, without storing it: only its
// `link` to the next page appears, once that page is ready. Every page
// repeats the other fields, the error files among them (they are written
// while planning, before any page).
func (s *Service) ManifestPage(ctx context.Context, j *bulk.Job, n int, requiresToken bool, fileURL func(key string) string, pageURL func(n int) string) (*Manifest, error) {
	if n < 1 || j.Status != bulk.StatusInProgress && j.Status != bulk.StatusCompleted {
		return nil, nil
	}
	p, err := s.Jobs.GetPlan(ctx, j.ID)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return nil, nil // not planned yet
	} else if err != nil {
		return nil, err
	}
	progress, err := s.Jobs.Progress(ctx, j.ID)
	if err != nil {
		return nil, err
	}
	byIndex := make(map[int]*bulk.ItemProgress, len(progress))
	for _, pr := range progress {
		byIndex[pr.Index] = pr
	}
	var known []bulk.OutputFile
	complete := j.Status == bulk.StatusCompleted
	for i := range p.Items {
		pr := byIndex[i]
		if pr == nil {
			break
		}
		known = append(known, pr.Files...)
		if !pr.Done {
			break
		}
	}
	size := s.Config.ManifestPageFiles
	ready := func(n int) bool {
		if complete {
			return n == 1 || (n-1)*size < len(known)
		}
		return n*size <= len(known)
	}
	if !ready(n) {
		return nil, nil
	}
	m := s.newManifest(j, p, requiresToken, fileURL)
	for _, f := range known[(n-1)*size : min(n*size, len(known))] {
		m.add(f, fileURL)
	}
	if ready(n + 1) {
		m.Link = []ManifestLink{{Relation: "next", URL: pageURL(n + 1)}}
	}
	return m, nil
}

// ProgressText is the X-Progress value: under 100 characters (R46).
func ProgressText(j *bulk.Job) string {
	if j.Status == bulk.StatusAccepted || j.ItemsTotal == 0 {
		return "planning"
	}
	return fmt.Sprintf("%d%% complete (%d of %d work items)", j.ItemsDone*100/j.ItemsTotal, j.ItemsDone, j.ItemsTotal)
}

// RetryAfter suggests the next poll: soon for a young job, less often for a
// long one, never more than 10 s (R47).
func (s *Service) RetryAfter(j *bulk.Job) int {
	elapsed := s.now().Sub(j.CreatedAt)
	return int(min(max(elapsed/(4*time.Second), 1), 10))
}

// FileJob checks that key belongs to a completed, unexpired job of clientID,
// or is a recorded file of a running one with allowPartialManifests, and
// returns the job. Anything else is ENOTFOUND (R82).
func (s *Service) FileJob(ctx context.Context, clientID, key string) (*bulk.Job, error) {
	id, name, ok := strings.Cut(key, "/")
	if !ok || strings.Contains(strings.TrimPrefix(name, AttachmentsPrefix), "/") {
		// Files are <job>/<name> and <job>/attachments/<name>; other
		// deeper keys (plan/, refs/) are the workflow's own.
		return nil, bulk.Errorf(bulk.ENOTFOUND, "No such file.")
	}
	j, err := s.Job(ctx, clientID, id)
	switch {
	case err != nil:
		return nil, bulk.Errorf(bulk.ENOTFOUND, "No such file.")
	case j.Status == bulk.StatusCompleted:
		return j, nil
	case j.Status == bulk.StatusInProgress && j.Request.AllowPartial:
		// A running export's files are ready once a checkpoint recorded
		// them (R65); those being written are not.
		progress, err := s.Jobs.Progress(ctx, id)
		if err != nil {
			return nil, err
		}
		for _, p := range progress {
			for _, f := range p.Files {
				if f.Key == key {
					return j, nil
				}
			}
		}
		if p, err := s.plan(ctx, id); err == nil {
			for _, f := range p.Files {
				if f.Key == key {
					return j, nil
				}
			}
		}
	}
	return nil, bulk.Errorf(bulk.ENOTFOUND, "No such file.")
}
