package asl_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tranchehq/tranche/internal/workflow/asl"
)

// distributedMap is a definition with one Distributed Map that reads its
// items from S3; extra goes into the Map state.
func distributedMap(extra string) string {
	return `{"StartAt":"M","States":{"M":{"Type":"Map",
		"ItemReader":{"Resource":"arn:aws:states:::s3:getObject","ReaderConfig":{"InputType":"JSON"},
			"Parameters":{"Bucket.$":"$.bucket","Key.$":"$.key"}},
		"ItemSelector":{"v.$":"$$.Map.Item.Value","tag.$":"$.tag"},
		"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},
			"StartAt":"T","States":{"T":{"Type":"Task","Resource":"${T}","End":true}}}` + extra + `}}}`
}

// objects is a fake s3:getObject step over a map of "bucket/key" → body.
type objects struct {
	mu     sync.Mutex
	bodies map[string]string
	reads  []map[string]any
}

func (o *objects) step(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
	var p map[string]any
	if err := json.Unmarshal(in, &p); err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reads = append(o.reads, p)
	body, ok := o.bodies[fmt.Sprint(p["Bucket"], "/", p["Key"])]
	if !ok {
		return nil, errors.New("NoSuchKey: The specified key does not exist.")
	}
	return json.RawMessage(body), nil
}

func TestDistributed_ItemReader(t *testing.T) {
	objs := &objects{bodies: map[string]string{"b/items.json": `["a","b","c"]`}}
	got, _, err := run(t, distributedMap(`,"MaxConcurrency":2,"ToleratedFailurePercentage":0,"ResultPath":"$.out","End":true`),
		map[string]asl.Step{"T": echo, asl.ResourceS3GetObject: objs.step}, `{"bucket":"b","key":"items.json","tag":"t"}`)
	want := `{"bucket":"b","key":"items.json","out":[{"tag":"t","v":"a"},{"tag":"t","v":"b"},{"tag":"t","v":"c"}],"tag":"t"}`
	if err != nil || got != want {
		t.Errorf("Run() = %s, %v, want %s", got, err, want)
	}
	if diff := cmp.Diff([]map[string]any{{"Bucket": "b", "Key": "items.json"}}, objs.reads); diff != "" {
		t.Errorf("ItemReader reads mismatch (-want +got):\n%s", diff)
	}
}

// Without an ItemReader a Distributed Map iterates over ItemsPath; each
// item is a child execution with its own $$.Execution.
func TestDistributed_ItemsPathChildContext(t *testing.T) {
	def := `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.xs",
		"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"EXPRESS"},
			"StartAt":"P","States":{"P":{"Type":"Task","Resource":"${T}","Parameters":{"in.$":"$$.Execution.Input","name.$":"$$.Execution.Name"},"End":true}}},
		"End":true}}}`
	got, _, err := run(t, def, map[string]asl.Step{"T": echo}, `{"xs":[1,2]}`)
	want := `[{"in":1,"name":"exec-1/M:0"},{"in":2,"name":"exec-1/M:1"}]`
	if err != nil || got != want {
		t.Errorf("Run() = %s, %v, want %s", got, err, want)
	}
}

// A failed child fails the Map Run with States.ExceedToleratedFailureThreshold,
// which a Catch handles even when the child failed with States.Runtime.
func TestDistributed_ChildFailure(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		out      string
		wantName string
	}{
		{name: "NamedError", err: &namedError{"Permanent", "bad cursor"}, wantName: "Permanent"},
		{name: "RuntimeError", out: `not json`, wantName: "States.Runtime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := &objects{bodies: map[string]string{"b/k": `[0,1,2,3,4,5,6,7,8,9]`}}
			step := func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
				if strings.Contains(string(in), `"v":7`) {
					if tc.err != nil {
						return nil, tc.err
					}
					return json.RawMessage(tc.out), nil
				}
				return json.RawMessage(`{}`), nil
			}
			def := `{"StartAt":"M","States":{"M":{"Type":"Map",
				"ItemReader":{"Resource":"arn:aws:states:::s3:getObject","ReaderConfig":{"InputType":"JSON"},"Parameters":{"Bucket":"b","Key":"k"}},
				"ItemSelector":{"v.$":"$$.Map.Item.Value"},
				"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},
					"StartAt":"T","States":{"T":{"Type":"Task","Resource":"${T}","Retry":[{"ErrorEquals":["States.ALL"],"MaxAttempts":1}],"End":true}}},
				"ResultPath":null,"Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"F"}],"End":true},
				"F":{"Type":"Succeed"}}}`
			got, s, err := run(t, def, map[string]asl.Step{"T": step, asl.ResourceS3GetObject: objs.step}, `{}`)
			if err != nil {
				t.Fatalf("Run() = %v, want the Catch to handle the Map Run's failure", err)
			}
			var out struct{ Error struct{ Error, Cause string } }
			if err := json.Unmarshal([]byte(got), &out); err != nil {
				t.Fatal(err)
			}
			if out.Error.Error != asl.ErrExceedToleratedFailureThreshold || !strings.Contains(out.Error.Cause, "item 7 failed with "+tc.wantName) {
				t.Errorf("caught %+v, want %s naming item 7's %s", out.Error, asl.ErrExceedToleratedFailureThreshold, tc.wantName)
			}
			// The child's own Retry ran first (States.Runtime is never retried).
			wantSleeps := 1
			if tc.wantName == "States.Runtime" {
				wantSleeps = 0
			}
			if len(s.delays) != wantSleeps {
				t.Errorf("sleeps = %v, want %d", s.delays, wantSleeps)
			}
		})
	}
}

func TestDistributed_ItemReaderFailed(t *testing.T) {
	for _, tc := range []struct {
		name, body, wantCause string
	}{
		{"NoSuchKey", "", "NoSuchKey"},
		{"NotJSON", `[1,`, "not JSON"},
		{"NotArray", `{"items":[1]}`, "not a JSON array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := &objects{bodies: map[string]string{}}
			if tc.body != "" {
				objs.bodies["b/k"] = tc.body
			}
			calls := 0
			step := func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) { calls++; return in, nil }
			def := distributedMap(`,"Retry":[{"ErrorEquals":["States.ItemReaderFailed"],"MaxAttempts":2}],"End":true`)
			_, s, err := run(t, def, map[string]asl.Step{"T": step, asl.ResourceS3GetObject: objs.step}, `{"bucket":"b","key":"k","tag":"t"}`)
			var ee *asl.ExecutionError
			if !errors.As(err, &ee) || ee.Name != asl.ErrItemReaderFailed || !strings.Contains(ee.Cause, tc.wantCause) {
				t.Errorf("Run() = %v, want %s containing %q", err, asl.ErrItemReaderFailed, tc.wantCause)
			}
			if len(objs.reads) != 3 || len(s.delays) != 2 || calls != 0 {
				t.Errorf("reads = %d, sleeps = %v, item calls = %d; want 3 reads (Retry on the Map), 2 sleeps, no item", len(objs.reads), s.delays, calls)
			}
		})
	}
}

// The item list read from S3 is not a state payload: it may be far larger
// than the payload limit, while each child's input still may not.
func TestDistributed_PayloadLimit(t *testing.T) {
	items := make([]int, 2000)
	for i := range items {
		items[i] = i
	}
	body, _ := json.Marshal(items)
	var calls atomic.Int32
	step := func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		calls.Add(1)
		return json.RawMessage(`{}`), nil
	}
	steps := map[string]asl.Step{"T": step, asl.ResourceS3GetObject: (&objects{bodies: map[string]string{"b/k": string(body)}}).step}
	m, err := asl.Parse([]byte(distributedMap(`,"ResultPath":null,"End":true`)), steps)
	if err != nil {
		t.Fatal(err)
	}
	m.PayloadLimit = 6 * 2000 // the Map's result, 2,000 × {}, fits; the list (8,890 bytes) would not
	if _, err := m.Run(context.Background(), "e", json.RawMessage(`{"bucket":"b","key":"k","tag":"t"}`)); err != nil {
		t.Errorf("Run() = %v", err)
	}
	if n := calls.Load(); n != 2000 {
		t.Errorf("%d items ran, want 2000", n)
	}
	_, err = m.Run(context.Background(), "e", json.RawMessage(`{"bucket":"b","key":"k","tag":"`+strings.Repeat("x", 12000)+`"}`))
	if got := errorName(err); got != asl.ErrDataLimitExceeded {
		t.Errorf("Run() with an oversized input = %v, want %s", err, asl.ErrDataLimitExceeded)
	}
}

func TestDistributed_Concurrency(t *testing.T) {
	var inFlight, most atomic.Int32
	step := func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		return json.RawMessage(`{}`), nil
	}
	items, _ := json.Marshal(make([]int, 300))
	steps := map[string]asl.Step{"T": step, asl.ResourceS3GetObject: (&objects{bodies: map[string]string{"b/k": string(items)}}).step}
	for _, tc := range []struct {
		name  string
		extra string
		cap   int
		want  int32
	}{
		{"MaxConcurrencyPath", `,"MaxConcurrencyPath":"$.n","End":true`, 0, 3},
		{"CappedByMachine", `,"MaxConcurrency":0,"End":true`, 5, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := asl.Parse([]byte(distributedMap(tc.extra)), steps)
			if err != nil {
				t.Fatal(err)
			}
			if tc.cap > 0 {
				m.MaxDistributedConcurrency = tc.cap
			}
			most.Store(0)
			if _, err := m.Run(context.Background(), "e", json.RawMessage(`{"bucket":"b","key":"k","tag":"t","n":3}`)); err != nil {
				t.Fatal(err)
			}
			if got := most.Load(); got > tc.want {
				t.Errorf("%d children ran at once, want at most %d", got, tc.want)
			}
		})
	}
}

func TestDistributed_ParseErrors(t *testing.T) {
	reader := func(r string) string {
		return `{"StartAt":"M","States":{"M":{"Type":"Map","ItemReader":` + r + `,
			"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},
				"StartAt":"P","States":{"P":{"Type":"Succeed"}}},"End":true}}}`
	}
	params := `"Parameters":{"Bucket":"b","Key":"k"}`
	get := `"Resource":"arn:aws:states:::s3:getObject"`
	jsonCfg := `"ReaderConfig":{"InputType":"JSON"}`
	tests := []struct {
		name, def, wantErr string
		noReader           bool
	}{
		{name: "ListObjects", def: reader(`{"Resource":"arn:aws:states:::s3:listObjectsV2",` + params + `}`), wantErr: `only "arn:aws:states:::s3:getObject"`},
		{name: "NoReaderStep", def: reader(`{` + get + `,` + jsonCfg + `,` + params + `}`), wantErr: `no step "arn:aws:states:::s3:getObject"`, noReader: true},
		{name: "CSV", def: reader(`{` + get + `,"ReaderConfig":{"InputType":"CSV","CSVHeaderLocation":"FIRST_ROW"},` + params + `}`), wantErr: `unsupported field "CSVHeaderLocation"`},
		{name: "JSONL", def: reader(`{` + get + `,"ReaderConfig":{"InputType":"JSONL"},` + params + `}`), wantErr: "only JSON"},
		{name: "NoReaderConfig", def: reader(`{` + get + `,` + params + `}`), wantErr: "ReaderConfig must be a JSON object"},
		{name: "MaxItems", def: reader(`{` + get + `,"ReaderConfig":{"InputType":"JSON","MaxItems":10},` + params + `}`), wantErr: `unsupported field "MaxItems"`},
		{name: "NoKey", def: reader(`{` + get + `,` + jsonCfg + `,"Parameters":{"Bucket":"b"}}`), wantErr: "Parameters needs Key"},
		{name: "VersionId", def: reader(`{` + get + `,` + jsonCfg + `,"Parameters":{"Bucket":"b","Key":"k","VersionId":"1"}}`), wantErr: `unsupported field "VersionId" in Parameters`},
		{name: "Arguments", def: reader(`{` + get + `,` + jsonCfg + `,"Arguments":{}}`), wantErr: `unsupported field "Arguments" in ItemReader`},
		{name: "ItemsPathAndReader", def: distributedMap(`,"ItemsPath":"$.xs","End":true`), wantErr: "ItemsPath and ItemReader are exclusive"},
		{name: "ToleratedFailure", def: distributedMap(`,"ToleratedFailurePercentage":5,"End":true`), wantErr: "only 0 is supported"},
		{name: "ToleratedFailureCount", def: distributedMap(`,"ToleratedFailureCount":0,"End":true`), wantErr: `unsupported field "ToleratedFailureCount"`},
		{name: "Label", def: distributedMap(`,"Label":"x","End":true`), wantErr: `unsupported field "Label"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			steps := map[string]asl.Step{"T": (&fixed{out: `{}`}).step, asl.ResourceS3GetObject: (&fixed{out: `[]`}).step}
			if !strings.Contains(tc.def, "${T}") {
				delete(steps, "T")
			}
			if tc.noReader {
				delete(steps, asl.ResourceS3GetObject)
			}
			_, err := asl.Parse([]byte(tc.def), steps)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

// A runner registers the s3:getObject reader and s3:putObject writer for any
// definition, so an unused one is no error (unlike an unused ${Name} step).
func TestDistributed_UnusedReaderStep(t *testing.T) {
	steps := map[string]asl.Step{asl.ResourceS3GetObject: (&fixed{out: `[]`}).step, asl.ResourceS3PutObject: (&puts{}).step}
	if _, err := asl.Parse([]byte(`{"StartAt":"S","States":{"S":{"Type":"Succeed"}}}`), steps); err != nil {
		t.Errorf("Parse() = %v, want nil", err)
	}
}

// puts is a fake s3:putObject step that keeps the objects written.
type puts struct {
	mu     sync.Mutex
	keys   []string          // "bucket/key", in write order
	bodies map[string]string // "bucket/key" → body
	fail   func(key string) error
}

func (p *puts) step(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
	var req map[string]string
	if err := json.Unmarshal(in, &req); err != nil {
		return nil, err
	}
	if len(req) != 3 {
		return nil, fmt.Errorf("s3:putObject input %s, want Bucket, Key and Body", in)
	}
	if p.fail != nil {
		if err := p.fail(req["Key"]); err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bodies == nil {
		p.bodies = map[string]string{}
	}
	k := req["Bucket"] + "/" + req["Key"]
	p.keys = append(p.keys, k)
	p.bodies[k] = req["Body"]
	return json.RawMessage(`{"ETag":"\"x\""}`), nil
}

// writerMap is a Distributed Map over $.xs whose items echo their input,
// with a ResultWriter; extra goes into the ResultWriter.
func writerMap(extra string) string {
	return `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.xs",
		"ItemSelector":{"v.$":"$$.Map.Item.Value"},
		"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},
			"StartAt":"T","States":{"T":{"Type":"Task","Resource":"${T}","End":true}}},
		"ResultWriter":{"Resource":"arn:aws:states:::s3:putObject"` + extra + `},
		"ResultPath":"$.out","End":true}}}`
}

var mapRunARN = regexp.MustCompile(`^arn:aws:states:::mapRun:exec-1/M:([0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})$`)

// The Map's result is where the results went; they are in
// Prefix/<map run id>/SUCCEEDED_0.json, shaped by the Transformation, and
// manifest.json lists that file.
func TestDistributed_ResultWriter(t *testing.T) {
	echo := func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		if strings.Contains(string(in), `"v":[`) {
			return json.RawMessage(`[1,2]`), nil
		}
		return in, nil
	}
	for _, tc := range []struct {
		name, extra, wantDir, wantResults string
	}{
		{"None", `,"Parameters":{"Bucket.$":"$.b","Prefix":"runs"}`, "runs/",
			`[{"ExecutionArn":"arn:aws:states:::execution:exec-1/M:0","Input":"{\"v\":\"a\"}","InputDetails":{"Included":true},"Name":"exec-1/M:0","Output":"{\"v\":\"a\"}","OutputDetails":{"Included":true},"RedriveCount":0,"RedriveStatus":"NOT_REDRIVABLE","RedriveStatusReason":"Execution is SUCCEEDED and cannot be redriven","Status":"SUCCEEDED"},` +
				`{"ExecutionArn":"arn:aws:states:::execution:exec-1/M:1","Input":"{\"v\":[0]}","InputDetails":{"Included":true},"Name":"exec-1/M:1","Output":"[1,2]","OutputDetails":{"Included":true},"RedriveCount":0,"RedriveStatus":"NOT_REDRIVABLE","RedriveStatusReason":"Execution is SUCCEEDED and cannot be redriven","Status":"SUCCEEDED"}]`},
		{"Compact", `,"Parameters":{"Bucket.$":"$.b","Prefix.$":"$.p"},"WriterConfig":{"OutputType":"JSON","Transformation":"COMPACT"}`, "jobs/j/",
			`[{"v":"a"},[1,2]]`},
		{"Flatten", `,"Parameters":{"Bucket":"bkt"},"WriterConfig":{"Transformation":"FLATTEN"}`, "",
			`[{"v":"a"},1,2]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &puts{}
			got, _, err := run(t, writerMap(tc.extra), map[string]asl.Step{"T": echo, asl.ResourceS3PutObject: p.step},
				`{"xs":["a",[0]],"b":"bkt","p":"jobs/j/"}`)
			if err != nil {
				t.Fatalf("Run() = %v", err)
			}
			var out struct {
				Out struct {
					MapRunArn           string
					ResultWriterDetails map[string]string
				}
			}
			if err := json.Unmarshal([]byte(got), &out); err != nil {
				t.Fatal(err)
			}
			m := mapRunARN.FindStringSubmatch(out.Out.MapRunArn)
			if m == nil {
				t.Fatalf("MapRunArn = %q, want %v", out.Out.MapRunArn, mapRunARN)
			}
			dir := tc.wantDir + m[1] + "/"
			if diff := cmp.Diff(map[string]string{"Bucket": "bkt", "Key": dir + "manifest.json"}, out.Out.ResultWriterDetails); diff != "" {
				t.Errorf("ResultWriterDetails mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"bkt/" + dir + "SUCCEEDED_0.json", "bkt/" + dir + "manifest.json"}, p.keys); diff != "" {
				t.Fatalf("objects written mismatch (-want +got):\n%s", diff)
			}
			if got := p.bodies["bkt/"+dir+"SUCCEEDED_0.json"]; got != tc.wantResults {
				t.Errorf("SUCCEEDED_0.json = %s, want %s", got, tc.wantResults)
			}
			wantManifest := fmt.Sprintf(`{"DestinationBucket":"bkt","MapRunArn":%q,"ResultFiles":{"FAILED":[],"PENDING":[],"SUCCEEDED":[{"Key":"%sSUCCEEDED_0.json","Size":%d}]}}`,
				out.Out.MapRunArn, dir, len(tc.wantResults))
			if got := p.bodies["bkt/"+dir+"manifest.json"]; got != wantManifest {
				t.Errorf("manifest.json = %s, want %s", got, wantManifest)
			}
		})
	}
}

// No items: only the manifest, with no result file.
func TestDistributed_ResultWriterNoItems(t *testing.T) {
	p := &puts{}
	got, _, err := run(t, writerMap(`,"Parameters":{"Bucket":"bkt","Prefix":"r/"}`),
		map[string]asl.Step{"T": (&fixed{out: `{}`}).step, asl.ResourceS3PutObject: p.step}, `{"xs":[]}`)
	if err != nil || len(p.keys) != 1 || !strings.HasSuffix(p.keys[0], "/manifest.json") {
		t.Fatalf("Run() = %s, %v; objects %v, want only a manifest", got, err, p.keys)
	}
	if body := p.bodies[p.keys[0]]; !strings.HasSuffix(body, `"ResultFiles":{"FAILED":[],"PENDING":[],"SUCCEEDED":[]}}`) {
		t.Errorf("manifest.json = %s, want no result files", body)
	}
}

// A Map Run's id is derived from the execution name and the Map Runs of the
// state so far: a re-run of an execution writes the same keys, another
// execution or another Map Run (here, a Retry of the Map) other keys.
func TestDistributed_ResultWriterMapRunIDs(t *testing.T) {
	p := &puts{}
	failed := false
	p.fail = func(key string) error {
		if !failed {
			failed = true
			return errors.New("SlowDown: Please reduce your request rate.")
		}
		return nil
	}
	def := strings.Replace(writerMap(`,"Parameters":{"Bucket":"bkt"}`), `"ResultPath"`,
		`"Retry":[{"ErrorEquals":["States.ResultWriterFailed"],"MaxAttempts":1}],"ResultPath"`, 1)
	m, err := asl.Parse([]byte(def), map[string]asl.Step{"T": (&fixed{out: `{}`}).step, asl.ResourceS3PutObject: p.step})
	if err != nil {
		t.Fatal(err)
	}
	m.Sleep = (&sleepRecorder{}).sleep
	manifest := func(name string) string {
		t.Helper()
		out, err := m.Run(context.Background(), name, json.RawMessage(`{"xs":[1]}`))
		if err != nil {
			t.Fatalf("Run(%s) = %v", name, err)
		}
		var v struct {
			Out struct{ ResultWriterDetails struct{ Key string } }
		}
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatal(err)
		}
		return v.Out.ResultWriterDetails.Key
	}
	first := manifest("exec-1") // its first Map Run failed, the retry wrote
	if len(p.keys) != 2 || !strings.HasPrefix(p.keys[0], "bkt/"+strings.TrimSuffix(first, "manifest.json")) {
		t.Fatalf("objects %v, manifest %s: want the retried Map Run's two objects", p.keys, first)
	}
	again, again2, other := manifest("exec-1"), manifest("exec-1"), manifest("exec-2")
	if again != again2 {
		t.Errorf("two runs of exec-1 wrote %s and %s, want the same keys", again, again2)
	}
	if first == again || other == again || other == first {
		t.Errorf("manifests %s (retried Map Run), %s (first Map Run), %s (exec-2): want distinct", first, again, other)
	}
}

// A failed write is States.ResultWriterFailed, which Retry and Catch may
// handle; a ResultWriter path missing from the input is States.Runtime,
// before any item runs.
func TestDistributed_ResultWriterFailed(t *testing.T) {
	for _, tc := range []struct {
		name, params, input string
		fail                func(string) error
		wantName, wantCause string
		wantCalls           int32
	}{
		{name: "PutFails", params: `{"Bucket":"bkt"}`, input: `{"xs":[1,2]}`,
			fail: func(key string) error {
				return errIf(strings.HasSuffix(key, "manifest.json"), errors.New("AccessDenied"))
			},
			wantName: asl.ErrResultWriterFailed, wantCause: "manifest.json: AccessDenied", wantCalls: 2},
		{name: "PutPanics", params: `{"Bucket":"bkt"}`, input: `{"xs":[1]}`,
			fail:     func(string) error { panic("nil client") },
			wantName: asl.ErrResultWriterFailed, wantCause: "panic: nil client", wantCalls: 1},
		{name: "BucketNotString", params: `{"Bucket.$":"$.b"}`, input: `{"xs":[1],"b":3}`,
			wantName: asl.ErrResultWriterFailed, wantCause: "non-empty string Bucket"},
		{name: "MissingPath", params: `{"Bucket":"bkt","Prefix.$":"$.p"}`, input: `{"xs":[1]}`,
			wantName: asl.ErrRuntime, wantCause: "$.p"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			step := func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
				calls.Add(1)
				return json.RawMessage(`{}`), nil
			}
			def := strings.Replace(writerMap(`,"Parameters":`+tc.params), `"ResultPath":"$.out","End":true}}}`,
				`"ResultPath":"$.out","Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"F"}],"End":true},"F":{"Type":"Succeed"}}}`, 1)
			got, _, err := run(t, def, map[string]asl.Step{"T": step, asl.ResourceS3PutObject: (&puts{fail: tc.fail}).step}, tc.input)
			if tc.wantName == asl.ErrRuntime {
				var ee *asl.ExecutionError
				if !errors.As(err, &ee) || ee.Name != asl.ErrRuntime || !strings.Contains(ee.Cause, tc.wantCause) {
					t.Errorf("Run() = %s, %v; want an uncaught %s naming %s", got, err, asl.ErrRuntime, tc.wantCause)
				}
			} else {
				var out struct{ Error struct{ Error, Cause string } }
				if err != nil || json.Unmarshal([]byte(got), &out) != nil || out.Error.Error != tc.wantName || !strings.Contains(out.Error.Cause, tc.wantCause) {
					t.Errorf("Run() = %s, %v; want %s caught, its cause containing %q", got, err, tc.wantName, tc.wantCause)
				}
			}
			if n := calls.Load(); n != tc.wantCalls {
				t.Errorf("%d items ran, want %d", n, tc.wantCalls)
			}
		})
	}
}

// With a ResultWriter the Map's result is a small descriptor whatever the
// children return; without one, the same results break the payload limit.
func TestDistributed_ResultWriterPayload(t *testing.T) {
	big := `{"data":"` + strings.Repeat("x", 100) + `"}`
	steps := map[string]asl.Step{"T": (&fixed{out: big}).step, asl.ResourceS3PutObject: (&puts{}).step}
	xs, _ := json.Marshal(make([]int, 1000)) // 1,000 × 111 bytes of results
	for _, tc := range []struct {
		name, def, wantErr string
	}{
		{"ResultWriter", writerMap(`,"Parameters":{"Bucket":"bkt"}`), ""},
		{"NoResultWriter", strings.Replace(writerMap(""), `"ResultWriter":{"Resource":"arn:aws:states:::s3:putObject"},`, "", 1), asl.ErrDataLimitExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := asl.Parse([]byte(tc.def), steps)
			if err != nil {
				t.Fatal(err)
			}
			m.PayloadLimit = 32 << 10
			_, err = m.Run(context.Background(), "exec-1", json.RawMessage(`{"xs":`+string(xs)+`}`))
			if got := errorName(err); got != tc.wantErr {
				t.Errorf("Run() = %v, want error name %q", err, tc.wantErr)
			}
		})
	}
}

func TestDistributed_ResultWriterParseErrors(t *testing.T) {
	put := `"Resource":"arn:aws:states:::s3:putObject"`
	writer := func(w string) string {
		return `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.xs","ResultWriter":` + w + `,
			"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},
				"StartAt":"P","States":{"P":{"Type":"Succeed"}}},"End":true}}}`
	}
	params := `"Parameters":{"Bucket":"b","Prefix":"p"}`
	tests := []struct {
		name, def, wantErr string
		noWriter           bool
	}{
		{name: "Inline", def: `{"StartAt":"M","States":{"M":{"Type":"Map","ResultWriter":{` + put + `,` + params + `},
			"ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Succeed"}}},"End":true}}}`, wantErr: "ResultWriter needs ProcessorConfig Mode DISTRIBUTED"},
		{name: "Empty", def: writer(`{}`), wantErr: `only "arn:aws:states:::s3:putObject"`},
		{name: "WriterConfigOnly", def: writer(`{"WriterConfig":{"Transformation":"COMPACT"}}`), wantErr: `only "arn:aws:states:::s3:putObject"`},
		{name: "GetObject", def: writer(`{"Resource":"arn:aws:states:::s3:getObject",` + params + `}`), wantErr: `only "arn:aws:states:::s3:putObject"`},
		{name: "NoWriterStep", def: writer(`{` + put + `,` + params + `}`), wantErr: `no step "arn:aws:states:::s3:putObject"`, noWriter: true},
		{name: "NoParameters", def: writer(`{` + put + `}`), wantErr: "Parameters must be a JSON object"},
		{name: "NoBucket", def: writer(`{` + put + `,"Parameters":{"Prefix":"p"}}`), wantErr: "Parameters needs Bucket"},
		{name: "Key", def: writer(`{` + put + `,"Parameters":{"Bucket":"b","Key":"k"}}`), wantErr: `unsupported field "Key" in Parameters`},
		{name: "Arguments", def: writer(`{` + put + `,"Arguments":{"Bucket":"b"}}`), wantErr: `unsupported field "Arguments" in ResultWriter`},
		{name: "JSONL", def: writer(`{` + put + `,` + params + `,"WriterConfig":{"OutputType":"JSONL"}}`), wantErr: "only JSON"},
		{name: "Transformation", def: writer(`{` + put + `,` + params + `,"WriterConfig":{"Transformation":"compact"}}`), wantErr: "must be NONE, COMPACT or FLATTEN"},
		{name: "WriterConfigField", def: writer(`{` + put + `,` + params + `,"WriterConfig":{"Format":"x"}}`), wantErr: `unsupported field "Format" in WriterConfig`},
		{name: "Intrinsic", def: writer(`{` + put + `,"Parameters":{"Bucket":"b","Prefix.$":"States.Format('{}', $.p)"}}`), wantErr: "intrinsic functions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			steps := map[string]asl.Step{asl.ResourceS3PutObject: (&puts{}).step}
			if tc.noWriter {
				delete(steps, asl.ResourceS3PutObject)
			}
			_, err := asl.Parse([]byte(tc.def), steps)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}
