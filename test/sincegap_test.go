package test

// Incremental exports that never miss data (issue 13): the server's clock
// sets meta.lastUpdated as it stores a version, so data whose own
// lastUpdated predates the last export still reaches the next `_since`
// export, and a chain of exports each `_since` the previous transactionTime
// returns every version exactly once while imports run (R12, R55).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/importer"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

// writeNDJSON writes lines to a file of its own.
func writeNDJSON(t *testing.T, name string, lines []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// exported is one resource of an export: its key and meta.
type exported = bulktest.ExportedVersion

func parseExported(t *testing.T, ls []line) []exported {
	t.Helper()
	var out []exported
	for _, l := range ls {
		var r struct {
			Meta struct {
				LastUpdated string
				Extension   []struct{ URL, ValueInstant string }
			}
			ValueString string
		}
		if err := json.Unmarshal(l.Raw, &r); err != nil {
			t.Fatalf("%s: %v", l.Raw, err)
		}
		e := exported{Key: l.Type + "/" + l.ID, Version: r.ValueString}
		e.LastUpdated, _ = time.Parse(time.RFC3339Nano, r.Meta.LastUpdated)
		for _, x := range r.Meta.Extension {
			if x.URL == importer.SourceLastUpdatedURL {
				e.Source = x.ValueInstant
			}
		}
		out = append(out, e)
	}
	return out
}

// observations are n Observations last updated long ago by their source.
func observations(prefix, version string, n int) []string {
	var ls []string
	for i := range n {
		ls = append(ls, fmt.Sprintf(`{"resourceType":"Observation","id":"%s-%d","meta":{"lastUpdated":"2020-01-01T00:00:00Z"},"status":"final","valueString":%q}`, prefix, i, version))
	}
	return ls
}

// TestSinceLastAfterOlderImport: 324 resources imported after an export,
// their own lastUpdated years before its transactionTime, are in the next
// --since-last export, stamped by the server with the source's value kept;
// with --keep-last-updated they are not (which the import warns about).
func TestSinceLastAfterOlderImport(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	s := startServer(t, cfg)
	store := s.app.DB.Resources()
	stamped := func(path string) {
		t.Helper()
		if _, err := importer.Import(ctx, store, importer.Options{}, path); err != nil {
			t.Fatal(err)
		}
	}
	stamped(writeNDJSON(t, "first.ndjson", observations("first", "v1", 10)))
	out := t.TempDir()
	run := func() *client.Summary {
		t.Helper()
		sum, err := (&client.Export{Client: s.bulkClient(), Out: out, SinceLast: true, Parallel: 2}).Run(ctx)
		if err != nil {
			t.Fatalf("export --since-last: %v", err)
		}
		return sum
	}
	first := run()
	if got := len(savedLines(t, first.Dir)); got != 10 {
		t.Fatalf("first export holds %d resources, want 10", got)
	}
	t1, _ := time.Parse(time.RFC3339Nano, first.TransactionTime)

	stamped(writeNDJSON(t, "feed.ndjson", observations("feed", "v1", 324)))
	second := run()
	if second.Since != first.TransactionTime {
		t.Errorf("second export _since %q, want the first transactionTime %q", second.Since, first.TransactionTime)
	}
	got := parseExported(t, savedLines(t, second.Dir))
	if len(got) != 324 {
		t.Fatalf("export _since %s after importing 324 resources last updated in 2020: %d resources, want 324", second.Since, len(got))
	}
	for _, e := range got {
		if !strings.HasPrefix(e.Key, "Observation/feed-") || !e.LastUpdated.After(t1) || e.Source != "2020-01-01T00:00:00Z" {
			t.Errorf("%+v: want a feed Observation stamped after %v with its source lastUpdated kept", e, t1)
		}
	}

	// Restored as it was: lastUpdated 2020 stays, so `_since` misses it.
	kept := writeNDJSON(t, "backup.ndjson", observations("backup", "v1", 3))
	if _, err := importer.Import(ctx, store, importer.Options{KeepLastUpdated: true}, kept); err != nil {
		t.Fatal(err)
	}
	if third := run(); len(savedLines(t, third.Dir)) != 0 {
		t.Errorf("export --since-last after --keep-last-updated: %d resources, want none (lastUpdated 2020)", len(savedLines(t, third.Dir)))
	}
}

// gatedResources holds each Put (a batch the clock has stamped) until an
// export kicked off after the Put began has finished: that export ran while
// the batch was stamped and not stored.
type gatedResources struct {
	*bolt.ResourceStore
	g *bulktest.ExportGate
}

func (g gatedResources) Put(ctx context.Context, rs []*bulk.Resource) error {
	if err := g.g.Wait(ctx); err != nil {
		return err
	}
	return g.ResourceStore.Put(ctx, rs)
}

// TestSinceChainWithConcurrentImports: imports run in goroutines while a
// chain of --since-last exports runs, each batch stored only after an export
// ran while it was stamped but not stored; one more export follows the imports. Every
// version ends up in exactly one export, within its (_since,
// transactionTime] range, and the last version of each resource is the
// last one exported (R12, R55).
func TestSinceChainWithConcurrentImports(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	s := startServer(t, cfg)

	gate := bulktest.NewExportGate()
	store := gatedResources{ResourceStore: s.app.DB.Resources(), g: gate}

	// Each importer loads three files; the third replaces the first's
	// resources with a second version.
	const importers, perFile = 3, 12
	final := map[string]string{} // key → the last version imported
	var files [importers][]string
	for i := range importers {
		for f, spec := range []struct{ prefix, version string }{{"a", "v1"}, {"b", "v1"}, {"a", "v2"}} {
			prefix := fmt.Sprintf("imp%d-%s", i, spec.prefix)
			files[i] = append(files[i], writeNDJSON(t, fmt.Sprintf("imp%d-%d.ndjson", i, f), observations(prefix, spec.version, perFile)))
			for n := range perFile {
				final[fmt.Sprintf("Observation/%s-%d", prefix, n)] = spec.version
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, importers)
	for i := range importers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, f := range files[i] {
				if _, err := importer.Import(ctx, store, importer.Options{BatchSize: 5}, f); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()

	chain := bulktest.RunSinceChain(t, ctx, s.bulkClient(), t.TempDir(), gate, done)
	close(errs)
	for err := range errs {
		t.Fatalf("import: %v", err)
	}
	if len(chain) < 5 {
		t.Fatalf("only %d exports ran; the test wants several during the imports", len(chain))
	}
	versions := bulktest.CheckSinceChain(t, chain, final)
	t.Logf("%d exports, %d versions exported, %d resources", len(chain), versions, len(final))
}
