package export

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// Space is an object store's byte budget: the local file store's
// `--max-output-bytes` (fsobj.Store). S3 has none, so on AWS
// Service.Space is nil.
type Space interface {
	// Usage returns the bytes the store's objects hold and the budget
	// (0: none).
	Usage() (used, limit int64)
}

// NoSpaceFailure is the status poll's text for a job that failed because
// its files did not fit (R49).
const NoSpaceFailure = "The server ran out of space for export files; start the export again later, when earlier exports have expired or been deleted, or export less (_type, _since)."

// Retry-After bounds of a kick-off refused for lack of space: space comes
// back when an export expires, or sooner when its client deletes it.
const (
	minSpaceWait = time.Second
	maxSpaceWait = 5 * time.Minute
)

// checkSpace refuses a kick-off while the files of unexpired jobs use up
// the budget: 429 with Retry-After, as the IG has a server answer a
// kick-off it cannot take now (requirements 2, R39). Expired jobs are
// purged first, so only unexpired ones hold the budget.
func (s *Service) checkSpace(ctx context.Context) error {
	if s.Space == nil {
		return nil
	}
	if used, limit := s.Space.Usage(); limit <= 0 || used < limit {
		return nil
	}
	if _, err := s.Purge(ctx); err != nil {
		return err
	}
	used, limit := s.Space.Usage()
	if limit <= 0 || used < limit {
		return nil
	}
	// Retry when the next completed export expires, within bounds.
	now, wait := s.now(), maxSpaceWait
	err := s.Jobs.ListJobs(ctx, func(j *bulk.Job) error {
		if j.Status == bulk.StatusCompleted && j.ExpiresAt.After(now) {
			wait = min(wait, j.ExpiresAt.Sub(now))
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.Logger.Warn("export refused: the output budget is used up", "used_bytes", used, "limit_bytes", limit)
	return &bulk.Error{Code: bulk.ETOOMANYREQUESTS, Err: retryAfter(max(wait, minSpaceWait)),
		Message: "The server has no space left for export files; retry after Retry-After seconds, once earlier exports expire or are deleted (DELETE their status URL)."}
}

// retryAfter is the Retry-After hint internal/api reads from an error.
type retryAfter time.Duration

func (r retryAfter) Error() string { return "retry after " + time.Duration(r).String() }

// RetryAfter returns the hint.
func (r retryAfter) RetryAfter() time.Duration { return time.Duration(r) }

// isNoSpace reports a write refused for lack of space: ENOSPACE from a
// store that translates it (fsobj: a full disk or quota, or its budget),
// or a bare ENOSPC from one that does not.
func isNoSpace(err error) bool {
	var e *bulk.Error
	return (errors.As(err, &e) && e.Code == bulk.ENOSPACE) || errors.Is(err, syscall.ENOSPC)
}

// failNoSpace fails the job when *errp is a lack of space: the status poll
// then says so (NoSpaceFailure) instead of reporting an internal error,
// and the job's files are removed to give the space back. It is deferred
// by the steps that write files; the error still goes to the workflow,
// whose MarkFailed then finds the job failed already. Failing it here
// holds on AWS too, where a Distributed Map's Catch sees only its own
// error, not the item's.
func (s *Service) failNoSpace(ctx context.Context, jobID string, errp *error) {
	if *errp == nil || !isNoSpace(*errp) {
		return
	}
	s.Logger.Error("export failed: no space for its files", "job", jobID, "err", *errp)
	now := s.now()
	_, err := s.Jobs.Transition(ctx, jobID, []bulk.Status{bulk.StatusAccepted, bulk.StatusInProgress}, bulk.StatusFailed, func(j *bulk.Job) {
		j.Failure = NoSpaceFailure
		j.ExpiresAt = now.Add(s.Config.Retention)
	})
	if err != nil {
		if bulk.ErrorCode(err) != bulk.ECONFLICT { // ECONFLICT: already ended
			s.Logger.Warn("could not mark the job failed for lack of space", "job", jobID, "err", err)
		}
		return
	}
	s.forget(jobID)
	if err := s.Objects.DeletePrefix(ctx, jobID+"/"); err != nil {
		s.Logger.Warn("could not delete a failed job's files", "job", jobID, "err", err)
	}
}
