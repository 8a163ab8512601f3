package bulktest

import (
	"context"
	"sync"
)

// ExportGate orders a chain of exports against concurrent imports in the
// no-gap tests (issue 13): an import's Put waits (Wait) until an export
// kicked off after the Put began has finished, so that every export of the
// chain runs while some batch is stamped and not yet stored. Kicked and
// Done count the chain's kick-offs and finished exports.
type ExportGate struct {
	mu              sync.Mutex
	kicks, finished int
	changed         chan struct{} // closed when finished grows
}

// NewExportGate returns a gate with no exports counted.
func NewExportGate() *ExportGate { return &ExportGate{changed: make(chan struct{})} }

// Kicked counts a kick-off of the chain.
func (g *ExportGate) Kicked() {
	g.mu.Lock()
	g.kicks++
	g.mu.Unlock()
}

// Done counts a finished export of the chain.
func (g *ExportGate) Done() {
	g.mu.Lock()
	g.finished++
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

// Wait returns once the next export kicked off from now on has finished.
func (g *ExportGate) Wait(ctx context.Context) error {
	g.mu.Lock()
	want := g.kicks + 1
	for g.finished < want {
		ch := g.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		g.mu.Lock()
	}
	g.mu.Unlock()
	return nil
}
