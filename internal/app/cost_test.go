package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/handler"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/generate"
	"github.com/tranchehq/tranche/internal/workflow/asl"
	"github.com/tranchehq/tranche/statemachines"
)

// TestServerlessCost counts what an export costs on AWS, per resource: the
// DynamoDB requests and the capacity units DynamoDB charges for them (the
// emulator computes them from item sizes as DynamoDB does), the S3
// requests, the Lambda invocations and state transitions of each step, and
// the steps' time, for a system, a Patient and Group exports (one per
// Group of the data). docs/aws-cost.md turns these figures into dollars.
// Opt-in (TRANCHE_COST=1): it imports synthea-100 into dynalite when
// ../shared is present (minutes), generated data otherwise.
//
//	TRANCHE_COST=1 TRANCHE_DYNAMODB_ENDPOINT=http://127.0.0.1:PORT go test -run TestServerlessCost -v ./internal/app/
func TestServerlessCost(t *testing.T) {
	if os.Getenv("TRANCHE_COST") == "" {
		t.Skip("set TRANCHE_COST=1 to count the serverless export's requests and capacity (docs/aws-cost.md)")
	}
	endpoint := os.Getenv(awstest.EndpointEnv)
	if endpoint == "" {
		t.Skipf("%s is not set: run under `make test-aws`", awstest.EndpointEnv)
	}
	meter := newDynamoMeter(t, endpoint)
	t.Setenv(awstest.EndpointEnv, meter.url)
	b := startBench(t)
	// Files as deployed (100,000 resources), not the bench's 40.
	t.Setenv("TRANCHE_MAX_FILE_RESOURCES", "100000")
	steps := b.meterSteps(t)

	files := syntheaFiles()
	dataset := "synthea-100"
	if len(files) == 0 {
		dataset = "generated, 100 patients"
		files = []string{generated(t, 100)}
	}
	// Groups last: the import function runs once per file, and a Group's
	// urn:uuid members resolve only to Patients stored before it.
	isGroup := func(f string) bool { return strings.HasPrefix(filepath.Base(f), "Group.") }
	files = append(slices.DeleteFunc(slices.Clone(files), isGroup), slices.DeleteFunc(slices.Clone(files), func(f string) bool { return !isGroup(f) })...)
	meter.reset()
	start := time.Now()
	b.loadFiles(t, files...)
	types, total := b.storedTypes()
	types = slices.DeleteFunc(types, func(typ string) bool { return typ == "Group" })
	imported := meter.snapshot()
	t.Logf("dataset %s: %d resources, imported in %v", dataset, total, time.Since(start).Round(time.Millisecond))
	report := map[string]any{"dataset": dataset, "resources": total, "import": imported.perResource(total)}

	compartmentTypes := slices.DeleteFunc(slices.Clone(types), func(s string) bool {
		return s == "Practitioner" || s == "Organization" || s == "Location" || s == "PractitionerRole" || s == "Medication" || s == "Device"
	})
	for _, tc := range []struct {
		name string
		reqs []client.Request
	}{
		{"system", []client.Request{{Level: client.LevelSystem, Types: types}}},
		{"patient", []client.Request{{Level: client.LevelPatient, Types: compartmentTypes}}},
		// Every Group of the data, one export each (synthea-100's eight
		// payer Groups hold each of its patients once): the cost of
		// reading members' compartments, next to the scans above.
		{"group", b.groupRequests(t, compartmentTypes)},
	} {
		meter.reset()
		steps.reset()
		s3Before := len(b.s3.Requests())
		bytes0 := b.exportedBytes(t)
		cpu0 := cpuTime()
		start := time.Now()
		var n int64
		for _, req := range tc.reqs {
			got := b.export(t, req)
			if req.Level == client.LevelGroup {
				if diff := cmp.Diff(b.expected(t, req.Level, req.GroupID, req.Types), got); diff != "" {
					t.Errorf("Group/%s export mismatch (-want +got):\n%s", req.GroupID, diff)
				}
			}
			n += int64(len(got))
		}
		wall := time.Since(start)
		cpu := cpuTime() - cpu0
		ddb := meter.snapshot()
		s3 := s3Counts(b.s3.Requests()[s3Before:])
		out := map[string]any{
			"exports":           len(tc.reqs),
			"resources":         n,
			"wall_ms":           wall.Milliseconds(),
			"go_cpu_ms":         cpu.Milliseconds(),
			"dynamodb":          ddb.perResource(n),
			"s3_requests":       s3,
			"steps":             steps.snapshot(),
			"exported_bytes":    b.exportedBytes(t) - bytes0,
			"state_transitions": steps.transitions(),
		}
		report[tc.name] = out
		raw, _ := json.MarshalIndent(out, "", "  ")
		t.Logf("%s export: %s", tc.name, raw)
	}
	ratio := readUnitsPerResource(report["group"]) / readUnitsPerResource(report["system"])
	t.Logf("read units per resource: Group exports %.3f, system export %.3f (%.2fx)",
		readUnitsPerResource(report["group"]), readUnitsPerResource(report["system"]), ratio)
	if path := os.Getenv("TRANCHE_COST_OUT"); path != "" {
		raw, _ := json.MarshalIndent(report, "", "  ")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readUnitsPerResource is the figure of one export's report.
func readUnitsPerResource(report any) float64 {
	ddb, _ := report.(map[string]any)["dynamodb"].(map[string]any)
	f, _ := ddb["read_units_per_resource"].(float64)
	return f
}

// groupRequests is a Group export of types for each of the reference
// store's Groups with members.
func (b *bench) groupRequests(t *testing.T, types []string) []client.Request {
	t.Helper()
	var reqs []client.Request
	err := b.oracle.List(context.Background(), "Group", "", func(r *bulk.Resource, _ bulk.Cursor) error {
		if len(r.Members) > 0 {
			reqs = append(reqs, client.Request{Level: client.LevelGroup, GroupID: r.ID, Types: types})
		}
		return nil
	})
	if err != nil || len(reqs) == 0 {
		t.Fatalf("the data has %d Groups with members (%v): the Group export needs one", len(reqs), err)
	}
	return reqs
}

func generated(t *testing.T, patients int) string {
	t.Helper()
	var data bytes.Buffer
	if _, err := generate.Stream(context.Background(), generate.Options{Patients: patients, Seed: 7}, func(string) (io.Writer, error) { return &data, nil }, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "generated.ndjson")
	if err := os.WriteFile(path, data.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// exportedBytes sums the sizes of the objects under exports/ (every
// export's files so far; the caller takes differences).
func (b *bench) exportedBytes(t *testing.T) int64 {
	ctx := context.Background()
	var total int64
	p := s3sdk.NewListObjectsV2Paginator(b.s3.Client, &s3sdk.ListObjectsV2Input{Bucket: aws.String(b.bucket), Prefix: aws.String("exports/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			total += aws.ToInt64(o.Size)
		}
	}
	return total
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// s3Counts classifies S3 requests as S3 bills them.
func s3Counts(reqs []string) map[string]int {
	out := map[string]int{}
	for _, r := range reqs {
		method, uri, _ := strings.Cut(r, " ")
		u, _ := url.Parse(uri)
		q := u.Query()
		switch {
		case method == "PUT" && q.Has("partNumber"):
			out["UploadPart"]++
		case method == "PUT":
			out["PutObject"]++
		case method == "POST" && q.Has("uploads"):
			out["CreateMultipartUpload"]++
		case method == "POST" && q.Has("uploadId"):
			out["CompleteMultipartUpload"]++
		case method == "POST" && q.Has("delete"):
			out["DeleteObjects"]++
		case method == "GET" && (q.Has("list-type") || strings.Count(strings.Trim(u.Path, "/"), "/") == 0):
			out["List"]++
		case method == "GET":
			out["GetObject"]++
		case method == "HEAD":
			out["HeadObject"]++
		case method == "DELETE":
			out["DeleteObject"]++
		default:
			out[method]++
		}
	}
	return out
}

// stepMeter counts each workflow step's invocations and time, as Lambda
// would bill them.
type stepMeter struct {
	mu    sync.Mutex
	calls map[string]int
	time  map[string]time.Duration
}

func (m *stepMeter) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls, m.time = map[string]int{}, map[string]time.Duration{}
}

func (m *stepMeter) wrap(name string, s asl.Step) asl.Step {
	return func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		start := time.Now()
		out, err := s(ctx, in)
		m.mu.Lock()
		m.calls[name]++
		m.time[name] += time.Since(start)
		m.mu.Unlock()
		return out, err
	}
}

func (m *stepMeter) snapshot() map[string]any {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]any{}
	for name, n := range m.calls {
		out[name] = map[string]any{"invocations": n, "total_ms": m.time[name].Milliseconds(), "mean_ms": m.time[name].Milliseconds() / int64(n)}
	}
	return out
}

// transitions counts the state transitions Step Functions bills for one
// execution of statemachines/export.asl.json: Plan, the Choice and Map
// states, Finalize; per item, ExportItem and ItemDone per invocation and
// ItemSucceeded once.
func (m *stepMeter) transitions() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	// ItemSucceeded is counted per invocation, not per item: an upper
	// bound when an item loops on its cursor.
	return 4 + 3*m.calls["ExportItem"]
}

// meterSteps replaces the workflow's steps with counting ones.
func (b *bench) meterSteps(t *testing.T) *stepMeter {
	t.Helper()
	steps, err := app.NewAWSFromEnv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := &stepMeter{}
	m.reset()
	err = b.sfn.SetSteps(statemachines.Export, map[string]asl.Step{
		"PlanFunctionArn":       m.wrap("Plan", awstest.Invoke(handler.Task(steps.Steps.Plan))),
		"ExportItemFunctionArn": m.wrap("ExportItem", awstest.Invoke(handler.Task(steps.Steps.ExportItem))),
		"FinalizeFunctionArn":   m.wrap("Finalize", awstest.Invoke(handler.Task(steps.Steps.Finalize))),
		"MarkFailedFunctionArn": m.wrap("MarkFailed", awstest.Invoke(handler.Task(steps.Steps.MarkFailed))),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// dynamoMeter is a proxy in front of dynalite that asks for and sums the
// consumed capacity of every request.
type dynamoMeter struct {
	url string
	mu  sync.Mutex
	cur dynamoCounts
}

type dynamoCounts struct {
	Requests map[string]int     `json:"requests"`
	Units    map[string]float64 `json:"capacity_units"`
	Bytes    int64              `json:"response_bytes"`
}

func (c dynamoCounts) perResource(n int64) map[string]any {
	var reads, writes float64
	for op, u := range c.Units {
		switch op {
		case "Query", "GetItem", "BatchGetItem", "Scan":
			reads += u
		default:
			writes += u
		}
	}
	return map[string]any{
		"requests": c.Requests, "capacity_units": c.Units, "response_bytes": c.Bytes,
		"read_units_per_resource": reads / float64(max(n, 1)), "write_units_per_resource": writes / float64(max(n, 1)),
	}
}

func newDynamoMeter(t *testing.T, endpoint string) *dynamoMeter {
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	m := &dynamoMeter{}
	m.reset()
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(res *http.Response) error {
		op := strings.TrimPrefix(res.Request.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
		raw, err := io.ReadAll(res.Body)
		if err != nil {
			return err
		}
		res.Body = io.NopCloser(bytes.NewReader(raw))
		var units float64
		var one struct{ ConsumedCapacity json.RawMessage }
		_ = json.Unmarshal(raw, &one)
		var cc struct{ CapacityUnits float64 }
		var list []struct{ CapacityUnits float64 }
		if json.Unmarshal(one.ConsumedCapacity, &cc) == nil {
			units = cc.CapacityUnits
		} else if json.Unmarshal(one.ConsumedCapacity, &list) == nil {
			for _, c := range list {
				units += c.CapacityUnits
			}
		}
		m.mu.Lock()
		m.cur.Requests[op]++
		m.cur.Units[op] += units
		m.cur.Bytes += int64(len(raw))
		m.mu.Unlock()
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var in map[string]json.RawMessage
		if json.Unmarshal(raw, &in) == nil {
			switch strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_20120810.") {
			case "Query", "GetItem", "BatchGetItem", "Scan", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem":
				in["ReturnConsumedCapacity"] = json.RawMessage(`"TOTAL"`)
				raw, _ = json.Marshal(in)
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		r.ContentLength = int64(len(raw))
		r.Header.Del("Content-Length")
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	m.url = srv.URL
	return m
}

func (m *dynamoMeter) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur = dynamoCounts{Requests: map[string]int{}, Units: map[string]float64{}}
}

func (m *dynamoMeter) snapshot() dynamoCounts {
	m.mu.Lock()
	defer m.mu.Unlock()
	return dynamoCounts{Requests: maps.Clone(m.cur.Requests), Units: maps.Clone(m.cur.Units), Bytes: m.cur.Bytes}
}
