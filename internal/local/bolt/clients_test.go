package bolt_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

func TestClientStore(t *testing.T) {
	bulktest.RunClientStoreTests(t, func(t *testing.T) bulk.ClientStore {
		db, _ := mustOpen(t, bolt.Options{NoSync: true})
		return db.Clients()
	})
}

func TestReplayCache(t *testing.T) {
	bulktest.RunReplayCacheTests(t, func(t *testing.T, now func() time.Time) bulk.ReplayCache {
		db, _ := mustOpen(t, bolt.Options{NoSync: true})
		return db.Replay(now)
	})
}

// TestClientsSurviveReopen checks that clients and replay records are in the
// file, not in the DB value.
func TestClientsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), bolt.FileName)
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return t0 }
	db, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Clients().CreateClient(ctx, &bulk.Client{ID: "c1", Scopes: []string{"system/*.rs"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Replay(now).MarkUsed(ctx, "c1#j1", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if c, err := db.Clients().GetClient(ctx, "c1"); err != nil || c.Scopes[0] != "system/*.rs" {
		t.Errorf("GetClient(c1) after reopen = %+v, %v", c, err)
	}
	if err := db.Replay(now).MarkUsed(ctx, "c1#j1", t0.Add(time.Minute)); bulk.ErrorCode(err) != bulk.ECONFLICT {
		t.Errorf("MarkUsed(c1#j1) after reopen error = %v, want %s", err, bulk.ECONFLICT)
	}
}

// TestReplayCacheSweeps checks that expired records are deleted by later
// writes, so the bucket does not grow without bound.
func TestReplayCacheSweeps(t *testing.T) {
	ctx := context.Background()
	db, _ := mustOpen(t, bolt.Options{NoSync: true})
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	c := db.Replay(func() time.Time { return now })
	for i := range 2000 {
		if err := c.MarkUsed(ctx, fmt.Sprintf("k%05d", i), now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
	}
	if n, err := c.Len(); err != nil || n > 200 {
		t.Errorf("jti records after 2000 that each expired = %d, want ≤ 200 (swept); err %v", n, err)
	}
}
