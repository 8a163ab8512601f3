package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

// TestShardCounts: the same data in stores of 1, 4 and 16 shards reads
// back the same (issue 12 item 1's contract, which every adapter passes).
func TestShardCounts(t *testing.T) {
	bulktest.RunShardCountTests(t, func(t *testing.T, shards int) bulk.ResourceStore {
		db, err := bolt.Open(filepath.Join(t.TempDir(), bolt.FileName), bolt.Options{Shards: shards, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db.Resources()
	}, 1, 4, 16)
}
