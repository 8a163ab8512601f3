package export

import (
	"fmt"
	"testing"
	"time"
)

// TestJobCacheBounded: a warm process serving many jobs keeps at most the
// capacity's entries, drops the oldest first, and forgets an entry after
// cacheMaxAge (issue 14 item 6; before, the caches only shrank when this
// process finished, cancelled or purged the job).
func TestJobCacheBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cacheNow = func() time.Time { return now }
	defer func() { cacheNow = time.Now }()

	var c jobCache[jobs16]
	for i := range 1000 {
		c.Store(fmt.Sprint("job-", i), i)
		now = now.Add(time.Second)
	}
	if n := c.Len(); n != 16 {
		t.Errorf("%d entries after 1000 jobs, want the capacity, 16", n)
	}
	if _, ok := c.Load("job-983"); ok {
		t.Error("job-983 is still cached: the oldest should go first")
	}
	if v, ok := c.Load("job-999"); !ok || v != 999 {
		t.Errorf("Load(job-999) = %v, %v; want the newest kept", v, ok)
	}
	now = now.Add(cacheMaxAge + time.Second)
	if _, ok := c.Load("job-999"); ok {
		t.Error("an entry older than cacheMaxAge is still served")
	}
	if v, loaded := c.LoadOrStore("job-999", "fresh"); loaded || v != "fresh" {
		t.Errorf("LoadOrStore after expiry = %v, %v; want the new value stored", v, loaded)
	}
	if !c.CompareAndDelete("job-999", "fresh") || c.CompareAndDelete("job-999", "fresh") {
		t.Error("CompareAndDelete: want true once, then false")
	}
}
