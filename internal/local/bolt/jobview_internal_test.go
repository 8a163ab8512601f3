package bolt

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"go.etcd.io/bbolt"

	"github.com/tranchehq/tranche/internal/bulk"
)

func openJobsDB(tb testing.TB, opts Options) *DB {
	tb.Helper()
	db, err := Open(filepath.Join(tb.TempDir(), FileName), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// fileJob reads job id from the file, past the view: what GetJob answered
// before the view existed.
func fileJob(tb testing.TB, db *DB, id string) (*bulk.Job, error) {
	tb.Helper()
	var j *bulk.Job
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		var err error
		j, err = getJob(tx, id)
		return err
	})
	return j, err
}

// checkViewMatchesFile: GetJob (the view) answers what the file holds for
// every id, the jobs that exist and the ones deleted or never made.
func checkViewMatchesFile(t *testing.T, db *DB, ids []string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		want, werr := fileJob(t, db, id)
		got, gerr := db.Jobs().GetJob(ctx, id)
		if bulk.ErrorCode(gerr) != bulk.ErrorCode(werr) {
			t.Errorf("GetJob(%s) error = %v; the file's = %v", id, gerr, werr)
			continue
		}
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("GetJob(%s) from the view differs from the file (-file +view):\n%s", id, diff)
		}
	}
}

// TestJobView_MatchesFile: after concurrent writes of every kind, some of
// them refused (conflicts, quota), the status a poll reads from memory is
// the status the file holds, and a fresh process (which holds nothing in
// memory) reads the same.
func TestJobView_MatchesFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s := db.Jobs()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const jobs, items = 24, 6
	var ids []string
	for i := range jobs {
		ids = append(ids, fmt.Sprintf("j%02d", i))
	}
	ids = append(ids, "never-made")
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for _, i := range r.Perm(jobs) {
				id := ids[i]
				// Every writer tries every job: one creates it, the others
				// conflict; progress of a finished job conflicts too.
				_ = s.CreateJobWithin(ctx, &bulk.Job{ID: id, ClientID: fmt.Sprintf("c%d", i%3), Status: bulk.StatusAccepted,
					Request: bulk.ExportRequest{Level: bulk.LevelSystem, Types: []string{"Patient"}}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, 6)
				_, _ = s.Transition(ctx, id, []bulk.Status{bulk.StatusAccepted}, bulk.StatusInProgress, nil)
				_, _ = s.SavePlan(ctx, id, &bulk.Plan{Types: []string{"Patient"}, Items: make([]bulk.Item, items)})
				for k := range items {
					_ = s.SaveProgress(ctx, id, &bulk.ItemProgress{Index: k, Done: r.IntN(2) == 0, Part: w})
				}
				switch r.IntN(4) {
				case 0:
					_, _ = s.Transition(ctx, id, []bulk.Status{bulk.StatusInProgress}, bulk.StatusCompleted, func(j *bulk.Job) { j.ExpiresAt = t0.Add(2 * time.Hour) })
				case 1:
					_, _ = s.Transition(ctx, id, []bulk.Status{bulk.StatusAccepted, bulk.StatusInProgress}, bulk.StatusFailed, func(j *bulk.Job) { j.Failure = "failed" })
				case 2:
					_ = s.DeleteJob(ctx, id)
				}
			}
		}()
	}
	wg.Wait()
	checkViewMatchesFile(t, db, ids)
	viewed := map[string]*bulk.Job{}
	for _, id := range ids {
		if j, err := s.GetJob(ctx, id); err == nil {
			viewed[id] = j
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, id := range ids {
		j, err := db.Jobs().GetJob(ctx, id)
		if want := viewed[id]; want == nil {
			if bulk.ErrorCode(err) != bulk.ENOTFOUND {
				t.Errorf("after reopening, GetJob(%s) = %v, %v; the view had none", id, j, err)
			}
		} else if diff := gocmp.Diff(want, j); diff != "" {
			t.Errorf("after reopening, GetJob(%s) differs from the view before (-view +file):\n%s", id, diff)
		}
	}
	checkViewMatchesFile(t, db, ids)
}

// TestJobView_Monotonic: a poller never sees a job go back: while the job's
// items finish one by one, ItemsDone read through the view only grows, and
// once SaveProgress returns, a poll sees it.
func TestJobView_Monotonic(t *testing.T) {
	ctx := context.Background()
	db := openJobsDB(t, Options{NoSync: true})
	s := db.Jobs()
	const items = 300
	if err := s.CreateJob(ctx, &bulk.Job{ID: "j", ClientID: "c", Status: bulk.StatusInProgress}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				j, err := s.GetJob(ctx, "j")
				if err != nil {
					errs <- err
					return
				}
				if j.ItemsDone < seen {
					errs <- fmt.Errorf("ItemsDone went back from %d to %d", seen, j.ItemsDone)
					return
				}
				seen = j.ItemsDone
			}
		}()
	}
	var writers sync.WaitGroup
	for w := range 3 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for k := w; k < items; k += 3 {
				if err := s.SaveProgress(ctx, "j", &bulk.ItemProgress{Index: k, Done: true}); err != nil {
					errs <- err
					return
				}
				if j, err := s.GetJob(ctx, "j"); err != nil || j.ItemsDone < 1 {
					errs <- fmt.Errorf("GetJob right after SaveProgress = %v, %v; want the item counted", j, err)
					return
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if j, err := s.GetJob(ctx, "j"); err != nil || j.ItemsDone != items {
		t.Errorf("GetJob(j) = %+v, %v; want ItemsDone %d", j, err, items)
	}
}

// TestJobView_Bounded: past maxJobView jobs the view starts over and GetJob
// reads the file again, with the same answers.
func TestJobView_Bounded(t *testing.T) {
	ctx := context.Background()
	defer func(n int) { maxJobView = n }(maxJobView)
	maxJobView = 64
	db := openJobsDB(t, Options{NoSync: true})
	s := db.Jobs()
	n := 3*maxJobView + 10
	var ids []string
	for i := range n {
		id := fmt.Sprintf("j%05d", i)
		ids = append(ids, id)
		if err := s.CreateJob(ctx, &bulk.Job{ID: id, ClientID: "c", Status: bulk.StatusAccepted}); err != nil {
			t.Fatal(err)
		}
	}
	db.jobs.mu.Lock()
	held := len(db.jobs.m)
	db.jobs.mu.Unlock()
	if held > maxJobView {
		t.Errorf("the view holds %d jobs, want at most %d", held, maxJobView)
	}
	if err := s.DeleteJob(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	checkViewMatchesFile(t, db, ids)
}

// TestJobView_Order: an older value never replaces a newer one, whichever
// tells the view first; reads older than what the view forgot are not
// kept.
func TestJobView_Order(t *testing.T) {
	var w jobView
	w.wrote("a", []byte("v2"), 12)
	w.wrote("a", []byte("v1"), 11) // a commit whose handler ran late
	w.read("a", []byte("v0"), 10)  // a read that began before both
	if v, ok := w.get("a"); !ok || string(v) != "v2" {
		t.Errorf("get(a) = %q, %v; want v2", v, ok)
	}
	w.wrote("a", nil, 13) // deleted
	w.read("a", []byte("v2"), 12)
	if v, ok := w.get("a"); !ok || v != nil {
		t.Errorf("get(a) after the delete = %q, %v; want deleted", v, ok)
	}
	w.wrote("b", []byte("b1"), 13)
	w.wrote("b", []byte("b2"), 13) // a later write of the same batch
	if v, _ := w.get("b"); string(v) != "b2" {
		t.Errorf("get(b) = %q, want the batch's later write b2", v)
	}
	w.mu.Lock()
	clear(w.m) // as store does when full
	w.floor = max(w.floor, w.last)
	w.mu.Unlock()
	w.read("b", []byte("b0"), 12) // began before the forgotten write
	if _, ok := w.get("b"); ok {
		t.Error("a read older than the forgotten values was kept")
	}
	w.read("b", []byte("b2"), 13)
	if v, _ := w.get("b"); string(v) != "b2" {
		t.Errorf("get(b) = %q, want b2 read at the latest transaction", v)
	}
	w.stop()
	w.wrote("c", []byte("c1"), 14)
	if _, ok := w.get("c"); ok {
		t.Error("a stopped view kept a value")
	}
}

// TestBatch_GroupCommit: writes that arrive while a commit is under way
// share the next transaction; each gets its own result, a refused one its
// own error, and the others commit as if run one by one.
func TestBatch_GroupCommit(t *testing.T) {
	ctx := context.Background()
	db := openJobsDB(t, Options{NoSync: true})
	s := db.Jobs()
	for _, id := range []string{"done", "running"} {
		if err := s.CreateJob(ctx, &bulk.Job{ID: id, ClientID: "c", Status: bulk.StatusInProgress}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Transition(ctx, "done", []bulk.Status{bulk.StatusInProgress}, bulk.StatusCompleted, nil); err != nil {
		t.Fatal(err)
	}
	before := txID(t, db)

	// Hold the writer lock, so the writes below queue.
	hold, held := make(chan struct{}), make(chan struct{})
	go func() {
		_ = db.bolt.Update(func(*bbolt.Tx) error { close(held); <-hold; return nil })
	}()
	<-held
	const n = 20
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.SaveProgress(ctx, "running", &bulk.ItemProgress{Index: i, Done: true})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[n] = s.SaveProgress(ctx, "done", &bulk.ItemProgress{Index: 0, Done: true}) // terminal: ECONFLICT
	}()
	waitQueued(t, db, n) // the leader waits for the lock; the rest queue
	close(hold)
	wg.Wait()
	for i, err := range errs[:n] {
		if err != nil {
			t.Errorf("SaveProgress(running, %d): %v", i, err)
		}
	}
	if bulk.ErrorCode(errs[n]) != bulk.ECONFLICT {
		t.Errorf("SaveProgress(done) error = %v, want %s", errs[n], bulk.ECONFLICT)
	}
	j, err := s.GetJob(ctx, "running")
	if err != nil || j.ItemsDone != n {
		t.Errorf("GetJob(running) = %+v, %v; want ItemsDone %d", j, err, n)
	}
	if got, _ := fileJob(t, db, "running"); got == nil || got.ItemsDone != n {
		t.Errorf("the file's job = %+v, want ItemsDone %d", got, n)
	}
	// The held transaction, the leader's, and at most two more: the
	// batch without the refused write and that write alone (which
	// commits nothing).
	if commits := txID(t, db) - before; commits > 4 {
		t.Errorf("%d writes took %d commits, want them batched into at most 4", n+1, commits)
	}
}

// TestBatch_Panic: a write that panics in a batch panics in its own
// caller, and the writes batched with it commit.
func TestBatch_Panic(t *testing.T) {
	db := openJobsDB(t, Options{NoSync: true})
	hold, held := make(chan struct{}), make(chan struct{})
	go func() {
		_ = db.bolt.Update(func(*bbolt.Tx) error { close(held); <-hold; return nil })
	}()
	<-held
	put := func(k string) func(tx *bbolt.Tx) error {
		return func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte(k), []byte("v")) }
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	var recovered any
	for i, fn := range []func(*bbolt.Tx) error{put("a"), func(*bbolt.Tx) error { panic("boom") }, put("b")} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if v := recover(); v != nil {
					recovered = v
				}
			}()
			errs[i] = db.batch(fn)
		}()
	}
	waitQueued(t, db, 2)
	close(hold)
	wg.Wait()
	if recovered != "boom" {
		t.Errorf("the panicking write's caller recovered %v, want boom", recovered)
	}
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("the other writes: %v, %v; want nil", errs[0], errs[2])
	}
	_ = db.bolt.View(func(tx *bbolt.Tx) error {
		for _, k := range []string{"a", "b"} {
			if tx.Bucket(bucketMeta).Get([]byte(k)) == nil {
				t.Errorf("key %s batched with a panicking write was not committed", k)
			}
		}
		return nil
	})
}

// waitQueued waits until n writes wait in the batch queue behind a leader.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		db.group.mu.Lock()
		q := len(db.group.queue)
		db.group.mu.Unlock()
		if q >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func txID(t *testing.T, db *DB) int {
	t.Helper()
	var id int
	if err := db.bolt.View(func(tx *bbolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}
