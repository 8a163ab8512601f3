package bolt_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

// BenchmarkPollWhileExporting is the store's part of the bench's loaded
// latency phase (docs/benchmarks.md): 200 pollers read a running job every
// 100 ms while its items save checkpoints and scan the store, and a small
// export is kicked off every 50 ms and runs its four job writes; all with
// fsync. It reports the p50 and p99 of GetJob (the status poll's read) and
// of the kick-off's two writes: the clock's mark (TransactionTime) and the
// job (CreateJobWithin).
func BenchmarkPollWhileExporting(b *testing.B) {
	ctx := context.Background()
	db, _ := mustOpen(b, bolt.Options{})
	rs, _ := newGenerator(1, 2000, false).records(2000, 5)
	mustPut(b, db.Resources(), rs, 500)
	s := db.Jobs()
	const items = 20
	if err := s.CreateJob(ctx, &bulk.Job{ID: "sys", ClientID: "c", Status: bulk.StatusInProgress}); err != nil {
		b.Fatal(err)
	}
	if _, err := s.SavePlan(ctx, "sys", &bulk.Plan{Items: make([]bulk.Item, items)}); err != nil {
		b.Fatal(err)
	}
	var (
		stop          atomic.Bool
		mu            sync.Mutex
		polls, kicks  []time.Duration
		wg            sync.WaitGroup
		phase         = time.Duration(b.N) * time.Second
		pollers       = 200
		pollEvery     = 100 * time.Millisecond
		kickEvery     = 50 * time.Millisecond
		workers       = 2
		types         = map[string]bool{}
		checkpointGap = 20 * time.Millisecond
	)
	for _, r := range rs {
		types[r.Type] = true
	}
	record := func(dst *[]time.Duration, d time.Duration) {
		mu.Lock()
		*dst = append(*dst, d)
		mu.Unlock()
	}
	// The system export's items: scans, and a checkpoint now and then.
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := time.Now()
			for k := w; !stop.Load(); k++ {
				for typ := range types {
					_ = db.Resources().Scan(ctx, bulk.ScanRequest{Type: typ, Shard: k % db.Shards()}, func(*bulk.Resource, bulk.Cursor) error { return nil })
					if time.Since(last) > checkpointGap {
						_ = s.SaveProgress(ctx, "sys", &bulk.ItemProgress{Index: k % items, Cursor: fmt.Sprint(k)})
						last = time.Now()
					}
				}
			}
		}()
	}
	// Kick-offs and their small exports.
	wg.Add(1)
	go func() {
		defer wg.Done()
		var runs sync.WaitGroup
		defer runs.Wait()
		for i := 0; !stop.Load(); i++ {
			t := time.Now()
			id := fmt.Sprintf("k%d", i)
			if _, err := db.Resources().TransactionTime(ctx, t); err != nil {
				b.Error(err)
				return
			}
			if err := s.CreateJobWithin(ctx, &bulk.Job{ID: id, ClientID: "c", Status: bulk.StatusAccepted}, 0); err != nil {
				b.Error(err)
				return
			}
			record(&kicks, time.Since(t))
			runs.Add(1)
			go func() {
				defer runs.Done()
				_, _ = s.Transition(ctx, id, []bulk.Status{bulk.StatusAccepted}, bulk.StatusInProgress, nil)
				_, _ = s.SavePlan(ctx, id, &bulk.Plan{Items: make([]bulk.Item, 1)})
				_ = s.SaveProgress(ctx, id, &bulk.ItemProgress{Index: 0, Done: true})
				_, _ = s.Transition(ctx, id, []bulk.Status{bulk.StatusInProgress}, bulk.StatusCompleted, nil)
			}()
			time.Sleep(kickEvery - time.Since(t))
		}
	}()
	b.ResetTimer()
	deadline := time.Now().Add(phase)
	var pw sync.WaitGroup
	for range pollers {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for time.Now().Before(deadline) {
				t := time.Now()
				if _, err := s.GetJob(ctx, "sys"); err != nil {
					b.Error(err)
					return
				}
				record(&polls, time.Since(t))
				time.Sleep(pollEvery - time.Since(t))
			}
		}()
	}
	pw.Wait()
	stop.Store(true)
	wg.Wait()
	b.StopTimer()
	pct := func(ds []time.Duration, p int) float64 {
		slices.Sort(ds)
		if len(ds) == 0 {
			return 0
		}
		return float64(ds[(len(ds)-1)*p/100].Microseconds()) / 1000
	}
	b.ReportMetric(pct(polls, 50), "poll-p50-ms")
	b.ReportMetric(pct(polls, 99), "poll-p99-ms")
	b.ReportMetric(pct(kicks, 50), "kickoff-p50-ms")
	b.ReportMetric(pct(kicks, 99), "kickoff-p99-ms")
	b.ReportMetric(0, "ns/op")
}
