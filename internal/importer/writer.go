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
	store Store
	now   time.Time // the import time
	// sess stamps each write (nil with KeepLastUpdated), at wall or later.
	sess bulk.ClockSession
	wall func() time.Time
	ops  chan writeOp
	done chan struct{}
	once sync.Once

	failed atomic.Bool
	err    error // the first error: written once, before failed is set

	mu     sync.Mutex
	byType map[string]*Counts
	total  int64 // resources stored, for progress

	// tombstones caches the store's deletions of each type the import
	// touched (loaded on first use, then kept up to date by the import's
	// own writes), so re-created resources can be recognized. Only the
	// writer goroutine uses it.
	tombstones map[string]map[string]time.Time
	// groups holds the members that each stored Group the import writes
	// had before it, read before its first Put (for GroupChanges); only the
	// writer goroutine uses it until wait or close returns.
	groups map[string][]string
	// seenGroups are the Groups read for groups, stored or not.
	seenGroups map[string]bool

	// committed hears of each write stored (Options.Committed).
	committed func(Commit)
}

// writeOp is one write: a Put, a Delete, or a sync point.
type writeOp struct {
	put  []*bulk.Resource
	offs []int // where put[i]'s body takes the stamp, or -1
	// count says whether the outcomes count (not for the last pass's
	// rewrites); superseded are replaced versions per type that the batch
	// left out.
	count      bool
	superseded map[string]int64
	del        *bulk.Ref
	at         time.Time
	sync       chan struct{} // closed when every earlier op is done
	// mark is how far the input is stored once this op is.
	mark mark
}

// writeQueue is the number of writes that may wait while one is applied;
// each holds a batch in memory.
const writeQueue = 1

func startWriter(ctx context.Context, store Store, now time.Time, sess bulk.ClockSession, wall func() time.Time) *writer {
	w := &writer{
		ctx:        ctx,
		store:      store,
		now:        now,
		sess:       sess,
		wall:       wall,
		tombstones: map[string]map[string]time.Time{},
		groups:     map[string][]string{},
		seenGroups: map[string]bool{},
		ops:        make(chan writeOp, writeQueue),
		done:       make(chan struct{}),
		byType:     map[string]*Counts{},
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
		if err := w.apply(&op); err != nil {
			w.err = err
			w.failed.Store(true)
			continue
		}
		if w.committed != nil {
			types, _ := w.counts()
			w.committed(op.mark.commit(types))
		}
	}
}

// apply stores op: a Delete or a Put, counting what was stored, even when
// it fails part-way.
func (w *writer) apply(op *writeOp) error {
	if w.sess != nil {
		// Stamped here, when every earlier write is stored: the clock
		// holds the stamp until the next one (bulk.Clock).
		if err := w.stamp(op); err != nil {
			return err
		}
	}
	if op.del != nil {
		return w.delete(op)
	}
	if err := w.recreate(op.put); err != nil {
		return err
	}
	if err := w.readGroups(op.put); err != nil {
		return err
	}
	outcomes := make([]bulk.PutOutcome, len(op.put))
	for i, r := range op.put {
		r.Outcome = &outcomes[i]
	}
	err := w.store.Put(w.ctx, op.put)
	w.mu.Lock()
	for i, r := range op.put {
		r.Outcome = nil
		if outcomes[i] == 0 {
			continue // not stored: Put failed first
		}
		delete(w.tombstones[r.Type], r.ID)
		if !op.count {
			continue
		}
		w.total++
		c := w.countsOf(r.Type)
		switch outcomes[i] {
		case bulk.PutNew:
			c.New++
		case bulk.PutReplaced:
			c.Replaced++
		case bulk.PutUnchanged:
			c.Unchanged++
		}
	}
	if err == nil && op.count {
		for typ, n := range op.superseded {
			w.countsOf(typ).Replaced += n
		}
	}
	w.mu.Unlock()
	return err
}

// delete applies a deletion, unless the resource is deleted already:
// deleting it again would move its tombstone to now, and `_since`
// exports would list it again (as Put leaves a resource that is the same).
func (w *writer) delete(op *writeOp) error {
	ts, err := w.tombstonesOf(op.del.Type)
	if err != nil {
		return err
	}
	if _, gone := ts[op.del.ID]; gone {
		w.mu.Lock()
		w.countsOf(op.del.Type).Unchanged++
		w.mu.Unlock()
		return nil
	}
	if err := w.store.Delete(w.ctx, *op.del, op.at); err != nil {
		return err
	}
	ts[op.del.ID] = op.at
	w.mu.Lock()
	w.countsOf(op.del.Type).Deleted++
	w.mu.Unlock()
	return nil
}

// countsOf returns typ's counts; w.mu is held.
func (w *writer) countsOf(typ string) *Counts {
	c := w.byType[typ]
	if c == nil {
		c = &Counts{}
		w.byType[typ] = c
	}
	return c
}

// readGroups reads the members of the stored Groups in rs that the import
// has not written yet: one read per Group, which are few.
func (w *writer) readGroups(rs []*bulk.Resource) error {
	for _, r := range rs {
		if r.Type != "Group" || w.seenGroups[r.ID] {
			continue
		}
		members, err := w.store.GroupMembers(w.ctx, r.ID)
		switch {
		case bulk.ErrorCode(err) == bulk.ENOTFOUND:
		case err != nil:
			return err
		default:
			w.groups[r.ID] = members
		}
		w.seenGroups[r.ID] = true
	}
	return nil
}

// groupsBefore returns the members the stored Groups had before the import
// wrote them. Call it after wait or close.
func (w *writer) groupsBefore() map[string][]string { return w.groups }

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

// counts returns what was written so far: per type, and the resources
// stored in all (the last pass's rewrites too).
func (w *writer) counts() (types map[string]Counts, stored int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	types = make(map[string]Counts, len(w.byType))
	for typ, c := range w.byType {
		types[typ] = *c
	}
	return types, w.total
}

// recreate stamps re-created resources. A resource stored again after it
// was deleted changed at its re-creation, but its meta.lastUpdated may be
// older than the deletion (the same resource imported again): then it
// gets the import time, or the deletion's if that is later, so a
// `_since` export between the deletion and now lists it in `output`, and
// not in `deleted`, whose tombstone the Put clears (requirements 5.4).
func (w *writer) recreate(rs []*bulk.Resource) error {
	for _, r := range rs {
		ts, err := w.tombstonesOf(r.Type)
		if err != nil {
			return err
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

// tombstonesOf returns the cached deletions of typ, reading them first.
func (w *writer) tombstonesOf(typ string) (map[string]time.Time, error) {
	if ts, ok := w.tombstones[typ]; ok {
		return ts, nil
	}
	ts := map[string]time.Time{}
	err := w.store.Tombstones(w.ctx, typ, bulk.Range{Until: farFuture}, func(t bulk.Tombstone) error {
		ts[t.ID] = t.DeletedAt
		return nil
	})
	if err != nil {
		return nil, err
	}
	w.tombstones[typ] = ts
	return ts, nil
}
