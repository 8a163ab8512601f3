package bulk_test

import (
	"fmt"
	"hash/fnv"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
)

// TestShardOf: the shard is FNV-1a (32 bit) of the id modulo the shards,
// which stored keys depend on.
func TestShardOf(t *testing.T) {
	ids := []string{"", "a", "p000", "Patient-1", "héllo", "0b6f1c2e-7d3a-4e5f-9a8b-1c2d3e4f5a6b"}
	for i := range 1000 {
		ids = append(ids, fmt.Sprintf("id-%d", i))
	}
	for _, shards := range []int{1, 2, 16, 100, 255} {
		for _, id := range ids {
			h := fnv.New32a()
			h.Write([]byte(id))
			want := int(h.Sum32() % uint32(shards))
			if got := bulk.ShardOf(id, shards); got != want {
				t.Fatalf("ShardOf(%q, %d) = %d, want %d", id, shards, got, want)
			}
		}
	}
}
