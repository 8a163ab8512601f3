// Package bolt is Tranche's embedded store: resources, their indexes and
// export jobs in one bbolt file, DIR/tranche.db (FileName). It is pure Go, so the local
// binary needs nothing else installed.
//
// Layout (every multi-byte number is big-endian; times are UnixNano with the
// sign bit flipped so that byte order is time order):
//
//	meta               "layout" → 1 byte; "shards" → 2 bytes; "clock" → 8 bytes (the
//	                   lastUpdated clock's high-water mark, see clock.go)
//	counts             type → live resources (8 bytes)
//	r:<type>           shard(1) + lastUpdated(8) + id → header + body
//	i:<type>           id → 'L' + lastUpdated(8) | 'D' + deletedAt(8)
//	t:<type>           deletedAt(8) + id → patients of the deleted version, as in a header ("" in files written before: unknown)
//	pc                 patient 0x00 type 0x00 id → lastUpdated(8)
//	gm                 group 0x00 patient → joined (8: the lastUpdated of the first Group version listing the patient)
//	jobs, plans        job id → JSON
//	progress           job id 0x00 item index(4) → JSON
//
// A scan is a range of r:<type> keys, so bodies come off the pages in key
// order with no second lookup. The header in front of each body holds the
// resource's patients and Group members: a scan needs the first, and replacing
// or deleting a resource needs both to remove its old index entries.
package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tranchehq/tranche/internal/bulk"
)

// FileName is the conventional name of the database file inside the data
// directory.
const FileName = "tranche.db"

// layoutVersion is stored in the file and bumped when the layout changes, so
// an old binary refuses a newer file instead of misreading it.
const layoutVersion = 1

// pageSize is the bbolt page size of new files.
const pageSize = 16 << 10

// DefaultShards is the number of shards per type of a new file.
const DefaultShards = 16

// MaxShards is the largest number of shards: the shard is one key byte.
const MaxShards = 256

// Options configure Open. The zero value is usable.
type Options struct {
	// Shards is the number of shards per type of a new file (default
	// DefaultShards). It is fixed when the file is created; opening an
	// existing file keeps the stored value whatever Shards says.
	Shards int
	// Timeout bounds the wait for the file lock another process holds
	// (default 1 s).
	Timeout time.Duration
	// NoSync skips fsync on commit: fast, and a crash may lose the last
	// writes or corrupt the file. For tests, benchmarks and throw-away
	// imports.
	NoSync bool
}

// DB is an open data file. Its stores are safe for concurrent use.
type DB struct {
	bolt   *bbolt.DB
	shards int
	stats  counters
	clock  *bulk.LocalClock // see clock.go
	group  writeGroup       // batch's group commit
	jobs   jobView          // the jobs bucket as last committed (jobs.go)
}

// Stats are read counters since Open, for benchmarks and for showing that an
// export reads only what it returns.
type Stats struct {
	// ItemsRead counts stored entries read by scans, compartment reads,
	// lists and gets: index entries and resource bodies alike.
	ItemsRead int64
	// BodiesRead counts the resource bodies among them, and BodyBytesRead
	// their size.
	BodiesRead    int64
	BodyBytesRead int64
}

type counters struct {
	items, bodies, bodyBytes atomic.Int64
	// unreleased estimates the mapped bytes made resident since the last
	// release (see meter).
	unreleased atomic.Int64
	release    func()
}

// add records a finished chunk of reads. Callers count locally and add once
// per chunk, so parallel scans do not contend on the counters.
func (c *counters) add(items, bodies, bodyBytes int64) {
	c.items.Add(items)
	c.bodies.Add(bodies)
	c.bodyBytes.Add(bodyBytes)
}

// Releasing the mapped pages.
//
// bbolt maps the whole file read-only and reads every page through the
// mapping; Linux counts each mapped page in the process's RSS until it is
// unmapped, so a server that exports its whole store would end up with the
// whole file resident. So reads and writes estimate how much of the mapping
// they made resident, and every releaseEvery estimated bytes the mapping's
// pages are dropped from the resident set (DB.release). They stay in the
// kernel's page cache: reading them again is a minor fault, not I/O.
//
// The estimate counts fault-around windows, not bytes read: a read fault on
// a file mapping maps the page-cache pages around the faulting address too
// (Linux's fault_around_bytes, 64 KB by default), and the leaves of a tree
// filled in random key order are scattered over the file. Touching one
// 16 KB leaf therefore costs 64 KB of RSS, and a Group export's lookups
// (one random leaf per body) cost 64 KB per resource. Counting body bytes
// instead, as an earlier version did, let a 1M-resource Group export of 959
// resources leave 80 MB resident and made peak RSS grow with the store.
const (
	faultShift  = 16
	faultAround = 1 << faultShift
)

// releaseEvery is how many estimated resident bytes of the mapping are
// allowed between two releases. A release costs a read transaction and one
// madvise over the mapping (tens of microseconds on a 2 GB store) plus the
// minor faults of reading the dropped pages again.
const releaseEvery = 8 << 20

// chargeEvery is how much a meter accumulates before adding to the shared
// counter, so parallel scans rarely touch it.
const chargeEvery = 1 << 20

// meter estimates the mapped bytes one read makes resident: each distinct
// fault-around window its slices point into counts faultAround. It tracks
// two streams (an index cursor and the bodies it looks up) so that
// alternating between two pages does not count them over and over.
type meter struct {
	last    [2]uintptr
	pending int64
}

// begin starts a read transaction's metering: pages touched before it may
// have been released since.
func (m *meter) begin() { m.last = [2]uintptr{} }

// touch records that stream i read p, a slice of the mapping.
func (m *meter) touch(i int, p []byte) {
	if len(p) == 0 {
		return
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(p))) >> faultShift
	hi := (uintptr(unsafe.Pointer(unsafe.SliceData(p))) + uintptr(len(p)) - 1) >> faultShift
	if lo == m.last[i] {
		lo++
	}
	if hi >= lo {
		m.pending += int64(hi-lo+1) << faultShift
	}
	m.last[i] = hi
}

// charge adds m's estimate to the DB's, releasing the mapped pages when
// they reach releaseEvery. It runs inside tx, a read transaction, which
// keeps the mapping in place (bbolt remaps only when no read transaction
// is open), so it releases directly rather than through db.release.
func (db *DB) charge(tx *bbolt.Tx, m *meter) {
	if m.pending == 0 {
		return
	}
	n := m.pending
	m.pending = 0
	if db.stats.unreleased.Add(n) >= releaseEvery {
		db.stats.unreleased.Store(0)
		dropResident(db.bolt.Info().Data, tx.Size())
		m.begin()
	}
}

// wrote charges n estimated resident bytes from a write transaction, after
// it closed.
func (c *counters) wrote(n int64) {
	if c.release != nil && n > 0 && c.unreleased.Add(n) >= releaseEvery {
		c.unreleased.Store(0)
		c.release()
	}
}

// update runs fn in a write transaction and charges the pages the commit
// wrote: writes go through the file, not the mapping, but every page a
// commit writes is at a new place, which the next reads (the commit's own
// B+tree lookups first) fault in. Small commits (a job's progress, a
// token's jti) would otherwise add 64 KB windows for as long as the server
// runs; an insert also read the leaves it rewrote, one per page written.
func (db *DB) update(fn func(*bbolt.Tx) error) error {
	var written int64
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		tx.OnCommit(func() { st := tx.Stats(); written = st.GetWrite() })
		return fn(tx)
	})
	db.stats.wrote(written * faultAround)
	return err
}

// batch is update for writes that may share a write transaction (group
// commit): while one commit is under way, the writes that arrive wait and
// then commit together, in one transaction and its two fsyncs, instead of
// one after another behind bbolt's single writer lock. A write that finds
// no commit under way commits at once, so a lone write waits no longer
// than with update. The writes of one batch run one after another in its
// transaction, each seeing the ones before, exactly as if each had its own
// transaction in that order.
//
// Not bbolt's DB.Batch: that one holds every write until MaxBatchDelay
// (10 ms by default) passes or MaxBatchSize calls gather, so a lone
// kick-off would wait 10 ms against a 20 ms p99 target (issue 20).
//
// fn may run more than once: when one write of a batch fails, the
// transaction is rolled back, the others run again without it, and it runs
// again alone (its error is then its own). So fn, like an update's, must
// have no effect outside tx but assignments that its last run overwrites,
// and it must not call the DB. Effects that need the commit go in
// tx.OnCommit, which runs only for the transaction that commits.
func (db *DB) batch(fn func(*bbolt.Tx) error) error {
	g := &db.group
	c := &groupCall{fn: fn, res: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if g.busy {
		// A commit is under way: its leader hands this call a result, or
		// the lead of the next batch.
		g.mu.Unlock()
		switch err := <-c.res; err {
		case errLead:
		case errAlone:
			return db.alone(fn)
		default:
			return err
		}
		g.mu.Lock()
	}
	g.busy = true
	n := min(len(g.queue), maxBatch)
	calls := slices.Clone(g.queue[:n])
	g.queue = slices.Delete(g.queue, 0, n)
	g.mu.Unlock()

	db.commitGroup(calls)

	// The next batch is led by the first call that waits, not by this
	// one, whose own write is done.
	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		g.mu.Unlock()
		next.res <- errLead
	} else {
		g.busy = false
		g.mu.Unlock()
	}
	if err := <-c.res; err != errAlone {
		return err
	}
	return db.alone(fn)
}

// alone is a batch's write run in a transaction of its own.
func (db *DB) alone(fn func(*bbolt.Tx) error) error {
	ran := false
	err := db.update(func(tx *bbolt.Tx) error {
		err := fn(tx)
		ran = err == nil
		return err
	})
	if err != nil && ran {
		db.commitFailed()
	}
	return err
}

// commitFailed is told when a batch's commit failed: bbolt may have
// written its meta page, so what the file holds is not known any more, and
// the job view stops answering (jobView.stop).
func (db *DB) commitFailed() { db.jobs.stop() }

// maxBatch bounds the writes of one batch, so one transaction's work (and
// the wait of its first write) stays small.
const maxBatch = 128

// writeGroup is the queue of batch's writes. busy is set while a leader
// commits; the queue is non-empty only while busy.
type writeGroup struct {
	mu    sync.Mutex
	busy  bool
	queue []*groupCall
}

type groupCall struct {
	fn  func(*bbolt.Tx) error
	res chan error // the result, errLead or errAlone; buffered, received once each
}

var (
	errLead  = errors.New("bolt: lead the next batch")
	errAlone = errors.New("bolt: run alone")
)

// commitGroup runs calls in one write transaction and sends each its
// result. When one fails it is told to run alone (errAlone) and the rest
// run again without it; one that fails alone gets its error, unless it
// panicked, which it then does again in its own goroutine.
func (db *DB) commitGroup(calls []*groupCall) {
	for len(calls) > 0 {
		failed, panicked := -1, false
		err := db.update(func(tx *bbolt.Tx) error {
			for i, c := range calls {
				err, p := callSafely(c.fn, tx)
				if err != nil {
					failed, panicked = i, p
					return err
				}
			}
			return nil
		})
		if failed < 0 || (len(calls) == 1 && !panicked) {
			// Committed (err nil), or the commit itself failed, which no
			// call can be taken out of; or the one call's own error.
			if failed < 0 && err != nil {
				db.commitFailed()
			}
			for _, c := range calls {
				c.res <- err
			}
			return
		}
		calls[failed].res <- errAlone
		calls = slices.Delete(calls, failed, failed+1)
	}
}

// callSafely runs fn, turning a panic into an error.
func callSafely(fn func(*bbolt.Tx) error, tx *bbolt.Tx) (err error, panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			err, panicked = fmt.Errorf("panic in a batched write: %v", v), true
		}
	}()
	return fn(tx), false
}

// releaseResident drops the mapped file's pages from this process's
// resident set (madvise MADV_DONTNEED). It runs inside a read transaction:
// bbolt only remaps the file when no read transaction is open, so the range
// is the live mapping.
func (db *DB) releaseResident() {
	_ = db.bolt.View(func(tx *bbolt.Tx) error {
		dropResident(db.bolt.Info().Data, tx.Size())
		return nil
	})
}

var (
	bucketMeta     = []byte("meta")
	bucketCounts   = []byte("counts")
	bucketPC       = []byte("pc")
	bucketGM       = []byte("gm")
	bucketJobs     = []byte("jobs")
	bucketPlans    = []byte("plans")
	bucketProgress = []byte("progress")

	keyLayout = []byte("layout")
	keyShards = []byte("shards")
)

// Open opens the data file at path (by convention DIR/FileName), creating it
// and its directory as needed. It returns ECONFLICT if another process holds
// the file for longer than opts.Timeout.
func Open(path string, opts Options) (*DB, error) {
	db, err := open(path, opts)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, errInUse(filepath.Dir(path), opts.Timeout, err)
	}
	return db, err
}

// errInUse is Open's ECONFLICT. Its text is the message alone: commands
// print it as it is, and an operator has no use for a call trace here.
func errInUse(dir string, timeout time.Duration, cause error) error {
	if timeout <= 0 {
		timeout = time.Second
	}
	return inUseError{bulk.Wrapf(cause, bulk.ECONFLICT,
		"The data directory %s is in use by another tranche process (a running tranche serve, or an import): its lock was not released within %v.", dir, timeout)}
}

type inUseError struct{ e *bulk.Error }

func (e inUseError) Error() string { return e.e.Message }
func (e inUseError) Unwrap() error { return e.e }

func open(path string, opts Options) (_ *DB, err error) {
	defer bulk.Wrap(&err, "bolt.Open(%q)", path)
	dir := filepath.Dir(path)
	if opts.Shards == 0 {
		opts.Shards = DefaultShards
	}
	if opts.Shards < 1 || opts.Shards > MaxShards {
		return nil, bulk.Errorf(bulk.EINVALID, "Shards must be between 1 and %d, not %d.", MaxShards, opts.Shards)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: opts.Timeout,
		NoSync:  opts.NoSync,
		// Growing the file fsyncs even under NoSync unless told not to:
		// a fifth of a NoSync import's time.
		NoGrowSync: opts.NoSync,
		// 16 KB pages hold ~14 one-kilobyte bodies instead of 3: measured
		// on 100k resources, scans run 40% faster and imports 20% faster
		// than with 4 KB pages. Fixed when the file is created.
		PageSize: pageSize,
		// The hashmap freelist stays fast in a large, fragmented file. It
		// is synced on commit: without it Open rebuilds the freelist by
		// reading every page, which on a 2 GB store costs seconds at every
		// start and puts the whole file in the server's resident set.
		FreelistType: bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, err // a timeout becomes Open's ECONFLICT
	}
	db := &DB{bolt: b}
	db.stats.release = db.releaseResident
	if err := b.Update(func(tx *bbolt.Tx) error { return db.init(tx, opts.Shards) }); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// init creates the fixed buckets and reads the layout version and the shard
// count, storing them in a new file.
func (db *DB) init(tx *bbolt.Tx, shards int) error {
	for _, name := range [][]byte{bucketMeta, bucketCounts, bucketPC, bucketGM, bucketJobs, bucketPlans, bucketProgress} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keyLayout); v == nil {
		if err := meta.Put(keyLayout, []byte{layoutVersion}); err != nil {
			return err
		}
		if err := meta.Put(keyShards, binary.BigEndian.AppendUint16(nil, uint16(shards))); err != nil {
			return err
		}
	} else if len(v) != 1 || v[0] != layoutVersion {
		return bulk.Errorf(bulk.EINTERNAL, "The data file has layout %v; this tranche reads layout %d.", v, layoutVersion)
	}
	v := meta.Get(keyShards)
	if len(v) != 2 {
		return bulk.Errorf(bulk.EINTERNAL, "The data file has no valid shard count.")
	}
	db.shards = int(binary.BigEndian.Uint16(v))
	db.clock = bulk.NewLocalClock(loadClock(tx), db.saveClock)
	return nil
}

// Close closes the file. It waits for running reads to finish their chunk.
func (db *DB) Close() error {
	return db.bolt.Close()
}

// Shards returns the number of shards per type stored in the file.
func (db *DB) Shards() int { return db.shards }

// Resources returns the resource store in the file.
func (db *DB) Resources() *ResourceStore { return &ResourceStore{db: db} }

// Jobs returns the job store in the file.
func (db *DB) Jobs() *JobStore { return &JobStore{db: db} }

// Stats returns the read counters since Open.
func (db *DB) Stats() Stats {
	return Stats{
		ItemsRead:     db.stats.items.Load(),
		BodiesRead:    db.stats.bodies.Load(),
		BodyBytesRead: db.stats.bodyBytes.Load(),
	}
}
