package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	sfnsdk "github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/handler"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/generate"
	"github.com/tranchehq/tranche/internal/importer"
	"github.com/tranchehq/tranche/internal/mem"
	"github.com/tranchehq/tranche/internal/workflow/asl"
	"github.com/tranchehq/tranche/statemachines"
)

const (
	machineARN      = "arn:aws:states:us-east-1:123456789012:stateMachine:tranche-export"
	signingSecret   = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tranche-signing-key"
	regTokenSecret  = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tranche-registration-token"
	registration    = "registration-token-for-tests"
	eventsDir       = "../../events"
	compartmentOnly = "Patient,Encounter,Observation,Condition,Procedure"
)

// bench is the serverless deployment on the emulators: dynalite,
// gofakes3, Secrets Manager and Step Functions fakes (the latter running
// statemachines/export.asl.json with Tranche's ASL runner), and an API
// Gateway shim in front of the HTTP function, each function an app.AWS of
// its own built from the environment as a Lambda's cold start builds it.
type bench struct {
	base   string
	http   *http.Client
	sfn    *awstest.StepFunctions
	s3     *awstest.FakeS3
	bucket string
	oracle *mem.ResourceStore // the same data in the reference store
	fault  *faultyObjects
	killAs atomic.Value // the error name a killed ExportItem reports
	steps  *app.AWS     // the workflow functions
	// hold, when set, makes every ExportItem invocation send its job id
	// and block until its execution is stopped.
	hold atomic.Pointer[chan string]
}

func newBench(t *testing.T) *bench {
	b := startBench(t)
	b.load(t)
	return b
}

func startBench(t *testing.T) *bench {
	db := awstest.DynamoDB(t) // skips without dynalite
	ctx := context.Background()
	b := &bench{s3: awstest.NewS3Bucket(t, awstest.StackBucket), sfn: awstest.NewStepFunctions(t)}
	b.bucket = b.s3.Bucket
	key, err := client.GenerateES384()
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := key.PrivateJWK()
	if err != nil {
		t.Fatal(err)
	}
	rawJWK, _ := json.Marshal(jwk)
	secretsURL := awstest.Secrets(t, map[string]string{signingSecret: string(rawJWK), regTokenSecret: registration + "\n"})

	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
		"AWS_CONFIG_FILE": filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": "",
		// The endpoints, as LocalStack users set them: nothing else in
		// the code names an endpoint.
		"AWS_ENDPOINT_URL_DYNAMODB":         awstest.DynamoDBEndpoint(t), // runs TransactWriteItems
		"AWS_ENDPOINT_URL_S3":               b.s3.URL,
		"AWS_ENDPOINT_URL_SFN":              b.sfn.URL,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER":  secretsURL,
		"TRANCHE_JOBS_TABLE":                awstest.Table(t, db, "Jobs"),
		"TRANCHE_JOB_ITEMS_TABLE":           awstest.Table(t, db, "JobItems"),
		"TRANCHE_CLIENTS_TABLE":             awstest.Table(t, db, "Clients"),
		"TRANCHE_REPLAY_TABLE":              awstest.Table(t, db, "Replay"),
		"TRANCHE_RESOURCES_TABLE":           awstest.Table(t, db, "Resources"),
		"TRANCHE_BUCKET":                    b.bucket,
		"TRANCHE_S3_PATH_STYLE":             "true",
		"TRANCHE_STATE_MACHINE_ARN":         machineARN,
		"TRANCHE_SIGNING_KEY_SECRET":        signingSecret,
		"TRANCHE_REGISTRATION_TOKEN_SECRET": regTokenSecret,
		"TRANCHE_SHARDS":                    "4",
		"TRANCHE_MAX_FILE_RESOURCES":        "40",
		"TRANCHE_LOG_LEVEL":                 "error",
	} {
		t.Setenv(k, v)
	}

	// The workflow functions.
	steps, err := app.NewAWSFromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.steps = steps
	b.fault = &faultyObjects{ObjectStore: steps.Service.Objects}
	steps.Service.Objects = b.fault
	b.killAs.Store("Lambda.ServiceException")
	exportItem := handler.Task(steps.Steps.ExportItem)
	// Step Functions reads a Distributed Map's item list from S3 itself.
	b.sfn.SetS3(b.s3.Client)
	err = b.sfn.SetSteps(statemachines.Export, map[string]asl.Step{
		"PlanFunctionArn":       awstest.Invoke(handler.Task(steps.Steps.Plan)),
		"ExportItemFunctionArn": awstest.Invoke(b.killable(exportItem)),
		"FinalizeFunctionArn":   awstest.Invoke(handler.Task(steps.Steps.Finalize)),
		"MarkFailedFunctionArn": awstest.Invoke(handler.Task(steps.Steps.MarkFailed)),
	})
	if err != nil {
		t.Fatal(err)
	}

	srv := serveAPI(t)
	b.base, b.http = srv.URL, srv.Client()
	return b
}

// serveAPI serves the HTTP functions, built from the environment as at a
// cold start, behind the API Gateway shim until the test ends.
func serveAPI(t *testing.T) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	web, err := app.NewAWSFromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := web.Handler(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(awstest.Gateway(handler.HTTP(h), "$default"))
	t.Cleanup(srv.Close)
	return srv
}

// load generates 8 patients' data, drops it under incoming/ and runs the
// import function on the S3 event of events/import.json; the oracle
// imports the same bytes into the reference store.
func (b *bench) load(t *testing.T) {
	var data strings.Builder
	if _, err := generate.Stream(context.Background(), generate.Options{Patients: 8, Seed: 7}, func(string) (io.Writer, error) { return &data, nil }, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "all types.ndjson")
	os.WriteFile(path, []byte(data.String()), 0o600)
	b.loadFiles(t, path)
}

// loadFiles drops files under incoming/ and delivers S3's notifications
// of them through the import queue to the import function (HandleSQS), as
// the queue's event source mapping does (awstest.EventSource); the oracle
// imports the same files into the reference store.
func (b *bench) loadFiles(t *testing.T, paths ...string) {
	ctx := context.Background()
	now := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	imp, err := app.NewAWSFromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	im, err := imp.Importer()
	if err != nil {
		t.Fatal(err)
	}
	im.TempDir = t.TempDir()
	im.Now = func() time.Time { return now }
	q := newImportQueue(nil)
	im.Queue, im.MaxReceives = q, handler.ImportMaxReceives
	for i, path := range paths {
		b.dropFile(t, q, path, i)
	}
	src := &awstest.EventSource{SQS: q, Queue: importQueueName, BatchSize: 1, Invoke: im.HandleSQS}
	drainImports(t, q, src, len(paths))
	b.oracle = mem.NewResourceStore(4)
	if _, err := importer.Import(ctx, b.oracle, importer.Options{Now: func() time.Time { return now }}, paths...); err != nil {
		t.Fatal(err)
	}
}

// The import queue and its dead-letter queue, as template.yaml makes them
// (TestImportQueue in infra/ checks the template).
const (
	importQueueName   = "tranche-ImportQueue"
	importDeadLetters = "tranche-ImportDeadLetterQueue"
	importVisibility  = 6 * 900 * time.Second
)

// newImportQueue is the import queue with its redrive policy; rec, if
// set, records the calls made to it.
func newImportQueue(rec *awstest.Recorder) *awstest.SQS {
	q := awstest.NewSQS(rec)
	q.CreateQueue(importDeadLetters, importVisibility, "", 0)
	q.CreateQueue(importQueueName, importVisibility, importDeadLetters, handler.ImportMaxReceives)
	return q
}

// dropFile uploads path under incoming/synthetic/ and sends S3's
// notification of the upload to the import queue.
func (b *bench) dropFile(t *testing.T, q *awstest.SQS, path string, n int) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	key := "incoming/synthetic/" + filepath.Base(path)
	out, err := b.s3.Client.PutObject(context.Background(), &s3sdk.PutObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key), Body: f})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.SendMessage(importQueueName, awstest.S3Notification(b.bucket, key, aws.ToString(out.VersionId), fmt.Sprintf("%016X", n+1))); err != nil {
		t.Fatal(err)
	}
	return key
}

// drainImports delivers the import queue's notifications until none is
// left, and fails the test if any ended in the dead-letter queue: every
// file is imported.
func drainImports(t *testing.T, q *awstest.SQS, src *awstest.EventSource, files int) {
	t.Helper()
	if err := src.Drain(context.Background(), 4*files+10); err != nil {
		t.Fatal(err)
	}
	if dead := q.Bodies(importDeadLetters); len(dead) > 0 {
		t.Fatalf("notifications in the dead-letter queue (not imported): %q", dead)
	}
}

// export runs one export with the real client: register, token, kick-off,
// poll, download; it returns the "Type/id" of every exported line, failing
// on duplicates.
func (b *bench) export(t *testing.T, req client.Request) []string {
	t.Helper()
	keys, _ := b.exportWith(t, b.client(t), req)
	return keys
}

// exportWith is export with client c; it also returns the manifest.
func (b *bench) exportWith(t *testing.T, c *client.Client, req client.Request) ([]string, *client.Manifest) {
	t.Helper()
	lines, m := exportLines(t, c, req)
	seen := map[string]bool{}
	var keys []string
	for _, l := range lines {
		var r struct{ ResourceType, ID string }
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		k := r.ResourceType + "/" + r.ID
		if seen[k] {
			t.Errorf("%s exported more than once", k)
		}
		seen[k] = true
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, m
}

// exportLines exports req with c, downloads every file and returns the
// output files' lines and the manifest.
func exportLines(t *testing.T, c *client.Client, req client.Request) ([][]byte, *client.Manifest) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	status, err := c.Kickoff(ctx, req)
	if err != nil {
		t.Fatalf("Kickoff(%+v): %v", req, err)
	}
	m, err := c.Poll(ctx, status, nil)
	if err != nil {
		t.Fatalf("Poll(%s): %v", status, err)
	}
	res, err := c.Download(ctx, m, filepath.Join(t.TempDir(), "out"), 4)
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	var lines [][]byte
	for _, f := range res.Files {
		if f.Kind != client.KindOutput {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(res.Dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range bytes.Split(raw, []byte("\n")) {
			if len(l) > 0 {
				lines = append(lines, l)
			}
		}
	}
	return lines, m
}

func (b *bench) client(t *testing.T) *client.Client {
	t.Helper()
	return b.clientAt(t, b.base, b.http)
}

// clientAt registers a client with the API at base, reached with hc.
func (b *bench) clientAt(t *testing.T, base string, hc *http.Client) *client.Client {
	t.Helper()
	ctx := context.Background()
	key, err := client.GenerateES384()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := client.Register(ctx, client.RegisterRequest{
		FHIRBase: base, InitialToken: registration, ClientName: "bench", Scope: "system/*.rs",
		JWKS: []client.JWK{key.PublicJWK()}, HTTP: hc,
	})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return &client.Client{
		HTTP: hc, Base: base,
		Auth: &client.BackendServices{ClientID: reg.ClientID, Key: key, TokenURL: reg.TokenEndpoint, FHIRBase: base, Scope: "system/*.rs", HTTP: hc},
		Sleep: func(ctx context.Context, d time.Duration) error {
			return client.SleepContext(ctx, min(d, 20*time.Millisecond))
		},
	}
}

// expected lists the oracle's resources that an export of types at level
// must return.
func (b *bench) expected(t *testing.T, level client.Level, group string, types []string) []string {
	t.Helper()
	ctx := context.Background()
	set := map[string]bool{}
	visit := func(r *bulk.Resource, _ bulk.Cursor) error {
		if slices.Contains(types, r.Type) {
			set[r.Type+"/"+r.ID] = true
		}
		return nil
	}
	switch level {
	case client.LevelSystem:
		for _, typ := range types {
			if err := b.oracle.List(ctx, typ, "", visit); err != nil {
				t.Fatal(err)
			}
		}
	case client.LevelPatient:
		for _, typ := range types {
			for shard := range b.oracle.Shards() {
				if err := b.oracle.Scan(ctx, bulk.ScanRequest{Type: typ, Shard: shard, Range: bulk.Range{Until: time.Now()}, CompartmentOnly: true}, visit); err != nil {
					t.Fatal(err)
				}
			}
		}
	case client.LevelGroup:
		members, err := b.oracle.GroupMembers(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range members {
			if err := b.oracle.Compartment(ctx, p, types, visit); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// withReferenced adds to want, the expected set of an export, the oracle's
// resources of refTypes that want's resources reference (issue 15 item 3:
// the referenced resources of a Patient or Group export; the test data's
// Practitioners and Organizations name no patient).
func (b *bench) withReferenced(t *testing.T, want []string, refTypes []string) []string {
	t.Helper()
	ctx := context.Background()
	set := map[string]bool{}
	for _, k := range want {
		set[k] = true
	}
	for _, k := range want {
		typ, id, _ := strings.Cut(k, "/")
		r, err := b.oracle.Get(ctx, typ, id)
		if err != nil {
			t.Fatal(err)
		}
		fhir.EachReference(r.Body, func(ref string) {
			rt, rid, ok := fhir.ParseReference(ref)
			if !ok || !slices.Contains(refTypes, rt) {
				return
			}
			if _, err := b.oracle.Get(ctx, rt, rid); err == nil {
				set[rt+"/"+rid] = true
			}
		})
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// levelCase is one export of the three levels both benches check.
type levelCase struct {
	name string
	req  client.Request
}

// levelCases are a system export of types plus two non-compartment types,
// and Patient and Group (POST) exports of types, the Group being the
// oracle's smallest with members: a Group export reads only its members'
// compartments.
func (b *bench) levelCases(types []string) []levelCase {
	var group string
	size := 0
	b.oracle.List(context.Background(), "Group", "", func(r *bulk.Resource, _ bulk.Cursor) error {
		if len(r.Members) > 0 && (group == "" || len(r.Members) < size) {
			group, size = r.ID, len(r.Members)
		}
		return nil
	})
	return []levelCase{
		{"System", client.Request{Level: client.LevelSystem, Types: append(slices.Clone(types), "Practitioner", "Organization")}},
		{"Patient", client.Request{Level: client.LevelPatient, Types: types}},
		{"Group", client.Request{Level: client.LevelGroup, GroupID: group, Types: types, Post: true}},
	}
}

// syntheaFiles lists ../shared/data/synthea-100's files: none when the
// checkout has no ../shared.
func syntheaFiles() []string {
	files, _ := filepath.Glob("../../../shared/data/synthea-100/*.ndjson*")
	return files
}

// storedTypes returns the types the reference store holds, sorted, and
// its resources in all.
func (b *bench) storedTypes() ([]string, int64) {
	counts, _ := b.oracle.Count(context.Background())
	var total int64
	var types []string
	for typ, n := range counts {
		total += n
		types = append(types, typ)
	}
	slices.Sort(types)
	return types, total
}

// timeSynthea loads synthea-100 with the in-process import function (the
// export is what is timed), then times a system export of every type and
// its download, and checks the exported set.
func (b *bench) timeSynthea(t *testing.T, files []string, through string) {
	start := time.Now()
	b.loadFiles(t, files...)
	types, total := b.storedTypes()
	t.Logf("import: %d files, %d resources in %v", len(files), total, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	req := client.Request{Level: client.LevelSystem, Types: types}
	got := b.export(t, req)
	t.Logf("system export and download %s: %d resources in %v", through, len(got), time.Since(start).Round(time.Millisecond))
	if diff := cmp.Diff(b.expected(t, req.Level, "", types), got); diff != "" {
		t.Errorf("exported set mismatch (-want +got):\n%s", diff)
	}
}

// TestServerless exports at all three levels through the AWS adapters and
// the Lambda handlers, and checks each returns exactly the resources the
// reference store says it must, each once.
func TestServerless(t *testing.T) {
	b := newBench(t)
	types := strings.Split(compartmentOnly, ",")
	for _, typ := range types {
		if !fhir.IsPatientCompartmentType(typ) && typ != "Patient" {
			t.Fatalf("%s is not a Patient compartment type", typ)
		}
	}
	for _, tc := range b.levelCases(types) {
		t.Run(tc.name, func(t *testing.T) {
			want := b.expected(t, tc.req.Level, tc.req.GroupID, tc.req.Types)
			if len(want) == 0 {
				t.Fatal("the oracle expects nothing: the test data is wrong")
			}
			got := b.export(t, tc.req)
			t.Logf("%s export: %d resources, %d expected", tc.name, len(got), len(want))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("exported set mismatch (-want +got):\n%s", diff)
			}
		})
	}

	// One execution per job, named by the job id.
	if n := len(b.sfn.Executions()); n != 3 {
		t.Errorf("%d executions started for 3 exports", n)
	}
	if keys := b.itemLists(t); len(keys) != 0 {
		t.Errorf("item lists %v written for small exports, want none (inline Map)", keys)
	}

	t.Run("DistributedMap", func(t *testing.T) {
		// Above InlineItems, Plan writes the item list to S3 and the
		// Distributed Map reads it (as Step Functions does, with the
		// bucket's S3 client) and runs each item as a child execution.
		b.steps.Service.Config.InlineItems = 1
		defer func() { b.steps.Service.Config.InlineItems = export.DefaultConfig().InlineItems }()
		req := client.Request{Level: client.LevelSystem, Types: append(slices.Clone(types), "Practitioner", "Organization")}
		got := b.export(t, req)
		if diff := cmp.Diff(b.expected(t, req.Level, "", req.Types), got); diff != "" {
			t.Errorf("exported set mismatch (-want +got):\n%s", diff)
		}
		keys := b.itemLists(t)
		if len(keys) != 1 {
			t.Fatalf("item lists = %v, want one", keys)
		}
		out, err := b.s3.Client.GetObject(context.Background(), &s3sdk.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(keys[0])})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		var items []int
		if err := json.NewDecoder(out.Body).Decode(&items); err != nil || len(items) < 2 {
			t.Errorf("item list %s = %v, %v; want a plain JSON array of at least 2 indexes", keys[0], items, err)
		}
	})

	t.Run("PresignedURLs", func(t *testing.T) {
		// TRANCHE_FILE_URLS=presigned: the manifest lists presigned S3
		// URLs (requiresAccessToken false), and the real client downloads
		// every file straight from S3, without a token and without the
		// API (R79).
		t.Setenv("TRANCHE_FILE_URLS", "presigned")
		srv := serveAPI(t)
		rec := &recorder{next: srv.Client().Transport}
		c := b.clientAt(t, srv.URL, &http.Client{Transport: rec})
		req := client.Request{Level: client.LevelPatient, Types: types}
		got, m := b.exportWith(t, c, req)
		if diff := cmp.Diff(b.expected(t, req.Level, "", req.Types), got); diff != "" {
			t.Errorf("exported set mismatch (-want +got):\n%s", diff)
		}
		if m.RequiresAccessToken {
			t.Error("requiresAccessToken = true, want false")
		}
		if m.Expires.IsZero() || m.Expires.After(time.Now().Add(5*time.Minute)) {
			t.Errorf("manifest Expires = %v, want when its URLs expire, within 5 minutes", m.Expires)
		}
		downloads := 0
		for _, r := range rec.all() {
			switch {
			case strings.HasPrefix(r.url, b.s3.URL+"/"):
				downloads++
				if r.auth {
					t.Errorf("GET %s carried an Authorization header", r.url)
				}
				if !strings.Contains(r.url, "X-Amz-Signature=") || !strings.Contains(r.url, "X-Amz-Expires=300") {
					t.Errorf("GET %s: want a presigned URL valid 300 s", r.url)
				}
			case strings.Contains(r.url, "/files/"):
				t.Errorf("GET %s: the client went through the API", r.url)
			}
		}
		if want := len(m.Output) + len(m.Deleted) + len(m.Error); downloads != want || want == 0 {
			t.Errorf("%d downloads from S3, want one per manifest file (%d)", downloads, want)
		}
	})

	t.Run("Contract", func(t *testing.T) {
		// A client whose contract allows one Group, stored in the Clients
		// table: system level is 403, and a Patient-level export through
		// the Kickoff, Plan and ExportItem functions is exactly that
		// Group's members' compartments (issue 13, R93): nothing of the
		// contract's enforcement is local-only.
		ctx := context.Background()
		group := b.levelCases(types)[2].req.GroupID
		c := b.client(t)
		a, err := app.NewAWSFromEnv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		id := c.Auth.(*client.BackendServices).ClientID
		stored, err := a.Clients.GetClient(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		stored.Groups = []string{group}
		if err := a.Clients.UpdateClient(ctx, stored); err != nil {
			t.Fatal(err)
		}
		_, err = c.Kickoff(ctx, client.Request{Level: client.LevelSystem, Types: types})
		if client.StatusCode(err) != http.StatusForbidden {
			t.Errorf("system export under a Group contract: %v, want 403", err)
		}
		req := client.Request{Level: client.LevelPatient, Types: types}
		got, _ := b.exportWith(t, c, req)
		if diff := cmp.Diff(b.expected(t, client.LevelGroup, group, types), got); diff != "" {
			t.Errorf("Patient export under a contract for Group/%s: exported set mismatch (-want +got):\n%s", group, diff)
		}
	})

	t.Run("ItemListsNotGzipped", func(t *testing.T) {
		// Output files may be gzipped; the item list Step Functions
		// parses may not.
		t.Setenv("TRANCHE_GZIP_OBJECTS", "true")
		ctx := context.Background()
		a, err := app.NewAWSFromEnv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lists := a.Service.ItemLists
		w, err := lists.Store.Create(ctx, "gzip-check/plan/items.json")
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("[0,1,2]\n"))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		out, err := b.s3.Client.GetObject(ctx, &s3sdk.GetObjectInput{Bucket: aws.String(lists.Bucket), Key: aws.String(lists.Prefix + "gzip-check/plan/items.json")})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		body, _ := io.ReadAll(out.Body)
		if string(body) != "[0,1,2]\n" || out.ContentEncoding != nil {
			t.Errorf("item list in S3 = %q (Content-Encoding %v), want the JSON as written", body, aws.ToString(out.ContentEncoding))
		}
	})

	t.Run("KilledItemRetried", func(t *testing.T) {
		// An ExportItem dies in the middle of a file; Step Functions
		// reports a Lambda service error, and the definition retries it.
		b.fault.arm(3000)
		req := client.Request{Level: client.LevelSystem, Types: []string{"Observation"}}
		got := b.export(t, req)
		if !b.fault.fired() {
			t.Fatal("the fault was never injected")
		}
		if diff := cmp.Diff(b.expected(t, req.Level, "", req.Types), got); diff != "" {
			t.Errorf("exported set after a killed item mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("KilledItemUnknown", func(t *testing.T) {
		// A Lambda that crashes or times out is Lambda.Unknown (or
		// Sandbox.Timedout) to Step Functions.
		b.killAs.Store("Lambda.Unknown")
		defer b.killAs.Store("Lambda.ServiceException")
		b.fault.arm(3000)
		req := client.Request{Level: client.LevelSystem, Types: []string{"Observation"}}
		got := b.export(t, req)
		if diff := cmp.Diff(b.expected(t, req.Level, "", req.Types), got); diff != "" {
			t.Errorf("exported set after a crashed item mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		ctx := context.Background()
		c := b.client(t)
		status, err := c.Kickoff(ctx, client.Request{Level: client.LevelSystem})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Cancel(ctx, status); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		if _, err := c.Poll(ctx, status, nil); client.StatusCode(err) != http.StatusNotFound {
			t.Errorf("Poll after cancel error = %v, want 404", err)
		}
		id := status[strings.LastIndex(status, "/")+1:]
		b.sfn.Wait(ctx, id)
		// Nothing of the job is left in the bucket.
		b.noObjects(t, ctx, id, "the cancelled job")
	})

	t.Run("Events", func(t *testing.T) {
		// The fixtures of events/ against the deployed handler: discovery
		// answers, and a named stage reaches the kick-off (401 for the
		// placeholder token), not a 404.
		for _, tc := range []struct {
			file string
			want int
		}{
			{"metadata.json", 200},
			{"well-known.json", 200},
			{"kickoff-named-stage.json", 401},
			{"status.json", 401},
		} {
			raw, err := os.ReadFile(filepath.Join(eventsDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var ev events.APIGatewayV2HTTPRequest
			json.Unmarshal(raw, &ev)
			res := b.invoke(t, ev)
			if res.StatusCode != tc.want {
				t.Errorf("%s: status %d, want %d (%s)", tc.file, res.StatusCode, tc.want, res.Body)
			}
			if tc.file == "well-known.json" && !strings.Contains(res.Body, `"token_endpoint":"https://abc123xyz.execute-api.us-east-1.amazonaws.com/token"`) {
				t.Errorf("smart-configuration = %s, want the token endpoint on the API's https domain", res.Body)
			}
		}
	})

	t.Run("WatchdogFailsAbortedExecution", func(t *testing.T) {
		// An execution stopped from outside (the console, a quota)
		// ends without MarkFailed: the job stays in progress and the
		// client would poll 202 forever. The purge function's watchdog
		// fails it once it is older than the grace period, and the
		// next poll gets the failure; a job whose execution runs is left
		// alone.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		held := make(chan string, 16)
		b.hold.Store(&held)
		defer b.hold.Store(nil)
		c := b.client(t)
		kickoff := func() (status, id string) {
			t.Helper()
			status, err := c.Kickoff(ctx, client.Request{Level: client.LevelSystem, Types: []string{"Patient"}})
			if err != nil {
				t.Fatal(err)
			}
			id = status[strings.LastIndex(status, "/")+1:]
			for {
				select {
				case got := <-held:
					if got == id {
						return status, id
					}
				case <-ctx.Done():
					t.Fatalf("job %s never reached ExportItem", id)
				}
			}
		}
		stuckURL, stuck := kickoff()
		runningURL, running := kickoff()
		defer c.Cancel(context.Background(), runningURL)

		_, err := sfnsdk.NewFromConfig(b.steps.SDK).StopExecution(ctx, &sfnsdk.StopExecutionInput{
			ExecutionArn: aws.String(strings.Replace(machineARN, ":stateMachine:", ":execution:", 1) + ":" + stuck),
		})
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := b.sfn.Wait(ctx, stuck); st != "ABORTED" {
			t.Fatalf("stopped execution status = %s, want ABORTED", st)
		}
		// Nothing failed the job: the client still sees 202.
		pctx, stop := context.WithCancel(ctx)
		saw202 := false
		_, err = c.Poll(pctx, stuckURL, func(st client.PollStatus) {
			saw202 = saw202 || st.Status == http.StatusAccepted
			stop()
		})
		if !saw202 || !errors.Is(err, context.Canceled) {
			t.Fatalf("Poll of the aborted execution's job = %v (202 seen: %v), want still in progress", err, saw202)
		}

		purge, err := app.NewAWSFromEnv(ctx) // the purge function, as deployed with TRANCHE_STATE_MACHINE_ARN
		if err != nil {
			t.Fatal(err)
		}
		// Within the grace period nothing is failed: a job's execution
		// may not have started yet.
		if got, err := purge.Purge(ctx); err != nil || got["failed"] != 0 {
			t.Errorf("Purge within the grace period = %v, %v; want nothing failed", got, err)
		}
		purge.Service.Now = func() time.Time { return time.Now().Add(export.DefaultConfig().WatchdogGrace + time.Minute) }
		got, err := purge.Purge(ctx)
		if err != nil || got["failed"] != 1 {
			t.Errorf("Purge after the grace period = %v, %v; want the stuck job failed", got, err)
		}

		_, err = c.Poll(ctx, stuckURL, nil)
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != http.StatusInternalServerError {
			t.Fatalf("Poll after the watchdog = %v, want 500 with an OperationOutcome", err)
		}
		for _, internal := range []string{"execution", "watchdog", "WorkflowEnded", "Abort"} {
			if strings.Contains(ce.Text, internal) {
				t.Errorf("the client sees %q, internal text %q", ce.Text, internal)
			}
		}
		b.noObjects(t, ctx, stuck, "the failed job")
		// The job whose execution runs is untouched.
		if j, err := b.steps.Jobs.GetJob(ctx, running); err != nil || j.Status.Terminal() {
			t.Errorf("running job after the watchdog = %+v, %v; want still in progress", j, err)
		}
	})
}

// noObjects checks that nothing of job id is left in the bucket (what
// names the job in the message).
func (b *bench) noObjects(t *testing.T, ctx context.Context, id, what string) {
	t.Helper()
	out, err := b.s3.Client.ListObjectsV2(ctx, &s3sdk.ListObjectsV2Input{Bucket: aws.String(b.bucket), Prefix: aws.String("exports/" + id + "/")})
	if err != nil || len(out.Contents) != 0 {
		var keys []string
		for _, o := range out.Contents {
			keys = append(keys, *o.Key)
		}
		t.Errorf("objects of %s = %q, %v; want none", what, keys, err)
	}
}

// itemLists returns the keys of the Distributed Map item lists in the
// bucket.
func (b *bench) itemLists(t *testing.T) []string {
	t.Helper()
	var keys []string
	pages := s3sdk.NewListObjectsV2Paginator(b.s3.Client, &s3sdk.ListObjectsV2Input{Bucket: aws.String(b.bucket), Prefix: aws.String("exports/")})
	for pages.HasMorePages() {
		out, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out.Contents {
			if strings.HasSuffix(*o.Key, "/plan/items.json") {
				keys = append(keys, *o.Key)
			}
		}
	}
	return keys
}

// invoke calls a fresh HTTP function with an event, as `sam local invoke`
// does.
func (b *bench) invoke(t *testing.T, ev events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	t.Helper()
	ctx := context.Background()
	a, err := app.NewAWSFromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := a.Handler(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := handler.HTTP(h)(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

var errKilled = errors.New("killed")

// killable runs an ExportItem invocation that the fault can kill: its
// context is cancelled mid-write, and the invocation reports the error
// Step Functions sees for a dead Lambda.
func (b *bench) killable(step func(context.Context, export.ItemInput) (export.ItemOutput, error)) func(context.Context, export.ItemInput) (export.ItemOutput, error) {
	return func(ctx context.Context, in export.ItemInput) (export.ItemOutput, error) {
		if h := b.hold.Load(); h != nil {
			select {
			case *h <- in.JobID:
			default:
			}
			<-ctx.Done()
			return export.ItemOutput{}, ctx.Err()
		}
		kctx, kill := context.WithCancelCause(ctx)
		defer kill(nil)
		out, err := step(b.fault.watch(kctx, kill), in)
		if errors.Is(context.Cause(kctx), errKilled) {
			return out, messages.InvokeResponse_Error{Type: b.killAs.Load().(string), Message: "the function was killed"}
		}
		return out, err
	}
}

// faultyObjects kills the invocation that writes the armed byte.
type faultyObjects struct {
	bulk.ObjectStore
	mu      sync.Mutex
	left    int64 // bytes until the fault; 0 when disarmed
	didFire bool
}

type killKey struct{}

func (f *faultyObjects) arm(after int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left, f.didFire = after, false
}

func (f *faultyObjects) fired() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.didFire
}

func (f *faultyObjects) watch(ctx context.Context, kill context.CancelCauseFunc) context.Context {
	return context.WithValue(ctx, killKey{}, kill)
}

func (f *faultyObjects) Create(ctx context.Context, key string) (bulk.ObjectWriter, error) {
	w, err := f.ObjectStore.Create(ctx, key)
	if err != nil {
		return nil, err
	}
	kill, _ := ctx.Value(killKey{}).(context.CancelCauseFunc)
	return &faultyWriter{ObjectWriter: w, f: f, kill: kill}, nil
}

type faultyWriter struct {
	bulk.ObjectWriter
	f    *faultyObjects
	kill context.CancelCauseFunc
}

func (w *faultyWriter) Write(p []byte) (int, error) {
	w.f.mu.Lock()
	fire := false
	if w.f.left > 0 && w.kill != nil {
		w.f.left -= int64(len(p))
		if w.f.left <= 0 {
			w.f.left, w.f.didFire, fire = 0, true, true
		}
	}
	w.f.mu.Unlock()
	if fire {
		w.kill(errKilled)
		return 0, fmt.Errorf("killed mid-file: %w", context.Canceled)
	}
	return w.ObjectWriter.Write(p)
}

// TestServerlessSynthea times an import and a system export of
// ../shared/data/synthea-100 through the serverless bench. It is opt-in
// (TRANCHE_BENCH=1): dynalite takes minutes for it.
func TestServerlessSynthea(t *testing.T) {
	files := syntheaFiles()
	if os.Getenv("TRANCHE_BENCH") == "" || len(files) == 0 {
		t.Skip("set TRANCHE_BENCH=1 (with ../shared/data/synthea-100 present) to time the serverless bench")
	}
	startBench(t).timeSynthea(t, files, "with the handlers in-process")
}

// recorder is an http.RoundTripper that records each request's URL and
// whether it carried an Authorization header.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	url  string
	auth bool
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{url: req.URL.String(), auth: req.Header.Get("Authorization") != ""})
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}
