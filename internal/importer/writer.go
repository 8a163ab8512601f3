package importer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// writer applies the store writes of an import in order, in a goroutine of
// its own, so that reading and parsing the next batch overlaps the store's
// work on this one. After a failed write it applies nothing more.
type writer struct {
	ctx   context.Context
	store bulk.ResourceSink
	ops   chan writeOp
	done  chan struct{}
	once  sync.Once

	failed atomic.Bool
	err    error // the first error: written once, before failed is set

	mu      sync.Mutex
	stored  map[string]int64
	total   int64
	deleted int64
}

// writeOp is one write: a Put, a Delete, or a sync point.
type writeOp struct {
	put    []*bulk.Resource
	counts map[string]int64 // added to the totals once put; nil counts nothing
	del    *bulk.Ref
	at     time.Time
	sync   chan struct{} // closed when every earlier op is done
}

// writeQueue is the number of writes that may wait while one is applied;
// each holds a batch in memory.
const writeQueue = 1

func startWriter(ctx context.Context, store bulk.ResourceSink) *writer {
	w := &writer{
		ctx:    ctx,
		store:  store,
		ops:    make(chan writeOp, writeQueue),
		done:   make(chan struct{}),
		stored: map[string]int64{},
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
		var err error
		if op.del != nil {
			err = w.store.Delete(w.ctx, *op.del, op.at)
		} else {
			err = w.store.Put(w.ctx, op.put)
		}
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
