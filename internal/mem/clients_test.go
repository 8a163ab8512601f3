package mem_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/mem"
)

func TestClientStore(t *testing.T) {
	bulktest.RunClientStoreTests(t, func(t *testing.T) bulk.ClientStore {
		return mem.NewClientStore()
	})
}

func TestReplayCache(t *testing.T) {
	bulktest.RunReplayCacheTests(t, func(t *testing.T, now func() time.Time) bulk.ReplayCache {
		return mem.NewReplayCache(now)
	})
}

func TestReplayCacheSweeps(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	c := mem.NewReplayCache(func() time.Time { return now })
	for i := range 3000 {
		if err := c.MarkUsed(ctx, fmt.Sprint(i), now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second) // each record expires as the next arrives
	}
	if n := c.Len(); n > 1100 {
		t.Errorf("Len() after 3000 records that each expired = %d, want ≤ 1100 (swept)", n)
	}
}

func TestRateCounter(t *testing.T) {
	bulktest.RunRateCounterTests(t, func(t *testing.T, now func() time.Time) bulk.RateCounter {
		return mem.NewRateCounter(now)
	})
}
