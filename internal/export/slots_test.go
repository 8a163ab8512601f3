package export_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
)

// countingSource counts the scans running at once, each of which takes a
// while.
type countingSource struct {
	bulk.ResourceSource
	mu          sync.Mutex
	now, most   int
	scans       int
	perScanWait time.Duration
}

func (s *countingSource) Scan(ctx context.Context, req bulk.ScanRequest, fn bulk.Visit) error {
	s.mu.Lock()
	s.now++
	s.scans++
	s.most = max(s.most, s.now)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.now--
		s.mu.Unlock()
	}()
	time.Sleep(s.perScanWait)
	return s.ResourceSource.Scan(ctx, req, fn)
}

// TestExportSlots: however many items the Map runs at once, no more of a
// process's items than it has cores read the store at once, and all of
// them finish.
func TestExportSlots(t *testing.T) {
	cfg := export.DefaultConfig()
	cfg.MaxConcurrency = 4 * runtime.GOMAXPROCS(0)
	f := newFixture(t, cfg, nil)
	src := &countingSource{ResourceSource: f.res, perScanWait: 2 * time.Millisecond}
	f.svc.Resources = src
	var types []string
	for i := range 2 * cfg.MaxConcurrency {
		typ := fmt.Sprintf("Type%02d", i)
		types = append(types, typ)
		f.put(t, typ, 3)
	}
	j, err := f.svc.Kickoff(context.Background(), "c1", bulk.ExportRequest{Level: bulk.LevelSystem, Types: types})
	if err != nil {
		t.Fatal(err)
	}
	if j = f.wait(t, j.ID); j.Status != bulk.StatusCompleted {
		t.Fatalf("status = %s (%s), want completed", j.Status, j.Failure)
	}
	if want := 2 * len(types); src.scans != want { // one scan per shard
		t.Errorf("%d scans, want %d", src.scans, want)
	}
	if src.most > runtime.GOMAXPROCS(0) {
		t.Errorf("%d scans at once, want at most GOMAXPROCS (%d)", src.most, runtime.GOMAXPROCS(0))
	}
}
