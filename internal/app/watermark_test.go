package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/importer"
)

// gatedDynamo holds each Put of the import function (a batch the clock
// has stamped, an S3-triggered import in a Lambda of its own) until an
// export kicked off after the Put began has finished: that export ran while
// the batch was stamped and not stored.
type gatedDynamo struct {
	*dynamodb.ResourceStore
	g *bulktest.ExportGate
}

func (g gatedDynamo) Put(ctx context.Context, rs []*bulk.Resource) error {
	if err := g.g.Wait(ctx); err != nil {
		return err
	}
	return g.ResourceStore.Put(ctx, rs)
}

// TestServerlessSinceChainWithConcurrentImports: files dropped under
// incoming/ are imported by parallel import functions while a chain of
// exports runs on the serverless bench, each `_since` the previous
// transactionTime and each kicked off while some import holds a stamped,
// unstored batch; one more export follows the imports. Every version is in
// exactly one export, within its (_since, transactionTime] range, and the
// last version of each resource is the last exported, though every file's
// own lastUpdated predates the first export (R12, R55; the _clock and
// _imports items of dynamodb/clock.go).
func TestServerlessSinceChainWithConcurrentImports(t *testing.T) {
	b := startBench(t) // skips without dynalite
	ctx := context.Background()

	gate := bulktest.NewExportGate()
	fn, err := app.NewAWSFromEnv(ctx) // the import function, at its cold start
	if err != nil {
		t.Fatal(err)
	}
	im, err := fn.Importer()
	if err != nil {
		t.Fatal(err)
	}
	im.TempDir = t.TempDir()
	im.Store = gatedDynamo{ResourceStore: fn.Resources, g: gate}

	// Each import function gets three files; the third replaces the
	// first's resources with a second version. The batches are small
	// (importer.Options.BatchSize is not the trigger's to set): a file is
	// one batch, held until an export has run.
	const importers, perFile = 3, 8
	final := map[string]string{}
	files := make([][]string, importers)
	for i := range importers {
		for f, spec := range []struct{ prefix, version string }{{"a", "v1"}, {"b", "v1"}, {"a", "v2"}} {
			prefix := fmt.Sprintf("imp%d-%s", i, spec.prefix)
			var ls []string
			for n := range perFile {
				ls = append(ls, fmt.Sprintf(`{"resourceType":"Observation","id":"%s-%d","meta":{"lastUpdated":"2020-01-01T00:00:00Z"},"status":"final","valueString":%q}`, prefix, n, spec.version))
				final[fmt.Sprintf("Observation/%s-%d", prefix, n)] = spec.version
			}
			path := filepath.Join(t.TempDir(), fmt.Sprintf("imp%d-%d.ndjson", i, f))
			if err := os.WriteFile(path, []byte(strings.Join(ls, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			files[i] = append(files[i], path)
		}
	}
	drop := func(path string) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		key := "incoming/feed/" + filepath.Base(path)
		if _, err := b.s3.Client.PutObject(ctx, &s3sdk.PutObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key), Body: f}); err != nil {
			return err
		}
		var ev events.S3Event
		ev.Records = []events.S3EventRecord{{}}
		ev.Records[0].S3.Bucket.Name = b.bucket
		ev.Records[0].S3.Object.Key = key
		return im.Handle(ctx, ev)
	}
	var wg sync.WaitGroup
	errs := make(chan error, importers)
	for i := range importers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, f := range files[i] {
				if err := drop(f); err != nil {
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

	type run struct {
		since, tt time.Time
		got       map[string]exportedVersion
	}
	var chain []run
	c := b.client(t)
	out := t.TempDir()
	for finished := false; !finished; {
		select {
		case <-done:
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
		r := run{got: readVersions(t, sum.Dir)}
		r.since, _ = time.Parse(time.RFC3339Nano, sum.Since)
		r.tt, _ = time.Parse(time.RFC3339Nano, sum.TransactionTime)
		if len(chain) > 0 && !r.since.Equal(chain[len(chain)-1].tt) {
			t.Errorf("export %d: _since %s, want the previous transactionTime %v", len(chain), sum.Since, chain[len(chain)-1].tt)
		}
		chain = append(chain, r)
	}
	close(errs)
	for err := range errs {
		t.Fatalf("import: %v", err)
	}
	if len(chain) < 4 {
		t.Fatalf("only %d exports ran; the test wants several during the imports", len(chain))
	}

	seen := map[string]int{}
	last := map[string]exportedVersion{}
	for i, r := range chain {
		if i > 0 && r.tt.Before(chain[i-1].tt) {
			t.Errorf("export %d: transactionTime %v went back from %v", i, r.tt, chain[i-1].tt)
		}
		for v, e := range r.got {
			if j, dup := seen[v]; dup {
				t.Errorf("%s exported by export %d and again by export %d", v, j, i)
			}
			seen[v] = i
			if (!r.since.IsZero() && !e.lastUpdated.After(r.since)) || e.lastUpdated.After(r.tt) {
				t.Errorf("export %d (_since %v, transactionTime %v) holds %s", i, r.since, r.tt, v)
			}
			if e.source != "2020-01-01T00:00:00Z" {
				t.Errorf("%s: source lastUpdated %q, want the file's kept", v, e.source)
			}
			if l, ok := last[e.key]; !ok || e.lastUpdated.After(l.lastUpdated) {
				last[e.key] = e
			}
		}
	}
	got := map[string]string{}
	for k, e := range last {
		got[k] = e.version
	}
	if diff := cmp.Diff(final, got); diff != "" {
		t.Errorf("latest exported version of each resource (-want +got):\n%s", diff)
	}
	t.Logf("%d exports, %d versions exported, %d resources", len(chain), len(seen), len(final))
}

// exportedVersion is one exported line.
type exportedVersion struct {
	key, version, source string
	lastUpdated          time.Time
}

// readVersions reads the NDJSON files of an export directory by
// "Type/id#lastUpdated".
func readVersions(t *testing.T, dir string) map[string]exportedVersion {
	t.Helper()
	out := map[string]exportedVersion{}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r struct {
				ResourceType, ID, ValueString string
				Meta                          struct {
					LastUpdated string
					Extension   []struct{ URL, ValueInstant string }
				}
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			e := exportedVersion{key: r.ResourceType + "/" + r.ID, version: r.ValueString}
			e.lastUpdated, _ = time.Parse(time.RFC3339Nano, r.Meta.LastUpdated)
			for _, x := range r.Meta.Extension {
				if x.URL == importer.SourceLastUpdatedURL {
					e.source = x.ValueInstant
				}
			}
			v := e.key + "#" + r.Meta.LastUpdated
			if _, dup := out[v]; dup {
				t.Errorf("%s twice in one export", v)
			}
			out[v] = e
		}
		f.Close()
	}
	return out
}
