package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"go.etcd.io/bbolt"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.JobStore = (*JobStore)(nil)

// JobStore is the bulk.JobStore in a DB file. Jobs and plans are JSON under
// the job id; checkpoints are JSON under the job id and the big-endian item
// index, so a prefix read returns them in index order. Every write runs in
// one bbolt write transaction, and bbolt runs one at a time, so each
// read-check-write is the conditional write the contract asks for.
// Concurrent writes share a transaction (DB.batch: group commit), each
// still seeing the ones before it, so a kick-off does not wait for the
// fsyncs of every export's checkpoint one by one.
//
// GetJob answers from the jobs the process committed or read last
// (jobView) and reads the file only for a job it does not hold: a status
// poll takes no read transaction, so 200 pollers do not queue on bbolt's
// meta lock behind an export's reads and commits.
//
// The active bucket indexes the jobs that are not terminal by owner, so a
// kick-off's quota reads a client's running jobs and nothing else:
//
//	active             uvarint(len(owner)) owner job id → ""
//
// (the length prefix keeps one owner's keys from prefixing another's). The
// writes that create, transition and delete jobs update it in their own
// transaction. The first of them that finds it missing creates it and
// fills it from the jobs bucket, so files made before it existed need no
// migration; until then ActiveJobs counts from the jobs bucket.
type JobStore struct {
	db *DB
}

var bucketActive = []byte("active")

// CreateJob stores j. Returns ECONFLICT if the id exists.
func (s *JobStore) CreateJob(ctx context.Context, j *bulk.Job) (err error) {
	defer bulk.Wrap(&err, "bolt.JobStore.CreateJob(%q)", j.ID)
	return s.create(j, 0)
}

// CreateJobWithin is CreateJob that refuses a job that is not terminal
// while its owner has limit of them: the count (a prefix read of the
// active index) and the put are one write transaction, and bbolt runs one
// at a time.
func (s *JobStore) CreateJobWithin(ctx context.Context, j *bulk.Job, limit int) (err error) {
	defer bulk.Wrap(&err, "bolt.JobStore.CreateJobWithin(%q, %d)", j.ID, limit)
	return s.create(j, limit)
}

func (s *JobStore) create(j *bulk.Job, limit int) error {
	if j.ID == "" || strings.IndexByte(j.ID, 0) >= 0 {
		return bulk.Errorf(bulk.EINVALID, "A job id must be non-empty and contain no NUL.")
	}
	v, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return s.db.batch(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		if b.Get([]byte(j.ID)) != nil {
			return bulk.Errorf(bulk.ECONFLICT, "Job %s already exists.", j.ID)
		}
		if limit > 0 && !j.Status.Terminal() {
			n, err := countActive(tx, j.ClientID)
			if err != nil {
				return err
			}
			if n >= limit {
				return bulk.Errorf(bulk.ETOOMANYREQUESTS, "Client %s has %d unfinished jobs, its limit.", j.ClientID, n)
			}
		}
		if err := putJob(tx, &s.db.jobs, j.ID, v); err != nil {
			return err
		}
		return reindex(tx, j.ID, nil, j)
	})
}

// GetJob returns a job. Returns ENOTFOUND if it does not exist. It reads
// the job as last committed from memory (jobView), and from the file only
// when the process holds no copy.
func (s *JobStore) GetJob(ctx context.Context, id string) (j *bulk.Job, err error) {
	defer bulk.Wrap(&err, "bolt.JobStore.GetJob(%q)", id)
	if v, ok := s.db.jobs.get(id); ok {
		if v == nil {
			return nil, bulk.Errorf(bulk.ENOTFOUND, "Job %s not found.", id)
		}
		return decodeJob(v)
	}
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get([]byte(id))
		if v == nil {
			return bulk.Errorf(bulk.ENOTFOUND, "Job %s not found.", id)
		}
		v = slices.Clone(v) // valid only in tx
		s.db.jobs.read(id, v, tx.ID())
		j, err = decodeJob(v)
		return err
	})
	return j, err
}

// Transition moves a job from one of from to to, applying mutate in the same
// write transaction. A terminal job never changes, even when from lists its
// status; mutate cannot change the id or the status. mutate runs inside the
// transaction, so it must not call the DB, and it may run more than once
// (DB.batch), each time on a fresh copy of the stored job.
func (s *JobStore) Transition(ctx context.Context, id string, from []bulk.Status, to bulk.Status, mutate func(*bulk.Job)) (j *bulk.Job, err error) {
	defer bulk.Wrap(&err, "bolt.JobStore.Transition(%q, %v → %s)", id, from, to)
	err = s.db.batch(func(tx *bbolt.Tx) error {
		if j, err = getJob(tx, id); err != nil {
			return err
		}
		if j.Status.Terminal() || !slices.Contains(from, j.Status) {
			return bulk.Errorf(bulk.ECONFLICT, "Job %s is %s, not %v.", id, j.Status, from)
		}
		was := &bulk.Job{ClientID: j.ClientID, Status: j.Status}
		if mutate != nil {
			mutate(j)
		}
		j.ID, j.Status = id, to
		if err := putJobJSON(tx, &s.db.jobs, id, j); err != nil {
			return err
		}
		return reindex(tx, id, was, j)
	})
	if err != nil {
		return nil, err
	}
	return j, nil
}

// SavePlan stores p and sets ItemsTotal unless the job has a plan already,
// and returns the stored plan. Returns ECONFLICT if the job is terminal.
func (s *JobStore) SavePlan(ctx context.Context, id string, p *bulk.Plan) (stored *bulk.Plan, err error) {
	defer bulk.Wrap(&err, "bolt.JobStore.SavePlan(%q)", id)
	err = s.db.batch(func(tx *bbolt.Tx) error {
		j, err := getLiveJob(tx, id)
		if err != nil {
			return err
		}
		plans := tx.Bucket(bucketPlans)
		if v := plans.Get([]byte(id)); v != nil {
			stored = new(bulk.Plan)
			return json.Unmarshal(v, stored)
		}
		data, err := json.Marshal(p)
		if err != nil {
			return err
		}
		if err := plans.Put([]byte(id), data); err != nil {
			return err
		}
		// Return what a later GetPlan returns, not the caller's pointer.
		stored = new(bulk.Plan)
		if err := json.Unmarshal(data, stored); err != nil {
			return err
		}
		j.ItemsTotal = len(p.Items)
		return putJobJSON(tx, &s.db.jobs, id, j)
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// GetPlan returns the stored plan. Returns ENOTFOUND if there is none.
func (s *JobStore) GetPlan(ctx context.Context, id string) (p *bulk.Plan, err error) {
	defer bulk.Wrap(&err, "bolt.JobStore.GetPlan(%q)", id)
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketPlans).Get([]byte(id))
		if v == nil {
			return bulk.Errorf(bulk.ENOTFOUND, "Job %s has no plan.", id)
		}
		p = new(bulk.Plan)
		return json.Unmarshal(v, p)
	})
	return p, err
}

// SaveProgress replaces an item's checkpoint and keeps ItemsDone equal to the
// number of items whose checkpoint is Done, so a retried item that saves Done
// again is not counted twice. Returns ECONFLICT if the job is terminal.
func (s *JobStore) SaveProgress(ctx context.Context, id string, p *bulk.ItemProgress) (err error) {
	defer bulk.Wrap(&err, "bolt.JobStore.SaveProgress(%q, item %d)", id, p.Index)
	if p.Index < 0 || p.Index > math.MaxUint32 {
		return bulk.Errorf(bulk.EINVALID, "Item index %d is out of range.", p.Index)
	}
	return s.db.batch(func(tx *bbolt.Tx) error {
		j, err := getLiveJob(tx, id)
		if err != nil {
			return err
		}
		b := tx.Bucket(bucketProgress)
		key := progressKey(id, p.Index)
		var was struct{ Done bool }
		if v := b.Get(key); v != nil {
			if err := json.Unmarshal(v, &was); err != nil {
				return err
			}
		}
		if err := putJSON(b, key, p); err != nil {
			return err
		}
		switch {
		case p.Done && !was.Done:
			j.ItemsDone++
		case !p.Done && was.Done:
			j.ItemsDone--
		default:
			return nil
		}
		return putJobJSON(tx, &s.db.jobs, id, j)
	})
}

// Progress returns the job's checkpoints in index order; none for an unknown
// job.
func (s *JobStore) ItemProgress(ctx context.Context, id string, index int) (p *bulk.ItemProgress, err error) {
	defer bulk.Wrap(&err, "bolt.JobStore.ItemProgress(%q, %d)", id, index)
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketProgress).Get(progressKey(id, index))
		if v == nil {
			return bulk.Errorf(bulk.ENOTFOUND, "No checkpoint of item %d of job %s.", index, id)
		}
		p = new(bulk.ItemProgress)
		return json.Unmarshal(v, p)
	})
	return p, err
}

// Progress returns a job's checkpoints by index.
func (s *JobStore) Progress(ctx context.Context, id string) (ps []*bulk.ItemProgress, err error) {
	defer bulk.Wrap(&err, "bolt.JobStore.Progress(%q)", id)
	prefix := []byte(id + "\x00")
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		cur := tx.Bucket(bucketProgress).Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			p := new(bulk.ItemProgress)
			if err := json.Unmarshal(v, p); err != nil {
				return err
			}
			ps = append(ps, p)
		}
		return nil
	})
	return ps, err
}

// ListJobs visits all jobs in id order. The jobs are read first, so fn may
// call the store.
func (s *JobStore) ListJobs(ctx context.Context, fn func(*bulk.Job) error) error {
	jobs, err := readJSON[bulk.Job](s.db, bucketJobs, nil, "job")
	if err != nil {
		return fmt.Errorf("bolt.JobStore.ListJobs: %w", err)
	}
	return visitEach(ctx, jobs, fn)
}

// ActiveJobs counts clientID's jobs that are not terminal: a prefix read
// of the active index.
func (s *JobStore) ActiveJobs(ctx context.Context, clientID string) (n int, err error) {
	defer bulk.Wrap(&err, "bolt.JobStore.ActiveJobs(%q)", clientID)
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		n, err = countActive(tx, clientID)
		return err
	})
	return n, err
}

// countActive counts owner's jobs that are not terminal in tx.
func countActive(tx *bbolt.Tx, owner string) (n int, err error) {
	b := tx.Bucket(bucketActive)
	if b == nil { // a file no job write has touched since the index exists
		err = tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			var j struct {
				ClientID string      `json:"clientId"`
				Status   bulk.Status `json:"status"`
			}
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("job %q: %w", k, err)
			}
			if j.ClientID == owner && !j.Status.Terminal() {
				n++
			}
			return nil
		})
		return n, err
	}
	prefix := activePrefix(owner)
	cur := b.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		n++
	}
	return n, nil
}

// DeleteJob removes a job with its plan and checkpoints.
func (s *JobStore) DeleteJob(ctx context.Context, id string) (err error) {
	defer bulk.Wrap(&err, "bolt.JobStore.DeleteJob(%q)", id)
	prefix := []byte(id + "\x00")
	return s.db.batch(func(tx *bbolt.Tx) error {
		switch j, err := getJob(tx, id); bulk.ErrorCode(err) {
		case bulk.ENOTFOUND:
		case "":
			if err := reindex(tx, id, j, nil); err != nil {
				return err
			}
		default:
			return err
		}
		if err := putJob(tx, &s.db.jobs, id, nil); err != nil {
			return err
		}
		if err := tx.Bucket(bucketPlans).Delete([]byte(id)); err != nil {
			return err
		}
		// Collect first: deleting under a cursor skips entries.
		b := tx.Bucket(bucketProgress)
		var keys [][]byte
		cur := b.Cursor()
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			keys = append(keys, slices.Clone(k))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func getJob(tx *bbolt.Tx, id string) (*bulk.Job, error) {
	v := tx.Bucket(bucketJobs).Get([]byte(id))
	if v == nil {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "Job %s not found.", id)
	}
	return decodeJob(v)
}

func decodeJob(v []byte) (*bulk.Job, error) {
	j := new(bulk.Job)
	if err := json.Unmarshal(v, j); err != nil {
		return nil, err
	}
	return j, nil
}

// putJobJSON stores j as job id's value in tx (putJob).
func putJobJSON(tx *bbolt.Tx, view *jobView, id string, j *bulk.Job) error {
	v, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return putJob(tx, view, id, v)
}

// putJob stores v as job id's value in tx, or deletes the job when v is
// nil, and tells view once tx commits. Every write of the jobs bucket goes
// through it, so view never holds a value older than the file's. v must
// not change afterwards: bbolt and view keep it.
func putJob(tx *bbolt.Tx, view *jobView, id string, v []byte) error {
	b := tx.Bucket(bucketJobs)
	var err error
	if v == nil {
		err = b.Delete([]byte(id))
	} else {
		err = b.Put([]byte(id), v)
	}
	if err != nil {
		return err
	}
	txid := tx.ID()
	tx.OnCommit(func() { view.wrote(id, v, txid) })
	return nil
}

// jobView holds the value of each job this process has written or read
// lately, as of the transaction that wrote or read it. The file has one
// writer process (Open locks it) and every write of the jobs bucket tells
// the view when it commits (putJob), before the write returns, so a job the
// view holds is the file's as of the latest commit: GetJob answers from it
// without a read transaction.
//
// bbolt runs the commit handlers after it releases the writer lock, so
// the next write may commit, and tell the view, before an earlier one
// does; and a read that began before a commit may store what it read after
// that commit told the view. So each value carries its transaction id,
// and an older one never replaces a newer one. When the view is full it
// forgets everything; a read that began before the latest transaction the
// view had heard of may have read a value it forgot a newer one of, so
// such reads are not kept (floor). After a failed commit of a job write
// the view is stopped: bbolt may have written the meta page of a
// transaction it reported failed, so the file is read from then on.
type jobView struct {
	mu      sync.Mutex
	m       map[string]jobValue
	last    int  // the latest transaction of a value stored since the view was last emptied
	floor   int  // reads from transactions before it are not kept
	stopped bool // after a failed commit: the view holds nothing
}

type jobValue struct {
	v  []byte // the stored JSON; nil: the job was deleted
	tx int
}

// maxJobView bounds the jobs the view holds (deleted ones count too); a
// variable for tests.
var maxJobView = 4096

// get returns the job's stored JSON (nil if it was deleted) if the view
// holds it. The caller must not change it.
func (w *jobView) get(id string) (v []byte, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.m[id]
	return e.v, ok
}

// stop empties the view for good.
func (w *jobView) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped, w.m = true, nil
}

// wrote records a commit of transaction tx that set the job's value to v
// (nil: deleted).
func (w *jobView) wrote(id string, v []byte, tx int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e, ok := w.m[id]; ok && e.tx > tx {
		return // a later commit told the view first
	}
	w.store(id, jobValue{v, tx})
}

// read records the job's value v as a read transaction tx found it.
func (w *jobView) read(id string, v []byte, tx int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if tx < w.floor {
		return
	}
	if e, ok := w.m[id]; ok && e.tx >= tx {
		return
	}
	w.store(id, jobValue{v, tx})
}

func (w *jobView) store(id string, e jobValue) {
	if w.stopped {
		return
	}
	if w.m == nil {
		w.m = map[string]jobValue{}
	}
	if _, ok := w.m[id]; !ok && len(w.m) >= maxJobView {
		clear(w.m)
		w.floor = max(w.floor, w.last)
	}
	w.m[id] = e
	w.last = max(w.last, e.tx)
}

// getLiveJob returns a job that exists and is not terminal.
func getLiveJob(tx *bbolt.Tx, id string) (*bulk.Job, error) {
	j, err := getJob(tx, id)
	if err != nil {
		return nil, err
	}
	if j.Status.Terminal() {
		return nil, bulk.Errorf(bulk.ECONFLICT, "Job %s is %s.", id, j.Status)
	}
	return j, nil
}

// reindex moves job id's entry in the active index from what it was (nil
// for a new job) to what it is (nil for a deleted job): only jobs that are
// not terminal have one. It creates and fills the index if the file has
// none yet, before the job's own change, which the caller has written or
// is about to write in tx.
func reindex(tx *bbolt.Tx, id string, was, is *bulk.Job) error {
	b := tx.Bucket(bucketActive)
	if b == nil {
		var err error
		if b, err = tx.CreateBucket(bucketActive); err != nil {
			return err
		}
		err = tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			if string(k) == id {
				return nil // indexed below, from was and is
			}
			j := new(bulk.Job)
			if err := json.Unmarshal(v, j); err != nil {
				return fmt.Errorf("job %q: %w", k, err)
			}
			if j.Status.Terminal() {
				return nil
			}
			return b.Put(activeKey(j.ClientID, string(k)), []byte{})
		})
		if err != nil {
			return err
		}
	}
	if was != nil && !was.Status.Terminal() {
		if err := b.Delete(activeKey(was.ClientID, id)); err != nil {
			return err
		}
	}
	if is != nil && !is.Status.Terminal() {
		return b.Put(activeKey(is.ClientID, id), []byte{})
	}
	return nil
}

// activePrefix is the prefix of owner's keys in the active index.
func activePrefix(owner string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(owner))), owner...)
}

func activeKey(owner, id string) []byte { return append(activePrefix(owner), id...) }

func putJSON(b *bbolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

func progressKey(id string, index int) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(id), 0), uint32(index))
}
