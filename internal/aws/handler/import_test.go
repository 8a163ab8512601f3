package handler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/handler"
	"github.com/tranchehq/tranche/internal/aws/s3"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/importer"
	"github.com/tranchehq/tranche/internal/mem"
)

// TestImport drops a file with a bad line under incoming/ and handles the
// S3 event of events/import.json: the good lines are stored, the bad one is
// reported, the source stays.
func TestImport(t *testing.T) {
	ctx := context.Background()
	fake := awstest.NewS3(t)
	ev := loadEvent[events.S3Event](t, "import.json")
	ev.Records[0].S3.Bucket.Name = fake.Bucket
	const key = "incoming/synthea sample/patients.ndjson" // the event's key, URL-decoded
	data := strings.Join([]string{
		`{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2024-01-01T00:00:00Z"}}`,
		`{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`,
		`{"resourceType":"Observation", this is not json`,
		`{"resourceType":"Group","id":"g1","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/p1"}}]}`,
	}, "\n") + "\n"
	if _, err := fake.Client.PutObject(ctx, &s3sdk.PutObjectInput{Bucket: aws.String(fake.Bucket), Key: aws.String(key), Body: strings.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	reports, err := s3.New(fake.Client, s3.Options{Bucket: fake.Bucket, Prefix: "import-reports/", ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	store := mem.NewResourceStore(4)
	im := &handler.Importer{
		Store: store,
		Fetch: func(ctx context.Context, k string) (io.ReadCloser, error) {
			return s3.Get(ctx, fake.Client, fake.Bucket, k)
		},
		Reports: reports,
		Prefix:  "incoming/",
		TempDir: t.TempDir(),
		Now:     func() time.Time { return time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC) },
	}
	if err := im.Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	counts, _ := store.Count(ctx)
	if counts["Patient"] != 1 || counts["Observation"] != 1 || counts["Group"] != 1 {
		t.Errorf("stored %v, want the three good lines", counts)
	}
	// The store's clock stamps what the trigger stores (R55) and the
	// file's lastUpdated stays in meta.extension.
	if p, err := store.Get(ctx, "Patient", "p1"); err != nil || p.LastUpdated.Before(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)) ||
		!bytes.Contains(p.Body, []byte(`{"url":"`+importer.SourceLastUpdatedURL+`","valueInstant":"2024-01-01T00:00:00Z"}`)) {
		t.Errorf("Patient/p1 = %+v, %v; want it stamped by the store, its source lastUpdated kept", p, err)
	}
	if m, err := store.GroupMembers(ctx, "g1"); err != nil || len(m) != 1 {
		t.Errorf("GroupMembers(g1) = %v, %v", m, err)
	}
	keys, err := reports.List(ctx, "")
	if err != nil || len(keys) != 3 {
		t.Fatalf("reports = %v, %v; want a report, an errors file and a checkpoint", keys, err)
	}
	read := func(k string) []byte {
		o, err := reports.Open(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		b, _ := io.ReadAll(o)
		return b
	}
	var rep handler.Report
	for _, k := range keys {
		switch {
		case strings.HasSuffix(k, "/report.json"):
			json.Unmarshal(read(k), &rep)
		case strings.HasSuffix(k, "/errors.ndjson"):
			lines := bytes.Split(bytes.TrimSpace(read(k)), []byte("\n"))
			var e map[string]any
			if len(lines) != 1 || json.Unmarshal(lines[0], &e) != nil || e["file"] != key || e["line"] != 3.0 {
				t.Errorf("errors.ndjson = %s, want line 3 of %s", lines, key)
			}
		}
	}
	if rep.Source != key || rep.Status != handler.StatusCompleted || rep.Errors != 1 || rep.Refused != 1 || rep.New != 3 || rep.Resources["Observation"] != 1 || rep.Failure != "" {
		t.Errorf("report = %+v", rep)
	}
	// The source stays; a retry of the event imports it again, the same.
	if _, err := s3.Get(ctx, fake.Client, fake.Bucket, key); err != nil {
		t.Errorf("source object after import: %v", err)
	}
	if err := im.Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if counts2, _ := store.Count(ctx); counts2["Observation"] != 1 {
		t.Errorf("after a retried event stored %v, want the same", counts2)
	}
	// Keys outside the prefix are not imported.
	ev.Records[0].S3.Object.Key = "exports/x.ndjson"
	if err := im.Handle(ctx, ev); err != nil {
		t.Errorf("Handle(outside the prefix) = %v", err)
	}
	// A missing object fails the invocation, so Lambda retries it.
	ev.Records[0].S3.Object.Key = "incoming/missing.ndjson"
	if err := im.Handle(ctx, ev); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("Handle(missing) error = %v, want %s", err, bulk.ENOTFOUND)
	}
}
