//go:build linux

package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/client"
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

func newRIEBench(t *testing.T) *rieBench {
	rie := awstest.FindRIE(t)
	b := &rieBench{bench: startBench(t), fns: map[string]*awstest.Function{}} // skips without dynalite
	dir := os.Getenv("TRANCHE_LAMBDA_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if abs, err := filepath.Abs(dir); err == nil {
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
	// process), Globals' TRANCHE_MAX_CONCURRENCY, and the state machine
	// only where template.yaml gives it.
	newFn := func(logicalID string, concurrency int, instanceEnv func(int) []string) *awstest.Function {
		name := functionDir(logicalID)
		bin, ok := b.bins[name]
		if !ok {
			t.Fatalf("%s: no functions/%s", logicalID, name)
		}
		env := []string{fmt.Sprintf("TRANCHE_MAX_CONCURRENCY=%d", itemConcurrency)}
		if _, ok := b.tpl.Env[logicalID]["TRANCHE_STATE_MACHINE_ARN"]; !ok {
			env = append(env, "TRANCHE_STATE_MACHINE_ARN=")
		}
		timeout, ok := b.tpl.Timeout[logicalID]
		if !ok {
			timeout = b.tpl.Timeout[""]
		}
		f := awstest.NewFunction(t, rie, awstest.FunctionConfig{
			Name: name, Bootstrap: bin, Env: env, InstanceEnv: instanceEnv,
			Concurrency: concurrency, Timeout: timeout, LogDir: logs,
		})
		b.fns[name] = f
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
	for key, logicalID := range b.tpl.Routes {
		f := b.fns[functionDir(logicalID)]
		if f == nil {
			f = newFn(logicalID, 4, nil)
		}
		routes = append(routes, awstest.Route{Key: key, Fn: f.HTTP()})
	}
	if len(routes) < 10 {
		t.Fatalf("only %d routes read from template.yaml", len(routes))
	}
	b.route = awstest.Router(routes)
	srv := httptest.NewTLSServer(awstest.Gateway(b.route, "$default"))
	t.Cleanup(srv.Close)
	b.base, b.http = srv.URL, srv.Client()

	// The workflow functions, invoked by the state machine. Each
	// export-item instance reaches S3 through a front of its own, where
	// the fault kills that instance mid-file.
	b.fault = &s3Fault{target: b.s3.URL}
	fronts := make([]string, itemConcurrency)
	for i := range fronts {
		fronts[i] = b.fault.front(t, i)
	}
	exportItem := newFn("ExportItemFunction", itemConcurrency, func(i int) []string {
		return []string{"AWS_ENDPOINT_URL_S3=" + fronts[i]}
	})
	b.fault.fn = exportItem
	itemStep := exportItem.Step()
	err = b.sfn.SetSteps(statemachines.Export, map[string]asl.Step{
		"PlanFunctionArn": newFn("PlanFunction", 1, nil).Step(),
		"ExportItemFunctionArn": func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
			out, err := itemStep(ctx, in)
			if ee, ok := err.(*asl.ExecutionError); ok {
				b.mu.Lock()
				b.itemErrors = append(b.itemErrors, ee.Name)
				b.mu.Unlock()
			}
			return out, err
		},
		"FinalizeFunctionArn":   newFn("FinalizeFunction", 1, nil).Step(),
		"MarkFailedFunctionArn": newFn("MarkFailedFunction", 1, nil).Step(),
	})
	if err != nil {
		t.Fatal(err)
	}
	newFn("ImportFunction", 1, nil)
	return b
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// loadRIE generates 8 patients' data, drops it under incoming/ and invokes
// the import function with the S3 event of events/import.json; the oracle
// imports the same bytes into the reference store.
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
	key := "incoming/synthetic/" + filepath.Base(path)
	if _, err := b.s3.Client.PutObject(ctx, &s3sdk.PutObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key), Body: strings.NewReader(data.String())}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(eventsDir, "import.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.S3Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	ev.Records[0].S3.Bucket.Name = b.bucket
	ev.Records[0].S3.Object.Key = strings.ReplaceAll(key, " ", "+") // as S3 encodes it
	in, _ := json.Marshal(ev)
	start := time.Now()
	if _, err := b.fns["import"].Invoke(ctx, in); err != nil {
		t.Fatalf("import function: %v", err)
	}
	t.Logf("import function: %d bytes in %v", data.Len(), time.Since(start).Round(time.Millisecond))
	b.oracle = mem.NewResourceStore(4)
	if _, err := importer.Import(ctx, b.oracle, importer.Options{Now: time.Now}, path); err != nil {
		t.Fatal(err)
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
	t.Logf("functions (host build: -tags lambda.norpc -trimpath -ldflags '-s -w'), under aws-lambda-rie %s:\n%s", awstest.RIEVersion, strings.Join(lines, "\n"))
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
		})
	}

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
		out, err := b.s3.Client.ListObjectsV2(ctx, &s3sdk.ListObjectsV2Input{Bucket: aws.String(b.bucket), Prefix: aws.String("exports/" + id + "/")})
		if err != nil || len(out.Contents) != 0 {
			t.Errorf("objects of the failed job = %d, %v; want none (MarkFailed deletes them)", len(out.Contents), err)
		}
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
		id := status[strings.LastIndex(status, "/")+1:]
		b.sfn.Wait(ctx, id)
		for _, f := range b.fns {
			if err := f.Idle(ctx); err != nil {
				t.Fatal(err)
			}
		}
		out, err := b.s3.Client.ListObjectsV2(ctx, &s3sdk.ListObjectsV2Input{Bucket: aws.String(b.bucket), Prefix: aws.String("exports/" + id + "/")})
		if err != nil || len(out.Contents) != 0 {
			var keys []string
			for _, o := range out.Contents {
				keys = append(keys, *o.Key)
			}
			t.Errorf("objects of the cancelled job = %q, %v; want none", keys, err)
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
			f.mu.Unlock()
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
