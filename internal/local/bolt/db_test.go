package bolt_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

// mustOpen opens a DB in a fresh directory, closes it at the end of the
// test and returns its path.
func mustOpen(tb testing.TB, opts bolt.Options) (*bolt.DB, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), bolt.FileName)
	db, err := bolt.Open(path, opts)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db, path
}

func mustPut(tb testing.TB, s bulk.ResourceSink, rs []*bulk.Resource, batch int) {
	tb.Helper()
	for start := 0; start < len(rs); start += batch {
		if err := s.Put(context.Background(), rs[start:min(start+batch, len(rs))]); err != nil {
			tb.Fatalf("Put: %v", err)
		}
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	// A directory that does not exist yet is created.
	path := filepath.Join(t.TempDir(), "data", bolt.FileName)
	db, err := bolt.Open(path, bolt.Options{Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := newGenerator(1, 200, false).records(50, 5)
	mustPut(t, db.Resources(), rs, 20)
	deletedAt := genStart.AddDate(2, 0, 0)
	if err := db.Resources().Delete(ctx, bulk.Ref{Type: rs[1].Type, ID: rs[1].ID}, deletedAt); err != nil {
		t.Fatal(err)
	}
	jobs := db.Jobs()
	job := &bulk.Job{ID: "j1", Status: bulk.StatusAccepted, CreatedAt: genStart}
	plan := &bulk.Plan{Types: []string{"Patient"}, Items: []bulk.Item{{Index: 0, Type: "Patient", Shards: []int{0, 1, 2, 3}}}}
	progress := &bulk.ItemProgress{Index: 0, Cursor: "c", Part: 1}
	if err := jobs.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.SavePlan(ctx, "j1", plan); err != nil {
		t.Fatal(err)
	}
	if err := jobs.SaveProgress(ctx, "j1", progress); err != nil {
		t.Fatal(err)
	}
	countsBefore, err := db.Resources().Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// A different Shards option does not change a file's shards.
	db, err = bolt.Open(path, bolt.Options{Shards: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := db.Resources()
	if got := s.Shards(); got != 4 {
		t.Errorf("Shards() after reopening with Shards: 8 = %d, want the stored 4", got)
	}
	for i, want := range rs {
		got, err := s.Get(ctx, want.Type, want.ID)
		if i == 1 {
			if bulk.ErrorCode(err) != bulk.ENOTFOUND {
				t.Errorf("Get(deleted %s) after reopen error = %v, want %s", want.ID, err, bulk.ENOTFOUND)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Get(%s, %s) after reopen: %v", want.Type, want.ID, err)
		}
		if diff := gocmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Get(%s) after reopen mismatch (-want +got):\n%s", want.ID, diff)
		}
	}
	counts, err := s.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff(countsBefore, counts); diff != "" {
		t.Errorf("Count() after reopen mismatch (-before +after):\n%s", diff)
	}
	var tombstones []bulk.Tombstone
	if err := s.Tombstones(ctx, rs[1].Type, bulk.Range{Until: deletedAt}, func(ts bulk.Tombstone) error {
		tombstones = append(tombstones, ts)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []bulk.Tombstone{{Type: rs[1].Type, ID: rs[1].ID, DeletedAt: deletedAt, Patients: rs[1].Patients}}; !gocmp.Equal(want, tombstones, cmpopts.EquateEmpty()) {
		t.Errorf("Tombstones after reopen = %v, want %v", tombstones, want)
	}

	jobs = db.Jobs()
	if got, err := jobs.GetJob(ctx, "j1"); err != nil {
		t.Errorf("GetJob(j1) after reopen: %v", err)
	} else if got.ItemsTotal != 1 || got.Status != bulk.StatusAccepted {
		t.Errorf("GetJob(j1) after reopen = %+v, want accepted with 1 item", got)
	}
	if got, err := jobs.GetPlan(ctx, "j1"); err != nil || !gocmp.Equal(plan, got, cmpopts.EquateEmpty()) {
		t.Errorf("GetPlan(j1) after reopen = %+v, %v; want %+v", got, err, plan)
	}
	if got, err := jobs.Progress(ctx, "j1"); err != nil || !gocmp.Equal([]*bulk.ItemProgress{progress}, got, cmpopts.EquateEmpty()) {
		t.Errorf("Progress(j1) after reopen = %v, %v; want [%+v]", got, err, progress)
	}
}

func TestOpenLocked(t *testing.T) {
	_, path := mustOpen(t, bolt.Options{})
	start := time.Now()
	db, err := bolt.Open(path, bolt.Options{Timeout: 50 * time.Millisecond})
	if err == nil {
		db.Close()
		t.Fatal("Open of a data dir that is open elsewhere succeeded")
	}
	if bulk.ErrorCode(err) != bulk.ECONFLICT || !strings.Contains(bulk.ErrorMessage(err), "in use by another tranche process") {
		t.Errorf("Open of a locked data dir = %v; want %s saying it is in use by another tranche process", err, bulk.ECONFLICT)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open of a locked data dir took %v with a 50ms timeout", d)
	}
}

func TestOpenOptions(t *testing.T) {
	for _, shards := range []int{-1, bolt.MaxShards + 1} {
		if db, err := bolt.Open(filepath.Join(t.TempDir(), bolt.FileName), bolt.Options{Shards: shards}); bulk.ErrorCode(err) != bulk.EINVALID {
			if err == nil {
				db.Close()
			}
			t.Errorf("Open(Shards: %d) error = %v, want %s", shards, err, bulk.EINVALID)
		}
	}
	db, _ := mustOpen(t, bolt.Options{})
	if got := db.Resources().Shards(); got != bolt.DefaultShards {
		t.Errorf("Shards() of a new file with default options = %d, want %d", got, bolt.DefaultShards)
	}
	db, _ = mustOpen(t, bolt.Options{Shards: bolt.MaxShards})
	if got := db.Resources().Shards(); got != bolt.MaxShards {
		t.Errorf("Shards() = %d, want %d", got, bolt.MaxShards)
	}
}

func TestPutInvalid(t *testing.T) {
	db, _ := mustOpen(t, bolt.Options{NoSync: true})
	s := db.Resources()
	ok := &bulk.Resource{Type: "Patient", ID: "ok", LastUpdated: genStart}
	for name, r := range map[string]*bulk.Resource{
		"NUL in id":        {Type: "Patient", ID: "a\x00b", LastUpdated: genStart},
		"NUL in patient":   {Type: "Observation", ID: "o", LastUpdated: genStart, Patients: []string{"p\x00"}},
		"zero lastUpdated": {Type: "Patient", ID: "z"},
		"year 3000":        {Type: "Patient", ID: "y", LastUpdated: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if err := s.Put(context.Background(), []*bulk.Resource{ok, r}); bulk.ErrorCode(err) != bulk.EINVALID {
			t.Errorf("Put(%s) error = %v, want %s", name, err, bulk.EINVALID)
		}
	}
	// A rejected batch stores nothing.
	if _, err := s.Get(context.Background(), "Patient", "ok"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("Get of a resource from a rejected batch error = %v, want %s", err, bulk.ENOTFOUND)
	}
	err := s.Scan(context.Background(), bulk.ScanRequest{Type: "Patient", Shard: s.Shards(), Range: bulk.Range{Until: genStart}},
		func(*bulk.Resource, bulk.Cursor) error { return nil })
	if bulk.ErrorCode(err) != bulk.EINVALID {
		t.Errorf("Scan of shard %d of %d error = %v, want %s", s.Shards(), s.Shards(), err, bulk.EINVALID)
	}
	err = s.Scan(context.Background(), bulk.ScanRequest{Type: "Patient", Range: bulk.Range{Until: genStart}, Cursor: "garbage"},
		func(*bulk.Resource, bulk.Cursor) error { return nil })
	if bulk.ErrorCode(err) != bulk.EINVALID {
		t.Errorf("Scan with a bad cursor error = %v, want %s", err, bulk.EINVALID)
	}
}

// TestStats checks the read counters and that a Group export of 10 patients
// reads at most 1 % of a store's resources: their compartments, not the
// table.
func TestStats(t *testing.T) {
	ctx := context.Background()
	db, _ := mustOpen(t, bolt.Options{NoSync: true})
	s := db.Resources()
	const perPatient = 10
	n := 30_000
	if testing.Short() {
		n = 3_000
	}
	rs, patients := newGenerator(2, 100, true).records(n, perPatient)
	mustPut(t, s, rs, 1000)
	members := patients[:10]
	group := &bulk.Resource{Type: "Group", ID: "g1", LastUpdated: genStart, Body: []byte(`{}`), Patients: members, Members: members}
	mustPut(t, s, []*bulk.Resource{group}, 1)

	before := db.Stats()
	if _, err := s.Get(ctx, rs[0].Type, rs[0].ID); err != nil {
		t.Fatal(err)
	}
	if d := diffStats(before, db.Stats()); d.ItemsRead != 2 || d.BodiesRead != 1 || d.BodyBytesRead < int64(len(rs[0].Body)) {
		t.Errorf("Get read %+v, want 2 items, 1 body of at least %d bytes", d, len(rs[0].Body))
	}

	// A Group export: the members, then each member's compartment.
	before = db.Stats()
	got, err := s.GroupMembers(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	exported := 0
	for _, p := range got {
		if err := s.Compartment(ctx, p, nil, func(*bulk.Resource, bulk.Cursor) error { exported++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	d := diffStats(before, db.Stats())
	if want := 10*perPatient + 10; exported != want { // each member's resources and the Group itself
		t.Errorf("Group export visited %d resources, want %d", exported, want)
	}
	if d.BodiesRead != int64(exported) {
		t.Errorf("Group export read %d bodies for %d resources", d.BodiesRead, exported)
	}
	ratio := float64(d.ItemsRead) / float64(len(rs)+1)
	t.Logf("Group export of 10 patients read %d items (%d bodies) of a %d-resource store: %.2f%%", d.ItemsRead, d.BodiesRead, len(rs)+1, 100*ratio)
	if !testing.Short() && ratio > 0.01 {
		t.Errorf("Group export of 10 patients read %d items = %.2f%% of %d resources, want ≤ 1%%", d.ItemsRead, 100*ratio, len(rs)+1)
	}

	// A full scan reads each body once, plus one key per shard that ends it.
	before = db.Stats()
	var scanned int64
	for shard := range s.Shards() {
		err := s.Scan(ctx, bulk.ScanRequest{Type: "Observation", Shard: shard, Range: bulk.Range{Until: genStart.AddDate(10, 0, 0)}},
			func(*bulk.Resource, bulk.Cursor) error { scanned++; return nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	d = diffStats(before, db.Stats())
	if d.BodiesRead != scanned || d.ItemsRead > scanned+int64(s.Shards())+scanned/1000+1 {
		t.Errorf("Scan of %d Observations read %+v, want %d bodies and about as many items", scanned, d, scanned)
	}
}

func diffStats(a, b bolt.Stats) bolt.Stats {
	return bolt.Stats{ItemsRead: b.ItemsRead - a.ItemsRead, BodiesRead: b.BodiesRead - a.BodiesRead, BodyBytesRead: b.BodyBytesRead - a.BodyBytesRead}
}

// TestScanWritesInVisit checks that a visit may write to the same file (an
// export item recording progress) while a long scan runs: reads hold no
// transaction across visits, so bbolt's remap lock cannot deadlock.
func TestScanWritesInVisit(t *testing.T) {
	ctx := context.Background()
	// One shard, so the scan is long enough to grow the file many times.
	db, _ := mustOpen(t, bolt.Options{Shards: 1, NoSync: true})
	defer bolt.SetChunkLimits(16, 1<<20)()
	s := db.Resources()
	rs, _ := newGenerator(3, 100, false).records(200, 10)
	mustPut(t, s, rs, 100)
	if err := db.Jobs().CreateJob(ctx, &bulk.Job{ID: "j1", Status: bulk.StatusInProgress}); err != nil {
		t.Fatal(err)
	}
	big := slices.Repeat([]byte("x"), 64<<10)
	visited, i := 0, 0
	done := make(chan error, 1)
	go func() {
		done <- s.Scan(ctx, bulk.ScanRequest{Type: "Observation", Shard: 0, Range: bulk.Range{Until: genStart.AddDate(10, 0, 0)}},
			func(r *bulk.Resource, next bulk.Cursor) error {
				visited++
				// Grow the file while the scan runs, so bbolt has to remap.
				i++
				if err := db.Jobs().SaveProgress(ctx, "j1", &bulk.ItemProgress{Index: i, Cursor: string(next) + string(big)}); err != nil {
					return err
				}
				return nil
			})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Scan with writes in its visit did not finish: deadlock")
	}
	if visited == 0 {
		t.Fatal("Scan visited nothing")
	}
}
