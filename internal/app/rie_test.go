//go:build linux

package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	ddbsdk "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	sfnsdk "github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/cfn"
	"github.com/tranchehq/tranche/internal/aws/handler"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/generate"
	"github.com/tranchehq/tranche/internal/importer"
	"github.com/tranchehq/tranche/internal/mem"
	"github.com/tranchehq/tranche/internal/workflow/asl"
	"github.com/tranchehq/tranche/statemachines"
)

// The Lambda bench: the same emulated services as TestServerless
// (dynalite, gofakes3, the Secrets Manager fake and the Step Functions
// emulator running statemachines/export.asl.json), but every function is
// its real bootstrap binary under aws-lambda-runtime-interface-emulator:
// the HTTP functions behind the API Gateway shim, routed as template.yaml
// routes, and the workflow functions invoked by the state machine through
// the Invoke API.

const (
	repoRoot = "../.."
	// itemConcurrency is the export-item instances at most (and the Map's
	// MaxConcurrency, TRANCHE_MAX_CONCURRENCY).
	itemConcurrency = 4
)

type rieBench struct {
	*bench
	bins  map[string]string // function → binary
	fns   map[string]*awstest.Function
	tpl   *awstest.Template
	route func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)
	fault *s3Fault
	// rec records every call each function makes under its own identity
	// (its logical id as the access key id), for the IAM conformance check.
	rec *awstest.Recorder
	// distributed sends Plan to an instance with TRANCHE_INLINE_ITEMS=1
	// (every plan a Distributed Map); presigned sends the status routes to
	// one with TRANCHE_FILE_URLS=presigned.
	distributed, presigned atomic.Bool
	// hold, when set, makes each ExportItem invocation send its job id
	// and wait until its execution is stopped.
	hold atomic.Pointer[chan string]
	// short sends ExportItem to instances with a 2 s timeout whose S3
	// front can stall an upload past it (shortFault).
	short      atomic.Bool
	shortFault *s3Fault
	onTimeout  func() // called when an ExportItem invocation times out
	// inject holds errors the next ExportItem invocations fail with
	// before reaching the function, as Lambda's own errors do (throttling,
	// a client-side timeout).
	inject []string
	// queue is the import queue (with its dead-letter queue) that S3's
	// notifications go to, served to the import function as its SQS
	// endpoint; imports is its event source mapping, invoking the real
	// import function.
	queue   *awstest.SQS
	imports *awstest.EventSource
	// dataPath is the NDJSON the bench imported; local serves the same
	// data with the local binary's code, for byte-for-byte comparison.
	dataPath string
	local    *client.Client

	mu         sync.Mutex
	itemErrors []string // the errors the state machine saw from ExportItem
}

func (b *rieBench) takeItemErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	errs := b.itemErrors
	b.itemErrors = nil
	return errs
}

// functionDir is the functions/ directory of a template logical id.
func functionDir(logicalID string) string {
	return strings.ToLower(strings.TrimSuffix(logicalID, "Function"))
}

// The bench's stack: template.yaml deployed as the stack "tranche" in
// account 123456789012, us-east-1.
const (
	stackName        = "tranche"
	stateMachineRole = "ExportStateMachine"
)

// lambdaARN is the ARN of a function of the bench's stack (SAM names
// functions <stack>-<LogicalId>-<suffix>).
func lambdaARN(logicalID string) string {
	return "arn:aws:lambda:us-east-1:123456789012:function:" + stackName + "-" + logicalID + "-TEST"
}

func newRIEBench(t *testing.T) *rieBench {
	rie := awstest.FindRIE(t)
	b := &rieBench{bench: startBench(t), fns: map[string]*awstest.Function{}, rec: awstest.NewRecorder()} // skips without dynalite
	// Every service behind a recording front: the functions reach them
	// through AWS_ENDPOINT_URL_* (read when an instance starts).
	s3Front := b.rec.Front(t, awstest.ServiceS3, b.s3.URL)
	// The import queue records the import function's own calls itself
	// (the recording fronts do not speak SQS).
	b.queue = newImportQueue(b.rec)
	for env, front := range map[string]string{
		"AWS_ENDPOINT_URL_SQS":             b.queue.Serve(t),
		"AWS_ENDPOINT_URL_DYNAMODB":        b.rec.Front(t, awstest.ServiceDynamoDB, awstest.DynamoDBEndpoint(t)),
		"AWS_ENDPOINT_URL_S3":              s3Front,
		"AWS_ENDPOINT_URL_SFN":             b.rec.Front(t, awstest.ServiceSFN, b.sfn.URL),
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": b.rec.Front(t, awstest.ServiceSecrets, os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")),
	} {
		t.Setenv(env, front)
	}
	// Step Functions reads (and writes) the Distributed Map's S3 objects
	// with the state machine's role.
	smCfg := awstest.Config()
	smCfg.Credentials = credentials.NewStaticCredentialsProvider(stateMachineRole, "test", "")
	smS3 := s3sdk.NewFromConfig(smCfg, func(o *s3sdk.Options) {
		o.BaseEndpoint = aws.String(s3Front)
		o.UsePathStyle = true
	})
	b.sfn.SetS3(smS3)

	// Where aws.mk's lambda-host target built them (TRANCHE_LAMBDA_DIR),
	// else the same cache in the checkout: unchanged bootstraps are not
	// relinked.
	dir := os.Getenv("TRANCHE_LAMBDA_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot, ".cache", "lambda-host")
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	start := time.Now()
	b.bins = awstest.BuildFunctions(t, repoRoot, dir)
	t.Logf("built %d functions for %s in %v", len(b.bins), dir, time.Since(start).Round(time.Millisecond))
	src, err := os.ReadFile(filepath.Join(repoRoot, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if b.tpl, err = awstest.ReadTemplate(src); err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	logs := t.TempDir()
	// A function's environment: the bench's (startBench set it in this
	// process), its own identity, Globals' TRANCHE_MAX_CONCURRENCY, the
	// state machine only where template.yaml gives it, and extra.
	timeouts := map[string]time.Duration{"exportitem-short": 2 * time.Second}
	newFn := func(logicalID, key string, concurrency int, instanceEnv func(int) []string, extra ...string) *awstest.Function {
		name := functionDir(logicalID)
		bin, ok := b.bins[name]
		if !ok {
			t.Fatalf("%s: no functions/%s", logicalID, name)
		}
		env := []string{"AWS_ACCESS_KEY_ID=" + logicalID, fmt.Sprintf("TRANCHE_MAX_CONCURRENCY=%d", itemConcurrency)}
		if _, ok := b.tpl.Env[logicalID]["TRANCHE_STATE_MACHINE_ARN"]; !ok {
			env = append(env, "TRANCHE_STATE_MACHINE_ARN=")
		}
		timeout, ok := b.tpl.Timeout[logicalID]
		if !ok {
			timeout = b.tpl.Timeout[""]
		}
		if key == "" {
			key = name
		}
		if to, ok := timeouts[key]; ok {
			timeout = to
		}
		f := awstest.NewFunction(t, rie, awstest.FunctionConfig{
			Name: key, Bootstrap: bin, Env: append(env, extra...), InstanceEnv: instanceEnv,
			Concurrency: concurrency, Timeout: timeout, LogDir: logs,
		})
		b.fns[key] = f
		return f
	}
	t.Cleanup(func() {
		if t.Failed() {
			for name, f := range b.fns {
				for _, inst := range f.Instances() {
					t.Logf("--- %s instance %d:\n%s", name, inst.ID, lastLines(inst.Log(), 15))
				}
			}
		}
	})

	// The HTTP functions, behind the gateway as template.yaml routes them.
	var routes []awstest.Route
	var presigned *awstest.Function
	for key, logicalID := range b.tpl.Routes {
		f := b.fns[functionDir(logicalID)]
		if f == nil {
			f = newFn(logicalID, "", 4, nil)
		}
		fn := f.HTTP()
		if logicalID == "StatusFunction" {
			if presigned == nil {
				presigned = newFn(logicalID, "status-presigned", 2, nil, "TRANCHE_FILE_URLS=presigned")
			}
			plain, signed := fn, presigned.HTTP()
			fn = func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
				if b.presigned.Load() {
					return signed(ctx, ev)
				}
				return plain(ctx, ev)
			}
		}
		routes = append(routes, awstest.Route{Key: key, Fn: fn})
	}
	if len(routes) < 10 {
		t.Fatalf("only %d routes read from template.yaml", len(routes))
	}
	b.route = awstest.Router(routes)
	srv := httptest.NewTLSServer(awstest.Gateway(b.route, "$default"))
	t.Cleanup(srv.Close)
	b.base, b.http = srv.URL, srv.Client()

	// The workflow functions, invoked by the state machine (each
	// invocation recorded as its role's lambda:InvokeFunction). Each
	// export-item instance reaches S3 through a front of its own, where
	// the fault kills that instance mid-file.
	b.fault = &s3Fault{target: s3Front}
	fronts := make([]string, itemConcurrency)
	for i := range fronts {
		fronts[i] = b.fault.front(t, i)
	}
	exportItem := newFn("ExportItemFunction", "", itemConcurrency, func(i int) []string {
		return []string{"AWS_ENDPOINT_URL_S3=" + fronts[i]}
	})
	b.fault.fn = exportItem
	itemStep := exportItem.Step()
	b.shortFault = &s3Fault{target: s3Front}
	shortFront := b.shortFault.front(t, 0)
	shortItem := newFn("ExportItemFunction", "exportitem-short", 1, nil, "AWS_ENDPOINT_URL_S3="+shortFront)
	b.shortFault.fn = shortItem
	shortStep := shortItem.Step()
	// Retry waits run 20 times faster than the definition says: the
	// bench checks that they happen and what follows, not their length.
	b.sfn.Sleep = func(ctx context.Context, d time.Duration) error { return client.SleepContext(ctx, d/20) }
	invoked := func(logicalID string, step asl.Step) asl.Step {
		return func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
			b.rec.Record(awstest.Call{Principal: stateMachineRole, Action: "lambda:InvokeFunction", Resource: lambdaARN(logicalID), Via: "Task " + logicalID})
			return step(ctx, in)
		}
	}
	inlinePlan := newFn("PlanFunction", "", 1, nil).Step()
	distributedPlan := newFn("PlanFunction", "plan-distributed", 1, nil, "TRANCHE_INLINE_ITEMS=1").Step()
	err = b.sfn.SetSteps(statemachines.Export, map[string]asl.Step{
		"PlanFunctionArn": invoked("PlanFunction", func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
			if b.distributed.Load() {
				return distributedPlan(ctx, in)
			}
			return inlinePlan(ctx, in)
		}),
		"ExportItemFunctionArn": invoked("ExportItemFunction", func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
			if held := b.hold.Load(); held != nil {
				var item struct{ JobID string }
				_ = json.Unmarshal(in, &item)
				*held <- item.JobID
				<-ctx.Done()
				return nil, ctx.Err()
			}
			b.mu.Lock()
			var injected string
			if len(b.inject) > 0 {
				injected, b.inject = b.inject[0], b.inject[1:]
			}
			b.mu.Unlock()
			step := itemStep
			if b.short.Load() {
				step = shortStep
			}
			var out json.RawMessage
			var err error
			if injected != "" {
				err = &asl.ExecutionError{Name: injected, Cause: "injected by the bench"}
			} else {
				out, err = step(ctx, in)
			}
			if ee, ok := err.(*asl.ExecutionError); ok {
				b.mu.Lock()
				b.itemErrors = append(b.itemErrors, ee.Name)
				onTimeout := b.onTimeout
				b.mu.Unlock()
				if ee.Name == "Sandbox.Timedout" && onTimeout != nil {
					onTimeout()
				}
			}
			return out, err
		}),
		"FinalizeFunctionArn":   invoked("FinalizeFunction", newFn("FinalizeFunction", "", 1, nil).Step()),
		"MarkFailedFunctionArn": invoked("MarkFailedFunction", newFn("MarkFailedFunction", "", 1, nil).Step()),
		// The ItemReader: Step Functions reads the item list with the
		// state machine's role and runs each item as a child execution of
		// the same state machine, which the role must allow
		// (https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html).
		asl.ResourceS3GetObject: func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
			var in struct{ Bucket, Key string }
			if err := json.Unmarshal(raw, &in); err != nil {
				return nil, err
			}
			child := strings.Replace(machineARN, ":stateMachine:", ":execution:", 1) + "/maprun:child"
			b.rec.Record(
				awstest.Call{Principal: stateMachineRole, Action: "states:StartExecution", Resource: machineARN, Via: "Distributed Map child executions"},
				awstest.Call{Principal: stateMachineRole, Action: "states:DescribeExecution", Resource: child, Via: "Distributed Map child executions"},
				awstest.Call{Principal: stateMachineRole, Action: "states:StopExecution", Resource: child, Via: "Distributed Map child executions"},
			)
			out, err := smS3.GetObject(ctx, &s3sdk.GetObjectInput{Bucket: &in.Bucket, Key: &in.Key})
			if err != nil {
				return nil, err
			}
			defer out.Body.Close()
			return io.ReadAll(out.Body)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Bodies above 600 bytes go to S3 (bodies/), so every reader of spilled
	// bodies is exercised (the default, 64 KB, spills none of the
	// generated resources).
	importFn := newFn("ImportFunction", "", 1, nil, "TRANCHE_SPILL_BYTES=600")
	b.imports = &awstest.EventSource{SQS: b.queue, Queue: importQueueName, BatchSize: 1, Principal: "ImportFunction", Invoke: sqsInvoke(importFn)}
	newFn("PurgeFunction", "", 1, nil)
	return b
}

// sqsInvoke is f as an SQS event source mapping invokes it: synchronously,
// the batch as the event, the partial batch response as the answer.
func sqsInvoke(f *awstest.Function) func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var res events.SQSEventResponse
		in, err := json.Marshal(ev)
		if err != nil {
			return res, err
		}
		out, err := f.Invoke(ctx, in)
		if err != nil {
			return res, err
		}
		if err := json.Unmarshal(out, &res); err != nil {
			return res, fmt.Errorf("%s: the response is not a partial batch response: %w (%s)", f.Name(), err, out)
		}
		return res, nil
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// loadRIE generates 8 patients' data, drops it under incoming/ and sends
// S3's notification to the import queue, whose event source mapping
// invokes the import function; the oracle imports the same bytes into the
// reference store.
func (b *rieBench) loadRIE(t *testing.T) {
	ctx := context.Background()
	var data strings.Builder
	if _, err := generate.Stream(ctx, generate.Options{Patients: 8, Seed: 7}, func(string) (io.Writer, error) { return &data, nil }, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "all types.ndjson")
	if err := os.WriteFile(path, []byte(data.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b.dropFile(t, b.queue, path, 0)
	drainImports(t, b.queue, b.imports, 1)
	t.Logf("import function: %d bytes in %v", data.Len(), time.Since(start).Round(time.Millisecond))
	b.oracle = mem.NewResourceStore(4)
	if _, err := importer.Import(ctx, b.oracle, importer.Options{Now: time.Now}, path); err != nil {
		t.Fatal(err)
	}
	b.dataPath = path
	b.local = localReference(t, path, importStamp(t, b.steps.Resources))
}

// importStamp is the lastUpdated the store's clock gave what the import
// function stored: one batch, one stamp, which the local reference's
// import takes too, so that both store the same bytes.
func importStamp(t *testing.T, store bulk.ResourceSource) time.Time {
	t.Helper()
	ctx := context.Background()
	counts, err := store.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stamps := map[time.Time]bool{}
	for typ := range counts {
		if err := store.List(ctx, typ, "", func(r *bulk.Resource, _ bulk.Cursor) error { stamps[r.LastUpdated] = true; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if len(stamps) != 1 {
		t.Fatalf("the import function stored %d batches (stamps %v); the local reference needs one", len(stamps), stamps)
	}
	for st := range stamps {
		return st
	}
	return time.Time{}
}

// localReference serves the data at path with the local binary's code
// (app.NewLocal over its embedded store, authorization off, on loopback),
// so that an export through the Lambdas can be compared byte for byte with
// what the local server exports for the same request. stamp is the
// lastUpdated the import function's batch got.
func localReference(t *testing.T, path string, stamp time.Time) *client.Client {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir, cfg.Shards, cfg.Demo, cfg.PurgeEvery = t.TempDir(), 4, false, 0
	cfg.Auth.Open, cfg.Auth.MaxPollsPerMinute = true, 0
	db, err := app.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = importer.Import(ctx, db.Resources(), importer.Options{Now: func() time.Time { return stamp }}, path)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	l, err := app.NewLocal(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler)
	t.Cleanup(func() { srv.Close(); l.Close() })
	return &client.Client{HTTP: srv.Client(), Base: srv.URL, Sleep: func(ctx context.Context, d time.Duration) error {
		return client.SleepContext(ctx, min(d, 20*time.Millisecond))
	}}
}

// digest exports req with c and returns the SHA-256 of the output files'
// lines, sorted, and how many there were: equal digests are the same
// resources, byte for byte, each as often.
func digest(t *testing.T, c *client.Client, req client.Request) (string, int) {
	t.Helper()
	lines, _ := exportLines(t, c, req)
	slices.SortFunc(lines, bytes.Compare)
	h := sha256.New()
	for _, l := range lines {
		h.Write(l)
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)), len(lines)
}

// sameAsLocal exports req through the Lambdas and checks the output is
// byte for byte what the local server exports for it.
func (b *rieBench) sameAsLocal(t *testing.T, req client.Request) {
	t.Helper()
	got, n := digest(t, b.client(t), req)
	want, wantN := digest(t, b.local, req)
	if got != want || n != wantN {
		t.Errorf("export %+v through the Lambdas: %d lines, sha256 %s; the local server: %d lines, sha256 %s", req, n, got, wantN, want)
	}
}

// report logs each function's binary size and its instances' cold-start
// init durations under the emulator.
func (b *rieBench) report(t *testing.T) {
	names := make([]string, 0, len(b.bins))
	for n := range b.bins {
		names = append(names, n)
	}
	slices.Sort(names)
	var lines []string
	for _, n := range names {
		fi, err := os.Stat(b.bins[n])
		if err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("%-11s %6.1f MB", n, float64(fi.Size())/1e6)
		if f := b.fns[n]; f != nil {
			var first []time.Duration // each instance's first (cold) start
			for _, inst := range f.Instances() {
				if d := inst.InitDurations(); len(d) > 0 {
					first = append(first, d[0])
				}
			}
			all := f.InitDurations()
			if len(first) > 0 {
				slices.Sort(first)
				line += fmt.Sprintf("  cold-start init %s (median of %d instances; min %s, max %s); %d inits in all",
					ms(first[len(first)/2]), len(first), ms(first[0]), ms(first[len(first)-1]), len(all))
			}
		}
		lines = append(lines, line)
	}
	t.Logf("functions (host build: go build %s), under aws-lambda-rie %s:\n%s", strings.Join(awstest.HostBuildFlags, " "), awstest.RIEVersion, strings.Join(lines, "\n"))
}

// TestLambdaHostFlags: aws.mk's lambda-host target builds the bootstraps
// with awstest.HostBuildFlags before the tests, so the bench relinks
// nothing; different flags would relink (or recompile) every one of them.
func TestLambdaHostFlags(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "aws.mk"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^LAMBDA_HOST_FLAGS\s*:=\s*(.*)$`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("aws.mk has no LAMBDA_HOST_FLAGS := line")
	}
	// The make value is shell words: single quotes group.
	var got []string
	for _, w := range regexp.MustCompile(`'[^']*'|\S+`).FindAllString(string(m[1]), -1) {
		got = append(got, strings.Trim(w, "'"))
	}
	if diff := cmp.Diff(awstest.HostBuildFlags, got); diff != "" {
		t.Errorf("aws.mk LAMBDA_HOST_FLAGS and awstest.HostBuildFlags differ (-awstest +aws.mk):\n%s", diff)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// TestServerlessRIE exports at all three levels through the real bootstrap
// binaries under the Lambda emulator and checks each returns exactly the
// resources the reference store says it must, each once; then it kills an
// export-item Lambda in the middle of writing a file and checks the state
// machine retried it and the output is still exactly-once.
func TestServerlessRIE(t *testing.T) {
	b := newRIEBench(t)
	defer b.report(t)
	b.loadRIE(t)
	for _, tc := range b.levelCases(strings.Split(compartmentOnly, ",")) {
		t.Run(tc.name, func(t *testing.T) {
			want := b.expected(t, tc.req.Level, tc.req.GroupID, tc.req.Types)
			if len(want) == 0 {
				t.Fatal("the oracle expects nothing: the test data is wrong")
			}
			start := time.Now()
			got := b.export(t, tc.req)
			t.Logf("%s export through the Lambda emulator: %d resources (%d expected) in %v", tc.name, len(got), len(want), time.Since(start).Round(time.Millisecond))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("exported set mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("GroupReferenced", func(t *testing.T) {
		// The ExportReferenced state after the Map (issue 15 item 3).
		req := b.levelCases(nil)[2].req
		req.Types = []string{"Encounter", "Practitioner", "Organization"}
		want := b.withReferenced(t, b.expected(t, req.Level, req.GroupID, []string{"Encounter"}), []string{"Practitioner", "Organization"})
		got := b.export(t, req)
		if !slices.ContainsFunc(got, func(k string) bool { return strings.HasPrefix(k, "Practitioner/") }) {
			t.Errorf("no Practitioner exported: %d resources", len(got))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("exported set mismatch (-want +got):\n%s", diff)
		}
	})

	for _, tc := range []struct {
		name string
		kill func(*awstest.Instance)
	}{
		// The function's runtime dies (a crash, an out-of-memory kill):
		// the emulator answers Runtime.ExitError, which Step Functions
		// reports as Lambda.Unknown.
		{"KilledRuntime", func(inst *awstest.Instance) { inst.KillRuntime() }},
		// The whole execution environment dies: the invocation's
		// connection breaks.
		{"KilledInstance", func(inst *awstest.Instance) { inst.Kill() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.takeItemErrors()
			// The second data file written: an item that already
			// published a file dies in the middle of uploading the next.
			b.fault.arm(2, tc.kill)
			req := client.Request{Level: client.LevelSystem, Types: []string{"Observation", "Encounter"}}
			start := time.Now()
			got := b.export(t, req)
			killed := b.fault.killed()
			if killed == nil {
				t.Fatal("the fault was never injected")
			}
			t.Logf("export with export-item instance %d killed mid-file: %d resources in %v", killed.ID, len(got), time.Since(start).Round(time.Millisecond))
			if diff := cmp.Diff(b.expected(t, req.Level, "", req.Types), got); diff != "" {
				t.Errorf("exported set after a killed item mismatch (-want +got):\n%s", diff)
			}
			// The state machine saw the one failure, as Lambda.Unknown,
			// and retried it (else the export had failed).
			if errs := b.takeItemErrors(); !slices.Equal(errs, []string{"Lambda.Unknown"}) {
				t.Errorf("ExportItem errors = %q, want the one Lambda.Unknown of the killed invocation", errs)
			}
			// Byte for byte what the local binary exports.
			b.fault.arm(2, tc.kill)
			b.sameAsLocal(t, req)
			b.takeItemErrors()
		})
	}

	t.Run("TimedOut", func(t *testing.T) {
		// An ExportItem whose upload stalls past its timeout: the emulator
		// stops it (Sandbox.Timedout), the state machine retries, and the
		// output is exactly once, as the local binary's.
		b.takeItemErrors()
		b.short.Store(true)
		defer b.short.Store(false)
		stalled, release := b.shortFault.stallNext()
		defer release()
		b.mu.Lock()
		b.onTimeout = release // the frozen runtime continues once its invocation timed out
		b.mu.Unlock()
		defer func() { b.mu.Lock(); b.onTimeout = nil; b.mu.Unlock() }()
		req := client.Request{Level: client.LevelSystem, Types: []string{"Observation", "Encounter"}}
		b.sameAsLocal(t, req)
		release()
		select {
		case <-stalled:
		default:
			t.Fatal("no upload was stalled")
		}
		if errs := b.takeItemErrors(); !slices.Contains(errs, "Sandbox.Timedout") {
			t.Errorf("ExportItem errors = %q, want the Sandbox.Timedout of the stalled invocation", errs)
		}
	})

	t.Run("Throttled", func(t *testing.T) {
		// Lambda refuses invocations (throttling, a client-side timeout)
		// before the function runs: the States.ALL retrier with backoff and
		// jitter survives them, and the output is exactly once.
		b.takeItemErrors()
		faults := []string{"Lambda.TooManyRequestsException", "Lambda.TooManyRequestsException", "Lambda.TooManyRequestsException", "Lambda.ClientExecutionTimeoutException", "Lambda.ServiceException"}
		b.mu.Lock()
		b.inject = slices.Clone(faults)
		b.mu.Unlock()
		b.sameAsLocal(t, client.Request{Level: client.LevelPatient, Types: []string{"Patient", "Observation"}})
		errs := b.takeItemErrors()
		slices.Sort(errs)
		slices.Sort(faults)
		if !slices.Equal(errs, faults) {
			t.Errorf("ExportItem errors = %q, want the injected %q", errs, faults)
		}
	})

	t.Run("StartRefused", func(t *testing.T) {
		// Step Functions refuses the execution (its quota): the kick-off
		// answers 503 and fails the job it created, with the grants
		// KickoffFunction has (the IAM subtest checks its calls).
		b.sfn.RefuseStarts(1 << 20) // the client retries a 503
		defer b.sfn.RefuseStarts(0)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := b.client(t).Kickoff(ctx, client.Request{Level: client.LevelSystem, Types: []string{"Patient"}})
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable {
			t.Fatalf("kick-off with the execution refused: %v, want 503", err)
		}
		accepted := 0
		err = b.steps.Jobs.ListJobs(ctx, func(j *bulk.Job) error {
			if j.Status == bulk.StatusAccepted {
				accepted++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if accepted > 0 {
			t.Errorf("%d jobs stay accepted after a refused start; the kick-off should fail its job", accepted)
		}
	})

	t.Run("FailedItem", func(t *testing.T) {
		// An ExportItem that keeps failing with its own error (S3 denies
		// its uploads): the error name crosses the Invoke API as the
		// function's errorType, the Map's Catch runs MarkFailed, and the
		// job fails with nothing left of it in the bucket.
		b.takeItemErrors()
		b.fault.deny(true)
		defer b.fault.deny(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := b.client(t)
		status, err := c.Kickoff(ctx, client.Request{Level: client.LevelSystem, Types: []string{"Observation"}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Poll(ctx, status, nil)
		if err == nil {
			t.Fatal("the export succeeded with its uploads denied")
		}
		id := status[strings.LastIndex(status, "/")+1:]
		st, _ := b.sfn.Wait(ctx, id)
		errs := b.takeItemErrors()
		t.Logf("Poll: %v; execution %s; ExportItem errors %q", err, st, errs)
		if st != "FAILED" || len(errs) == 0 || slices.Contains(errs, "Lambda.Unknown") {
			t.Errorf("execution %s with ExportItem errors %q: want FAILED after the function's own errors", st, errs)
		}
		b.noObjects(t, ctx, id, "the failed job")
	})

	t.Run("Cancel", func(t *testing.T) {
		// DELETE stops the execution; a running ExportItem runs on (as
		// on AWS). Once every function is idle nothing of the job is
		// left in the bucket.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
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
		b.settled(t, ctx, status[strings.LastIndex(status, "/")+1:], "the cancelled job")
	})

	t.Run("CancelMidWrite", func(t *testing.T) {
		// DELETE while an ExportItem uploads a file: the execution stops
		// but the Lambda runs on (as on AWS), finds the job cancelled when
		// it checkpoints and deletes what it wrote. Nothing of the job is
		// left once every function is idle.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		paused, release := b.fault.gate()
		c := b.client(t)
		status, err := c.Kickoff(ctx, client.Request{Level: client.LevelSystem, Types: []string{"Observation"}})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-paused:
		case <-ctx.Done():
			t.Fatal("no upload was held")
		}
		cerr := c.Cancel(ctx, status)
		close(release)
		if cerr != nil {
			t.Fatalf("Cancel: %v", cerr)
		}
		b.settled(t, ctx, status[strings.LastIndex(status, "/")+1:], "the job cancelled mid-write")
	})

	t.Run("DistributedMap", func(t *testing.T) {
		// Every plan above one item goes to the Distributed Map: the item
		// list in S3, read by the state machine's role, each item a child
		// execution.
		b.distributed.Store(true)
		defer b.distributed.Store(false)
		req := client.Request{Level: client.LevelSystem, Types: []string{"Patient", "Observation", "Practitioner"}}
		got := b.export(t, req)
		if diff := cmp.Diff(b.expected(t, req.Level, "", req.Types), got); diff != "" {
			t.Errorf("exported set mismatch (-want +got):\n%s", diff)
		}
		if keys := b.itemLists(t); len(keys) == 0 {
			t.Error("no item list written: the export did not take the Distributed Map")
		}
	})

	t.Run("PresignedURLs", func(t *testing.T) {
		// FileUrls=presigned: the status function signs S3 URLs with its
		// own role, and the client downloads from S3 with them (R79).
		b.presigned.Store(true)
		defer b.presigned.Store(false)
		req := client.Request{Level: client.LevelPatient, Types: []string{"Patient", "Condition"}}
		got, m := b.exportWith(t, b.client(t), req)
		if diff := cmp.Diff(b.expected(t, req.Level, "", req.Types), got); diff != "" {
			t.Errorf("exported set mismatch (-want +got):\n%s", diff)
		}
		if m.RequiresAccessToken || len(m.Output) == 0 || !strings.Contains(m.Output[0].URL, "X-Amz-Signature=") {
			t.Errorf("manifest requiresAccessToken %v, first URL %v: want presigned S3 URLs", m.RequiresAccessToken, m.Output)
		}
	})

	t.Run("WatchdogAndPurge", func(t *testing.T) {
		// The purge function on its schedule: its watchdog describes an
		// old unfinished job's execution and fails the job whose execution
		// was stopped from outside (removing its files), and expired jobs
		// are deleted with their files. The jobs are aged in the table, as
		// time would age them.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c := b.client(t)
		done, err := c.Kickoff(ctx, client.Request{Level: client.LevelSystem, Types: []string{"Patient"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Poll(ctx, done, nil); err != nil {
			t.Fatal(err)
		}
		held := make(chan string, 16)
		b.hold.Store(&held)
		stuckURL, err := c.Kickoff(ctx, client.Request{Level: client.LevelSystem, Types: []string{"Patient"}})
		if err != nil {
			t.Fatal(err)
		}
		stuck := stuckURL[strings.LastIndex(stuckURL, "/")+1:]
		for got := ""; got != stuck; {
			select {
			case got = <-held:
			case <-ctx.Done():
				t.Fatal("the job never reached ExportItem")
			}
		}
		b.hold.Store(nil)
		sfnc := sfnsdk.NewFromConfig(awstest.Config(), func(o *sfnsdk.Options) { o.BaseEndpoint = aws.String(b.sfn.URL) })
		if _, err := sfnc.StopExecution(ctx, &sfnsdk.StopExecutionInput{ExecutionArn: aws.String(strings.Replace(machineARN, ":stateMachine:", ":execution:", 1) + ":" + stuck)}); err != nil {
			t.Fatal(err)
		}
		b.sfn.Wait(ctx, stuck)
		hourAgo := time.Now().Add(-time.Hour)
		b.ageJob(t, stuck, map[string]time.Time{"createdAt": hourAgo, "updatedAt": hourAgo})
		b.ageJob(t, done[strings.LastIndex(done, "/")+1:], map[string]time.Time{"expiresAt": hourAgo})

		ev, err := os.ReadFile(filepath.Join(eventsDir, "purge.json"))
		if err != nil {
			t.Fatal(err)
		}
		out, err := b.fns["purge"].Invoke(ctx, ev)
		if err != nil {
			t.Fatalf("purge function: %v", err)
		}
		var got map[string]int
		if err := json.Unmarshal(out, &got); err != nil || got["failed"] != 1 || got["purged"] < 1 {
			t.Errorf("purge function = %s, %v; want the stuck job failed and the expired one purged", out, err)
		}
		if _, err := c.Poll(ctx, done, nil); client.StatusCode(err) != http.StatusNotFound {
			t.Errorf("Poll of the purged job = %v, want 404", err)
		}
		var ce *client.Error
		if _, err := c.Poll(ctx, stuckURL, nil); !errors.As(err, &ce) || ce.Status != http.StatusInternalServerError {
			t.Errorf("Poll of the stuck job = %v, want 500", err)
		}
	})

	t.Run("GroupReads", func(t *testing.T) {
		// GET /Group and /Group/{id} (the metadata function reads the
		// resources table and, for a spilled body, S3).
		ctx := context.Background()
		c := b.client(t)
		tok, err := c.Auth.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/Group", "/Group/" + b.levelCases(nil)[2].req.GroupID} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Accept", "application/fhir+json")
			res, err := b.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"resourceType"`) {
				t.Errorf("GET %s = %d %.200s, want 200 with a resource", path, res.StatusCode, body)
			}
		}
	})

	t.Run("Events", func(t *testing.T) {
		// The fixtures of events/ through the router: each reaches the
		// route its routeKey names, on the function template.yaml puts it.
		files, _ := filepath.Glob(filepath.Join(eventsDir, "*.json"))
		want := map[string]int{"metadata.json": 200, "well-known.json": 200, "kickoff-named-stage.json": 401, "status.json": 401}
		n := 0
		for _, file := range files {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var ev events.APIGatewayV2HTTPRequest
			if json.Unmarshal(raw, &ev) != nil || ev.RouteKey == "" || ev.RequestContext.HTTP.Method == "" {
				continue
			}
			n++
			fixture := ev.RouteKey
			var routed string
			res, err := b.routeRecording(&routed)(context.Background(), ev)
			if err != nil {
				t.Errorf("%s: %v", filepath.Base(file), err)
				continue
			}
			if routed != fixture {
				t.Errorf("%s: routed to %q, the fixture says %q", filepath.Base(file), routed, fixture)
			}
			if code, ok := want[filepath.Base(file)]; ok && res.StatusCode != code {
				t.Errorf("%s: status %d, want %d (%s)", filepath.Base(file), res.StatusCode, code, res.Body)
			}
		}
		if n < 5 {
			t.Errorf("only %d HTTP fixtures in events/", n)
		}
	})

	t.Run("ImportDeadLetter", b.importDeadLetter)

	// Last: every call of the subtests above against template.yaml.
	t.Run("IAM", b.checkIAM)
}

// importDeadLetter drops a file of another FHIR release, which the real
// import function refuses on every delivery: after the third, SQS moves
// its notification to the dead-letter queue (where ImportDeadLetterAlarm's
// metric counts it), and the report beside it says why, without internal
// text. The function delays its retries and makes the last failure visible
// at once (ChangeMessageVisibility through the queue URL it looks up), so
// the queue's clock moves 5 minutes, not three visibility timeouts; the
// store is untouched.
func (b *rieBench) importDeadLetter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dstu2 orders.ndjson")
	if err := os.WriteFile(path, []byte(`{"resourceType":"MedicationOrder","id":"mo1","status":"active"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := b.steps.Resources.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	invocations, start := b.imports.Invocations, b.queue.Now()
	key := b.dropFile(t, b.queue, path, 1)
	if err := b.imports.Drain(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if n := b.imports.Invocations - invocations; n != handler.ImportMaxReceives {
		t.Errorf("the import function was invoked %d times, want %d", n, handler.ImportMaxReceives)
	}
	if d := b.queue.Now().Sub(start); d != 5*time.Minute {
		t.Errorf("the retries took %v of the queue's clock, want 5m (delays of 1m and 4m)", d)
	}
	dead := b.queue.Bodies(importDeadLetters)
	if len(dead) != 1 || !strings.Contains(dead[0], "dstu2+orders.ndjson") || b.queue.Visible(importDeadLetters) != 1 {
		t.Fatalf("dead-letter queue = %q (%d visible), want the notification of %s", dead, b.queue.Visible(importDeadLetters), key)
	}
	var rep handler.Report
	out, err := b.s3.Client.ListObjectsV2(ctx, &s3sdk.ListObjectsV2Input{Bucket: aws.String(b.bucket), Prefix: aws.String("import-reports/")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		if strings.HasSuffix(aws.ToString(o.Key), "-dstu2_orders.ndjson/report.json") {
			obj, err := b.s3.Client.GetObject(ctx, &s3sdk.GetObjectInput{Bucket: aws.String(b.bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			err = json.NewDecoder(obj.Body).Decode(&rep)
			obj.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if rep.Source != key || rep.Status != handler.StatusFailed || rep.Attempt != 3 || !strings.Contains(rep.Failure, "DSTU2") || !strings.Contains(rep.Failure, "dead-letter queue") {
		t.Errorf("report = %+v, want failed on the third attempt, naming the release", rep)
	}
	if strings.Contains(rep.Failure, "importer.") || strings.Contains(rep.Failure, "/tmp/") {
		t.Errorf("report failure %q has internal text", rep.Failure)
	}
	if after, err := b.steps.Resources.Count(ctx); err != nil || !maps.Equal(before, after) {
		t.Errorf("resources after the refused file = %v, %v; want %v", after, err, before)
	}
}

// ageJob rewrites times in a job's stored document, as the passing of
// time would (the functions run in their own processes, on the real
// clock).
func (b *rieBench) ageJob(t *testing.T, id string, times map[string]time.Time) {
	t.Helper()
	ctx := context.Background()
	db := ddbsdk.NewFromConfig(awstest.Config(), func(o *ddbsdk.Options) { o.BaseEndpoint = aws.String(os.Getenv(awstest.EndpointEnv)) })
	table := os.Getenv("TRANCHE_JOBS_TABLE")
	key := map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: id}}
	item, err := db.GetItem(ctx, &ddbsdk.GetItemInput{TableName: &table, Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil || item.Item == nil {
		t.Fatalf("job %s: %v", id, err)
	}
	raw, ok := item.Item["doc"].(*ddbtypes.AttributeValueMemberS)
	if !ok {
		t.Fatalf("job %s has no doc", id)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(raw.Value), &doc); err != nil {
		t.Fatal(err)
	}
	for k, v := range times {
		if _, ok := doc[k]; !ok {
			t.Fatalf("job %s has no %s", id, k)
		}
		doc[k] = v.UTC().Format(time.RFC3339Nano)
	}
	edited, _ := json.Marshal(doc)
	_, err = db.UpdateItem(ctx, &ddbsdk.UpdateItemInput{
		TableName: &table, Key: key, UpdateExpression: aws.String("SET doc = :d"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":d": &ddbtypes.AttributeValueMemberS{Value: string(edited)}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkIAM checks every call the functions and the state machine made,
// each under its own identity, against its own statements in
// template.yaml: a call no statement allows would be AccessDenied on AWS.
// It logs the table of what each role used and the grants nothing used.
func (b *rieBench) checkIAM(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	stack := benchStack(t, src, b.bucket)
	policies, err := awstest.TemplatePolicies(src, stack)
	if err != nil {
		t.Fatalf("template.yaml policies: %v", err)
	}
	tables := map[string]string{}
	for id, arn := range stack.Attrs {
		if strings.Contains(arn, ":table/") {
			tables[arn] = strings.TrimSuffix(id, ".Arn")
		}
	}
	rep := awstest.Check(policies, b.rec.Calls(), func(c awstest.Call) string {
		res := c.Resource
		for arn, id := range tables {
			if strings.HasPrefix(res, arn) {
				res = "table/" + id + strings.TrimPrefix(res, arn)
			}
		}
		res = resourcePattern.ReplaceAllString(res, "$1/{key}")
		res = jobID.ReplaceAllString(res, "{job}")
		if v, ok := c.Context["s3:prefix"]; ok {
			res += " (s3:prefix " + prefixPattern.ReplaceAllString(jobID.ReplaceAllString(v, "{job}"), "$1{key}") + ")"
		}
		return c.Action + " " + res
	}, "test")
	for _, c := range rep.Denied {
		t.Errorf("not granted by template.yaml: %s (via %s; calls of this kind fold job ids and keys)", c, c.Via)
	}
	if len(rep.Unchecked) > 0 {
		t.Errorf("calls by principals without a policy in template.yaml: %q", rep.Unchecked)
	}
	var table strings.Builder
	for _, p := range slices.Sorted(maps.Keys(rep.Observed)) {
		fmt.Fprintf(&table, "%s\n", p)
		for _, a := range rep.Observed[p] {
			fmt.Fprintf(&table, "    %s\n", a)
		}
	}
	t.Logf("calls observed, by role (every one granted unless reported above):\n%s", table.String())
	var unused []string
	for _, st := range rep.Unused {
		unused = append(unused, fmt.Sprintf("%s: %s on %s", st.Source, strings.Join(st.Actions, ","), strings.Join(st.Resources, ",")))
	}
	t.Logf("grants no call used (%d):\n%s", len(unused), strings.Join(unused, "\n"))
	for _, must := range []string{"ImportFunction", "KickoffFunction", "StatusFunction", "DownloadFunction", "TokenFunction", "PlanFunction", "ExportItemFunction", "FinalizeFunction", "MarkFailedFunction", "PurgeFunction", stateMachineRole} {
		if len(rep.Observed[must]) == 0 {
			t.Errorf("%s made no call: the bench does not exercise it", must)
		}
	}
}

var (
	jobID = regexp.MustCompile(`[0-9a-f]{32}`)
	// resourcePattern folds object keys to their prefix.
	resourcePattern = regexp.MustCompile(`(/(?:exports/[0-9a-f]{32}|bodies|incoming|import-reports))/.*`)
	prefixPattern   = regexp.MustCompile(`^(exports/\{job\}/|bodies/).+`)
)

// benchStack resolves template.yaml's intrinsics for the bench's
// deployment: the stack "tranche" in 123456789012/us-east-1, the tables
// startBench created, its bucket and secrets.
func benchStack(t *testing.T, src []byte, bucket string) *cfn.Stack {
	t.Helper()
	doc, err := cfn.Parse(string(src))
	if err != nil {
		t.Fatal(err)
	}
	st := &cfn.Stack{
		Refs: map[string]string{
			"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
			"AWS::StackName": stackName, "AWS::URLSuffix": "amazonaws.com",
			"SigningKeySecretArn": signingSecret, "RegistrationTokenSecretArn": regTokenSecret,
			"DataBucket": bucket, "ExportStateMachine": machineARN,
		},
		Attrs: map[string]string{
			"DataBucket.Arn": "arn:aws:s3:::" + bucket, "ExportStateMachine.Name": stackName + "-export",
			"ImportQueue.Arn": "arn:aws:sqs:us-east-1:123456789012:" + importQueueName,
		},
		Conditions: map[string]bool{"HasRegistration": true, "HasAlarmTopic": false, "HasBaseUrl": false},
	}
	for id, env := range map[string]string{
		"JobsTable": "TRANCHE_JOBS_TABLE", "JobItemsTable": "TRANCHE_JOB_ITEMS_TABLE", "ClientsTable": "TRANCHE_CLIENTS_TABLE",
		"ReplayTable": "TRANCHE_REPLAY_TABLE", "ResourcesTable": "TRANCHE_RESOURCES_TABLE",
	} {
		name := os.Getenv(env)
		st.Refs[id] = name
		st.Attrs[id+".Arn"] = "arn:aws:dynamodb:us-east-1:123456789012:table/" + name
	}
	resources, _ := doc.(map[string]any)["Resources"].(map[string]any)
	for id, r := range resources {
		if r.(map[string]any)["Type"] == "AWS::Serverless::Function" {
			arn := lambdaARN(id)
			st.Refs[id] = arn[strings.LastIndex(arn, ":")+1:]
			st.Attrs[id+".Arn"] = arn
		}
	}
	return st
}

// settled waits until job id's execution has ended and every function is
// idle (a stopped execution's Lambda runs on, as on AWS), then checks that
// nothing of the job is left in the bucket.
func (b *rieBench) settled(t *testing.T, ctx context.Context, id, what string) {
	t.Helper()
	b.sfn.Wait(ctx, id)
	for _, f := range b.fns {
		if err := f.Idle(ctx); err != nil {
			t.Fatal(err)
		}
	}
	b.noObjects(t, ctx, id, what)
}

// routeRecording is the bench's router that records the route key each
// event took.
func (b *rieBench) routeRecording(key *string) func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	var routes []awstest.Route
	for k, logicalID := range b.tpl.Routes {
		fn := b.fns[functionDir(logicalID)].HTTP()
		routes = append(routes, awstest.Route{Key: k, Fn: func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			*key = ev.RouteKey
			return fn(ctx, ev)
		}})
	}
	return awstest.Router(routes)
}

// s3Fault fronts S3 for each export-item instance; armed, it kills the
// instance that writes the nth export data file, in the middle of its
// upload, and fails the upload.
type s3Fault struct {
	target string
	fn     *awstest.Function

	mu     sync.Mutex
	denied bool // every data-file upload is denied
	left   int  // data-file uploads until the fault; 0 when disarmed
	kill   func(*awstest.Instance)
	victim *awstest.Instance
	// paused and release, when set, hold the next data-file upload: it
	// sends on paused and waits until release is closed.
	paused, release chan struct{}
	// stall holds the next data-file upload until its caller goes away or
	// unstall is closed, then fails it: the invocation runs past its
	// timeout. stalled is closed when the upload is held.
	stall            bool
	stalled, unstall chan struct{}
}

// stallNext stalls the next data-file upload (see stall). It returns a
// channel closed once an upload is held, and the release that ends the
// stall, which the caller must call.
func (f *s3Fault) stallNext() (stalled <-chan struct{}, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stall, f.stalled, f.unstall = true, make(chan struct{}), make(chan struct{})
	unstall := f.unstall
	return f.stalled, sync.OnceFunc(func() { close(unstall) })
}

// gate holds the next data-file upload until the returned release is
// closed; paused receives when it is held.
func (f *s3Fault) gate() (paused <-chan struct{}, release chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused, f.release = make(chan struct{}, 1), make(chan struct{})
	return f.paused, f.release
}

// dataFile matches the requests that upload an export's data file
// (exports/<job>/<Type>.<item>.<part>.<n>.ndjson): PutObject, or a part
// of a multipart upload.
var dataFile = regexp.MustCompile(`/exports/[^/]+/[A-Za-z]+\.[0-9]{5}\.[0-9]{3}\.[0-9]{3}\.ndjson$`)

func (f *s3Fault) arm(n int, kill func(*awstest.Instance)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left, f.kill, f.victim = n, kill, nil
}

func (f *s3Fault) deny(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denied = on
}

func (f *s3Fault) killed() *awstest.Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.victim
}

func (f *s3Fault) front(t *testing.T, instance int) string {
	u, err := url.Parse(f.target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && dataFile.MatchString(r.URL.Path) {
			f.mu.Lock()
			fire := false
			if f.left > 0 {
				f.left--
				fire = f.left == 0
			}
			kill, denied := f.kill, f.denied
			paused, release := f.paused, f.release
			f.paused, f.release = nil, nil
			stall, stalled, unstall := f.stall, f.stalled, f.unstall
			f.stall = false
			f.mu.Unlock()
			if stall {
				// The runtime freezes in the middle of the upload, so it
				// cannot act on its own deadline: the emulator's timeout
				// ends the invocation (Sandbox.Timedout). Once that is
				// seen, the runtime continues and the upload fails, as
				// on Lambda, whose timeout ends the runtime.
				var inst *awstest.Instance
				for _, in := range f.fn.Instances() {
					if in.ID == instance {
						inst = in
					}
				}
				if inst != nil {
					inst.FreezeRuntime()
				}
				close(stalled)
				select {
				case <-r.Context().Done():
				case <-unstall:
				}
				if inst != nil {
					inst.ThawRuntime()
				}
				http.Error(w, "the function timed out", http.StatusServiceUnavailable)
				return
			}
			if paused != nil {
				paused <- struct{}{}
				<-release
			}
			if denied {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
				return
			}
			if fire {
				// Part of the body is on its way when the function dies.
				_, _ = io.CopyN(io.Discard, r.Body, 512)
				var inst *awstest.Instance
				for _, in := range f.fn.Instances() {
					if in.ID == instance {
						inst = in
					}
				}
				if inst != nil {
					kill(inst)
				}
				f.mu.Lock()
				f.victim = inst
				f.mu.Unlock()
				http.Error(w, "the function was killed", http.StatusServiceUnavailable)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestServerlessRIESynthea times a system export of
// ../shared/data/synthea-100 through the Lambda emulator bench. It is
// opt-in (TRANCHE_BENCH=1): loading dynalite takes minutes.
func TestServerlessRIESynthea(t *testing.T) {
	files := syntheaFiles()
	if os.Getenv("TRANCHE_BENCH") == "" || len(files) == 0 {
		t.Skip("set TRANCHE_BENCH=1 (with ../shared/data/synthea-100 present) to time the Lambda emulator bench")
	}
	b := newRIEBench(t)
	defer b.report(t)
	b.timeSynthea(t, files, "through the Lambda emulator")
}

// TestTemplateRoutes: the gateway shim's router, given template.yaml's
// routes, sends each request where API Gateway would (no emulator needed).
func TestTemplateRoutes(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := awstest.ReadTemplate(src)
	if err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	var routes []awstest.Route
	for key, logicalID := range tpl.Routes {
		routes = append(routes, awstest.Route{Key: key, Fn: func(_ context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: logicalID + " " + ev.RouteKey}, nil
		}})
	}
	router := awstest.Router(routes)
	for _, tc := range []struct{ method, path, stage, want string }{
		{"GET", "/metadata", "$default", "MetadataFunction GET /metadata"},
		{"GET", "/.well-known/smart-configuration", "$default", "MetadataFunction GET /.well-known/smart-configuration"},
		{"GET", "/$export", "$default", "KickoffFunction GET /{operation}"},
		{"POST", "/$export", "$default", "KickoffFunction POST /{operation}"},
		{"GET", "/Patient/$export", "$default", "KickoffFunction GET /Patient/{operation}"},
		{"POST", "/Group/g1/$export", "$default", "KickoffFunction POST /Group/{id}/{operation}"},
		{"GET", "/Group", "$default", "MetadataFunction GET /Group"},
		{"GET", "/Group/g1", "$default", "MetadataFunction GET /Group/{id}"},
		{"GET", "/jobs/j1", "$default", "StatusFunction GET /jobs/{id}"},
		{"DELETE", "/jobs/j1", "$default", "StatusFunction DELETE /jobs/{id}"},
		{"GET", "/files/j1/Patient.00000.000.000.ndjson", "$default", "DownloadFunction GET /files/{proxy+}"},
		{"POST", "/token", "$default", "TokenFunction POST /token"},
		{"POST", "/register", "$default", "RegisterFunction POST /register"},
		{"GET", "/prod/jobs/j1", "prod", "StatusFunction GET /jobs/{id}"},
		{"PUT", "/jobs/j1", "$default", "MetadataFunction $default"},
		{"GET", "/no/such/path", "$default", "MetadataFunction $default"},
	} {
		ev := events.APIGatewayV2HTTPRequest{RawPath: tc.path}
		ev.RequestContext.Stage = tc.stage
		ev.RequestContext.HTTP.Method = tc.method
		res, err := router(context.Background(), ev)
		if err != nil || res.Body != tc.want {
			t.Errorf("%s %s (stage %s) → %q, %v; want %q", tc.method, tc.path, tc.stage, res.Body, err, tc.want)
		}
	}
	if to := tpl.Timeout["ExportItemFunction"]; to != 900*time.Second {
		t.Errorf("ExportItemFunction timeout %v, want 900s", to)
	}
	if _, ok := tpl.Env["KickoffFunction"]["TRANCHE_STATE_MACHINE_ARN"]; !ok {
		t.Error("KickoffFunction's TRANCHE_STATE_MACHINE_ARN not read")
	}
}
