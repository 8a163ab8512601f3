package mem

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.StatsSource = (*ResourceStore)(nil)

// StoreStats implements bulk.StatsSource. Bytes is 0: nothing is on disk.
func (s *ResourceStore) StoreStats(ctx context.Context) (*bulk.StoreStats, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := &bulk.StoreStats{Resources: map[string]int64{}, Tombstones: map[string]int64{}, Groups: []bulk.GroupStats{}}
	var latest time.Time
	for typ, byID := range s.resources {
		if len(byID) > 0 {
			st.Resources[typ] = int64(len(byID))
		}
		for _, r := range byID {
			latest = bulk.Latest(latest, r.LastUpdated)
		}
	}
	for typ, ts := range s.tombstones {
		if len(ts) > 0 {
			st.Tombstones[typ] = int64(len(ts))
		}
		for _, t := range ts {
			latest = bulk.Latest(latest, t.at)
		}
	}
	for id, g := range s.resources["Group"] {
		st.Groups = append(st.Groups, bulk.GroupStats{ID: id, Members: len(g.Members)})
	}
	slices.SortFunc(st.Groups, func(a, b bulk.GroupStats) int { return strings.Compare(a.ID, b.ID) })
	st.LastUpdated = latest
	return st, nil
}
