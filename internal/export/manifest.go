package export

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// Manifest is the complete-status body (requirements 3.4, R54).
type Manifest struct {
	TransactionTime     string         `json:"transactionTime"`
	Request             string         `json:"request"`
	RequiresAccessToken bool           `json:"requiresAccessToken"`
	Output              []ManifestFile `json:"output"`
	Deleted             []ManifestFile `json:"deleted"`
	Error               []ManifestFile `json:"error"`
}

// ManifestFile is one output, deleted or error entry (R58).
type ManifestFile struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int64  `json:"count"`
}

// Instant formats t as a FHIR instant with milliseconds.
func Instant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// Manifest assembles a completed job's manifest from its items' recorded
// files. fileURL turns an object key into the absolute URL the client
// downloads (minted now, so signed URLs are fresh on every poll: R80).
func (s *Service) Manifest(ctx context.Context, j *bulk.Job, requiresToken bool, fileURL func(key string) string) (*Manifest, error) {
	progress, err := s.Jobs.Progress(ctx, j.ID)
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		TransactionTime: Instant(j.TransactionTime), Request: j.Request.RequestURL, RequiresAccessToken: requiresToken,
		Output: []ManifestFile{}, Deleted: []ManifestFile{}, Error: []ManifestFile{},
	}
	var files []bulk.OutputFile
	for _, p := range progress {
		files = append(files, p.Files...)
	}
	// By type, then key: each type's files together, in the order written.
	slices.SortFunc(files, func(a, b bulk.OutputFile) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	for _, f := range files {
		mf := ManifestFile{Type: f.Type, URL: fileURL(f.Key), Count: f.Count}
		switch f.Kind {
		case bulk.KindDeleted:
			m.Deleted = append(m.Deleted, mf)
		case bulk.KindError:
			m.Error = append(m.Error, mf)
		default:
			m.Output = append(m.Output, mf)
		}
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

// FileJob checks that key belongs to a completed, unexpired job of clientID
// and returns the job. Anything else is ENOTFOUND (R82).
func (s *Service) FileJob(ctx context.Context, clientID, key string) (*bulk.Job, error) {
	id, _, ok := strings.Cut(key, "/")
	if !ok {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "No such file.")
	}
	j, err := s.Job(ctx, clientID, id)
	if err != nil || j.Status != bulk.StatusCompleted {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "No such file.")
	}
	return j, nil
}
