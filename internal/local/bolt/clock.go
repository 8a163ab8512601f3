package bolt

import (
	"context"
	"time"

	"go.etcd.io/bbolt"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.Clock = (*ResourceStore)(nil)

// The store's clock for lastUpdated (bulk.Clock). The file has one writer
// process (Open locks it), so the clock's holds live in memory, in a
// bulk.LocalClock; its high-water mark is kept in meta "clock", so a later
// process (`tranche import` after `tranche serve`) stamps after every stamp
// and transactionTime an earlier one gave out, even if the wall clock went
// back.

var keyClock = []byte("clock")

// loadClock reads the stored high-water mark (zero in a new file).
func loadClock(tx *bbolt.Tx) time.Time {
	if v := tx.Bucket(bucketMeta).Get(keyClock); len(v) == 8 {
		return time.Unix(0, readTime(v)).UTC()
	}
	return time.Time{}
}

// saveClock records t as the high-water mark unless a later one is stored.
func (db *DB) saveClock(t time.Time) error {
	nanos := clampNanos(t)
	return db.update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyClock); len(v) == 8 && readTime(v) >= nanos {
			return nil
		}
		return meta.Put(keyClock, appendTime(nil, nanos))
	})
}

// Begin starts an import's session on the store's clock.
func (s *ResourceStore) Begin(ctx context.Context) (bulk.ClockSession, error) {
	return s.db.clock.Begin(ctx)
}

// TransactionTime implements bulk.Clock: below every stamp an import of
// this process holds, at or after every stamp that is stored.
func (s *ResourceStore) TransactionTime(ctx context.Context, now time.Time) (t time.Time, err error) {
	defer bulk.Wrap(&err, "bolt.ResourceStore.TransactionTime")
	return s.db.clock.TransactionTime(ctx, now)
}
