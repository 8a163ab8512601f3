package bulktest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/importer"
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

// ExportedVersion is one resource version an export returned.
type ExportedVersion struct {
	Key         string // Type/id
	LastUpdated time.Time
	Source      string // the source-last-updated extension's value
	Version     string // valueString, which the no-gap tests set per version
}

// ReadVersions reads the versions in the NDJSON files of dir (an
// export's download directory).
func ReadVersions(t testing.TB, dir string) []ExportedVersion {
	t.Helper()
	var out []ExportedVersion
	paths, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			var r struct {
				ResourceType, ID, ValueString string
				Meta                          struct {
					LastUpdated string
					Extension   []struct{ URL, ValueInstant string }
				}
			}
			if err := json.Unmarshal(l, &r); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			e := ExportedVersion{Key: r.ResourceType + "/" + r.ID, Version: r.ValueString}
			e.LastUpdated, _ = time.Parse(time.RFC3339Nano, r.Meta.LastUpdated)
			for _, x := range r.Meta.Extension {
				if x.URL == importer.SourceLastUpdatedURL {
					e.Source = x.ValueInstant
				}
			}
			out = append(out, e)
		}
	}
	return out
}

// ChainExport is one export of a chain: its _since, its transactionTime
// and the versions it returned.
type ChainExport struct {
	Since, TransactionTime time.Time
	Versions               []ExportedVersion
}

// RunSinceChain runs --since-last exports of Observations with c into out,
// each kicked off through gate, until imports is closed, then one more,
// and checks each export's _since is the previous transactionTime.
func RunSinceChain(t testing.TB, ctx context.Context, c *client.Client, out string, gate *ExportGate, imports <-chan struct{}) []ChainExport {
	t.Helper()
	var chain []ChainExport
	for finished := false; !finished; {
		select {
		case <-imports:
			finished = true // this is the export after the imports
		default:
		}
		e := &client.Export{Client: c, Out: out, SinceLast: true, Parallel: 2,
			Request:   client.Request{Types: []string{"Observation"}},
			OnKickoff: func(string, bool) { gate.Kicked() }}
		sum, err := e.Run(ctx)
		if err != nil {
			t.Fatalf("export %d: %v", len(chain), err)
		}
		gate.Done()
		r := ChainExport{Versions: ReadVersions(t, sum.Dir)}
		r.Since, _ = time.Parse(time.RFC3339Nano, sum.Since)
		r.TransactionTime, _ = time.Parse(time.RFC3339Nano, sum.TransactionTime)
		if len(chain) > 0 && !r.Since.Equal(chain[len(chain)-1].TransactionTime) {
			t.Errorf("export %d: _since %s, want the previous transactionTime %v", len(chain), sum.Since, chain[len(chain)-1].TransactionTime)
		}
		chain = append(chain, r)
	}
	return chain
}

// CheckSinceChain checks a chain against what was imported (R12, R55):
// transactionTime never goes back, every version is in exactly one export
// and within its (_since, transactionTime] range, and the last exported
// version of each resource is final's (key → valueString). It returns how
// many versions were exported.
func CheckSinceChain(t testing.TB, chain []ChainExport, final map[string]string) int {
	t.Helper()
	seen := map[string]int{}             // key#lastUpdated → export
	last := map[string]ExportedVersion{} // key → its latest version exported
	for i, r := range chain {
		if i > 0 && r.TransactionTime.Before(chain[i-1].TransactionTime) {
			t.Errorf("export %d: transactionTime %v went back from %v", i, r.TransactionTime, chain[i-1].TransactionTime)
		}
		for _, e := range r.Versions {
			v := e.Key + "#" + e.LastUpdated.Format(time.RFC3339Nano)
			if j, dup := seen[v]; dup {
				t.Errorf("%s exported by export %d and again by export %d", v, j, i)
			}
			seen[v] = i
			if (!r.Since.IsZero() && !e.LastUpdated.After(r.Since)) || e.LastUpdated.After(r.TransactionTime) {
				t.Errorf("export %d (_since %v, transactionTime %v) holds %s last updated %v", i, r.Since, r.TransactionTime, e.Key, e.LastUpdated)
			}
			if l, ok := last[e.Key]; !ok || e.LastUpdated.After(l.LastUpdated) {
				last[e.Key] = e
			}
		}
	}
	got := map[string]string{}
	for k, e := range last {
		got[k] = e.Version
	}
	if diff := cmp.Diff(final, got); diff != "" {
		t.Errorf("latest exported version of each resource (-want +got):\n%s", diff)
	}
	return len(seen)
}
