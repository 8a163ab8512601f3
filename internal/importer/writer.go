package importer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/sjson"

	"github.com/tranchehq/tranche/internal/bulk"
)

// writer applies the store writes of an import in order, in a goroutine of
// its own, so that reading and parsing the next batch overlaps the store's
// work on this one. After a failed write it applies nothing more.
type writer struct {
	ctx   context.Context
	store bulk.ResourceStore
	now   time.Time // the import time
	// sess stamps each write (nil with KeepLastUpdated), at wall or later.
	sess bulk.ClockSession
	wall func() time.Time
	ops  chan writeOp
	done chan struct{}
	once sync.Once

	failed atomic.Bool
	err    error // the first error: written once, before failed is set

	mu      sync.Mutex
	stored  map[string]int64
	total   int64
	deleted int64

	// tombstones caches the store's deletions of each type the import
	// touched (loaded on first use, then kept up to date by the import's
	// own writes), so re-created resources can be recognized. Only the
	// writer goroutine uses it.
	tombstones map[string]map[string]time.Time
}

// writeOp is one write: a Put, a Delete, or a sync point.
type writeOp struct {
	put    []*bulk.Resource
	offs   []int            // where put[i]'s body takes the stamp, or -1
	counts map[string]int64 // added to the totals once put; nil counts nothing
	del    *bulk.Ref
	at     time.Time
	sync   chan struct{} // closed when every earlier op is done
}

// writeQueue is the number of writes that may wait while one is applied;
// each holds a batch in memory.
const writeQueue = 1

func startWriter(ctx context.Context, store bulk.ResourceStore, now time.Time, sess bulk.ClockSession, wall func() time.Time) *writer {
	w := &writer{
		ctx:        ctx,
		store:      store,
		now:        now,
		sess:       sess,
		wall:       wall,
		tombstones: map[string]map[string]time.Time{},
		ops:        make(chan writeOp, writeQueue),
		done:       make(chan struct{}),
		stored:     map[string]int64{},
	}
	go w.run()
	return w
}

func (w *writer) run() {
	defer close(w.done)
	for op := range w.ops {
		if op.sync != nil {
			close(op.sync)
			continue
		}
		if w.failed.Load() {
			continue
		}
		err := w.apply(&op)
		if err != nil {
			w.err = err
			w.failed.Store(true)
			continue
		}
		w.mu.Lock()
		if op.del != nil {
			w.deleted++
		}
		for typ, n := range op.counts {
			w.stored[typ] += n
			w.total += n
		}
		w.mu.Unlock()
	}
}

// apply stores op: a Delete or a Put.
func (w *writer) apply(op *writeOp) error {
	if w.sess != nil {
		// Stamped here, when every earlier write is stored: the clock
		// holds the stamp until the next one (bulk.Clock).
		if err := w.stamp(op); err != nil {
			return err
		}
	}
	if op.del != nil {
		if err := w.store.Delete(w.ctx, *op.del, op.at); err != nil {
			return err
		}
		if ts := w.tombstones[op.del.Type]; ts != nil {
			ts[op.del.ID] = op.at
		}
		return nil
	}
	if err := w.recreate(op.put); err != nil {
		return err
	}
	if err := w.store.Put(w.ctx, op.put); err != nil {
		return err
	}
	for _, r := range op.put {
		delete(w.tombstones[r.Type], r.ID)
	}
	return nil
}

// stamp takes the clock's next stamp for op: a deletion's time, or every
// resource's meta.lastUpdated and LastUpdated, so the stored text and the
// index agree.
func (w *writer) stamp(op *writeOp) error {
	t, err := w.sess.Stamp(w.ctx, w.wall())
	if err != nil {
		return err
	}
	if op.del != nil {
		op.at = t
		return nil
	}
	text := t.UTC().Format(instantLayout)
	for i, r := range op.put {
		off := -1
		if i < len(op.offs) {
			off = op.offs[i]
		}
		body, err := setLastUpdated(r.Body, off, text)
		if err != nil {
			return err
		}
		r.Body, r.LastUpdated = body, t
	}
	return nil
}

// send queues a write. It returns the error of a write that failed already,
// or ctx's.
func (w *writer) send(op writeOp) error {
	if w.failed.Load() {
		return w.err
	}
	select {
	case w.ops <- op:
		return nil
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}

// wait returns once every queued write is done, with the first error.
func (w *writer) wait() error {
	ch := make(chan struct{})
	w.ops <- writeOp{sync: ch}
	<-ch
	if w.failed.Load() {
		return w.err
	}
	return nil
}

// close waits for the queued writes and ends the writer. It returns the
// first error, and may be called again.
func (w *writer) close() error {
	w.once.Do(func() { close(w.ops) })
	<-w.done
	return w.err
}

// counts returns what was written so far.
func (w *writer) counts() (stored map[string]int64, total, deleted int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	stored = make(map[string]int64, len(w.stored))
	for typ, n := range w.stored {
		stored[typ] = n
	}
	return stored, w.total, w.deleted
}

// recreate stamps re-created resources. A resource stored again after it
// was deleted changed at its re-creation, but its meta.lastUpdated may be
// older than the deletion (the same resource imported again): then it
// gets the import time, or the deletion's if that is later, so a
// `_since` export between the deletion and now lists it in `output`, and
// not in `deleted`, whose tombstone the Put clears (requirements 5.4).
func (w *writer) recreate(rs []*bulk.Resource) error {
	for _, r := range rs {
		ts, ok := w.tombstones[r.Type]
		if !ok {
			ts = map[string]time.Time{}
			err := w.store.Tombstones(w.ctx, r.Type, bulk.Range{Until: farFuture}, func(t bulk.Tombstone) error {
				ts[t.ID] = t.DeletedAt
				return nil
			})
			if err != nil {
				return err
			}
			w.tombstones[r.Type] = ts
		}
		deletedAt, ok := ts[r.ID]
		if !ok || !r.LastUpdated.Before(deletedAt) {
			continue
		}
		at := w.now
		if at.Before(deletedAt) {
			at = deletedAt
		}
		body, err := sjson.SetBytes(r.Body, "meta.lastUpdated", at.UTC().Format(instantLayout))
		if err != nil {
			return err
		}
		r.Body, r.LastUpdated = body, at
	}
	return nil
}

// farFuture bounds a read of every tombstone.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
