package bulk

import (
	"context"
	"time"
)

// StoreStats is what a resource store holds, for operators (`tranche
// stats`).
type StoreStats struct {
	// Resources counts the live resources per type; Tombstones the
	// deletions recorded per type. Types with none are left out.
	Resources  map[string]int64 `json:"resources"`
	Tombstones map[string]int64 `json:"tombstones"`
	// Groups are the live Groups with their member counts, in id order.
	Groups []GroupStats `json:"groups"`
	// LastUpdated is the latest lastUpdated of a stored version or
	// deletion: the last import's, as the store's clock stamps imports,
	// unless it kept the files' own (importer.Options.KeepLastUpdated).
	// Zero in an empty store.
	LastUpdated time.Time `json:"lastUpdated,omitzero"`
	// Bytes is the store's size on disk, 0 for one that has no file.
	Bytes int64 `json:"bytes"`
}

// GroupStats is one Group in StoreStats.
type GroupStats struct {
	ID      string `json:"id"`
	Members int    `json:"members"`
}

// StatsSource reports what a store holds. The embedded and in-memory
// stores implement it; the DynamoDB one does not (counting Groups and
// tombstones there is a scan).
type StatsSource interface {
	// StoreStats reads the counts. It walks the Group membership and
	// tombstone indexes, never the resource bodies: meant for an
	// operator's command, not a request path.
	StoreStats(ctx context.Context) (*StoreStats, error)
}
