package bolt

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/tranchehq/tranche/internal/bulk"
)

// TestActiveIndexMigration: a file from before the active index counts its
// running jobs from the jobs bucket, and the first job write builds the
// index from them.
func TestActiveIndexMigration(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), FileName), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := db.Jobs()
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, j := range []struct {
		id, client string
		status     bulk.Status
	}{
		{"j1", "c1", bulk.StatusAccepted},
		{"j2", "c1", bulk.StatusInProgress},
		{"j3", "c1", bulk.StatusCompleted},
		{"j4", "c2", bulk.StatusAccepted},
	} {
		err := s.CreateJob(ctx, &bulk.Job{ID: j.id, ClientID: j.client, Status: j.status, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The file as an older tranche left it.
	if err := db.bolt.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket(bucketActive) }); err != nil {
		t.Fatal(err)
	}
	check := func(when string, want map[string]int) {
		t.Helper()
		for client, n := range want {
			if got, err := s.ActiveJobs(ctx, client); err != nil || got != n {
				t.Errorf("%s: ActiveJobs(%s) = %d, %v; want %d", when, client, got, err, n)
			}
		}
	}
	check("without the index", map[string]int{"c1": 2, "c2": 1, "c3": 0})

	if _, err := s.Transition(ctx, "j1", []bulk.Status{bulk.StatusAccepted}, bulk.StatusFailed, nil); err != nil {
		t.Fatal(err)
	}
	built := false
	_ = db.bolt.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketActive); b != nil {
			built = b.Stats().KeyN == 2
		}
		return nil
	})
	if !built {
		t.Error("the first job write did not build the active index with the two running jobs")
	}
	check("after the first write", map[string]int{"c1": 1, "c2": 1, "c3": 0})
}
