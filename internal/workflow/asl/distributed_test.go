package asl_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	echo := func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) { return in, nil }
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
			"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"in.$":"$$.Execution.Input","name.$":"$$.Execution.Name"},"End":true}}},
		"End":true}}}`
	got, _, err := run(t, def, nil, `{"xs":[1,2]}`)
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
				"F":{"Type":"Pass","End":true}}}`
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
				"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}},"End":true}}}`
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

// A runner registers the s3:getObject reader for any definition, so an
// unused one is no error (unlike an unused ${Name} step).
func TestDistributed_UnusedReaderStep(t *testing.T) {
	steps := map[string]asl.Step{asl.ResourceS3GetObject: (&fixed{out: `[]`}).step}
	if _, err := asl.Parse([]byte(`{"StartAt":"S","States":{"S":{"Type":"Succeed"}}}`), steps); err != nil {
		t.Errorf("Parse() = %v, want nil", err)
	}
}
