package bolt_test

import (
	"context"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

func TestClock(t *testing.T) {
	bulktest.RunClockTests(t, func(t *testing.T) bulk.Clock {
		db, _ := mustOpen(t, bolt.Options{NoSync: true})
		return db.Resources()
	})
}

// TestClockAfterReopen: the clock's high-water mark is in the file, so the
// next process (`tranche import` after `tranche serve`) stamps after every
// stamp and transactionTime the last one gave out, whatever its wall clock
// says: versions stay in order across restarts.
func TestClockAfterReopen(t *testing.T) {
	ctx := context.Background()
	db, path := mustOpen(t, bolt.Options{NoSync: true})
	t1 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	s, err := db.Resources().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Stamp(ctx, t1)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.End(ctx)
	kick, err := db.Resources().TransactionTime(ctx, t1.Add(time.Hour))
	if err != nil || !kick.Equal(t1.Add(time.Hour)) {
		t.Fatalf("TransactionTime = %v, %v; want %v", kick, err, t1.Add(time.Hour))
	}
	db.Close()

	db, err = bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err = db.Resources().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.End(ctx)
	got, err := s.Stamp(ctx, t1) // a wall clock an hour behind the last kick-off
	if err != nil {
		t.Fatal(err)
	}
	if !got.After(kick) || !got.After(st) {
		t.Errorf("Stamp after reopening = %v, want after the last transactionTime %v", got, kick)
	}
}
