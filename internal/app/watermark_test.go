package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
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

	chain := bulktest.RunSinceChain(t, ctx, b.client(t), t.TempDir(), gate, done)
	close(errs)
	for err := range errs {
		t.Fatalf("import: %v", err)
	}
	if len(chain) < 4 {
		t.Fatalf("only %d exports ran; the test wants several during the imports", len(chain))
	}
	for _, r := range chain {
		for _, e := range r.Versions {
			if e.Source != "2020-01-01T00:00:00Z" {
				t.Errorf("%s: source lastUpdated %q, want the file's kept", e.Key, e.Source)
			}
		}
	}
	versions := bulktest.CheckSinceChain(t, chain, final)
	t.Logf("%d exports, %d versions exported, %d resources", len(chain), versions, len(final))
}
