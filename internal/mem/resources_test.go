package mem_test

import (
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/mem"
)

func TestResourceStore(t *testing.T) {
	for _, shards := range []int{1, 4} {
		t.Run(map[int]string{1: "OneShard", 4: "FourShards"}[shards], func(t *testing.T) {
			bulktest.RunResourceStoreTests(t, func(t *testing.T) bulk.ResourceStore {
				return mem.NewResourceStore(shards)
			})
		})
	}
}
