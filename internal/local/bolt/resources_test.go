package bolt_test

import (
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

func TestResourceStore(t *testing.T) {
	for _, tc := range []struct {
		name       string
		shards     int
		chunkItems int
		chunkBytes int
	}{
		{"OneShard", 1, 1024, 4 << 20},
		{"SixteenShards", 16, 1024, 4 << 20},
		// Tiny chunks: every read crosses chunk boundaries.
		{"TinyChunks", 2, 3, 4 << 20},
		{"TinyChunkBytes", 2, 1024, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer bolt.SetChunkLimits(tc.chunkItems, tc.chunkBytes)()
			bulktest.RunResourceStoreTests(t, func(t *testing.T) bulk.ResourceStore {
				db, _ := mustOpen(t, bolt.Options{Shards: tc.shards, NoSync: true})
				return db.Resources()
			})
		})
	}
}
