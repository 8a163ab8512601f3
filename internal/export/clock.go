package export

import (
	"context"
	"time"
)

// transactionTime is the transactionTime of a job kicked off at now (R55):
// the store's low watermark (bulk.Clock), not the wall clock. Imports stamp
// meta.lastUpdated as they store, and a batch still in flight holds a stamp
// the watermark stays below, so every version is either stored with
// lastUpdated ≤ transactionTime, and in this export's range, or stamped
// later, and in the range of the next export `_since` it (R12: `_since` is
// exclusive, `meta.lastUpdated > _since`). Waiting for the imports instead
// would stall kick-off for as long as an import runs. With imports in
// flight transactionTime is somewhat before now: the output SHALL contain
// what changed up to it, and SHOULD NOT what changed after.
func (s *Service) transactionTime(ctx context.Context, now time.Time) (time.Time, error) {
	if s.Clock == nil {
		return now, nil
	}
	t, err := s.Clock.TransactionTime(ctx, now)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC().Truncate(time.Millisecond), nil
}
