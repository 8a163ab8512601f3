package bulktest_test

import (
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/mem"
)

// TestShardCounts runs the shard-count suite on the reference store, so
// that the suite's expectations are checked wherever it runs.
func TestShardCounts(t *testing.T) {
	bulktest.RunShardCountTests(t, func(t *testing.T, shards int) bulk.ResourceStore {
		return mem.NewResourceStore(shards)
	}, 1, 4, 16)
}
