package asl_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tranchehq/tranche/internal/workflow/asl"
	"github.com/tranchehq/tranche/statemachines"
)

// namedError is a step error with an ASL error name, like a Lambda errorType.
type namedError struct{ name, msg string }

func (e *namedError) Error() string     { return e.msg }
func (e *namedError) ErrorName() string { return e.name }

// sleepRecorder is an injected Machine.Sleep that returns at once.
type sleepRecorder struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays = append(s.delays, d)
	return ctx.Err()
}

func seconds(ns ...int) []time.Duration {
	var ds []time.Duration
	for _, n := range ns {
		ds = append(ds, time.Duration(n)*time.Second)
	}
	return ds
}

// exportFake implements the four steps of export.asl.json and records what
// they receive.
type exportFake struct {
	items int
	loops int // continuations (done:false) each item returns before it is done
	// distributed makes Plan write the items to a (fake) S3 object, as
	// export.Service does above Config.InlineItems.
	distributed bool

	// Optional failure injection; call counts from 1.
	planErr     func(call int) error
	exportErr   func(item, call int) error
	finalizeErr func(call int) error
	markErr     func(call int) error
	// puts is the ResultWriter's s3:putObject; nil makes one.
	puts *puts
	// exportWait, if set, runs inside every ExportItem call.
	exportWait func(ctx context.Context, item int)
	// exportDone is what ExportItem returns when an item is done.
	exportDone func(input map[string]any) any

	mu          sync.Mutex
	planCalls   int
	exportCalls map[int][]map[string]any // ExportItem inputs by item
	exportOK    map[int]int              // ExportItem calls that did not fail, by item
	inFlight    int
	maxInFlight int
	finalize    []map[string]any
	markFailed  []map[string]any
	reads       int // s3:getObject calls
	maxPayload  int // the largest step input or output, in bytes
}

const (
	itemsBucket   = "tranche-bucket"
	itemsKey      = "exports/job-1/plan/items.json"
	resultsPrefix = "exports/job-1/plan/results/"
)

// payload records the size of a step's input or output.
func (f *exportFake) payload(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maxPayload = max(f.maxPayload, len(b))
}

// measured wraps every step to record its payload sizes.
func (f *exportFake) measured(steps map[string]asl.Step) map[string]asl.Step {
	out := map[string]asl.Step{}
	for name, step := range steps {
		out[name] = func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
			// Step Functions reads the item list and writes the results
			// itself: those are not state payloads.
			state := !strings.HasPrefix(name, "arn:")
			if state {
				f.payload(in)
			}
			res, err := step(ctx, in)
			if state {
				f.payload(res)
			}
			return res, err
		}
	}
	return out
}

func decodeInput(t *testing.T, in json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(in, &m); err != nil {
		t.Errorf("step input %s: %v", in, err)
	}
	return m
}

func encode(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (f *exportFake) steps(t *testing.T) map[string]asl.Step {
	return map[string]asl.Step{
		"PlanFunctionArn": func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
			f.mu.Lock()
			f.planCalls++
			call := f.planCalls
			f.mu.Unlock()
			if diff := cmp.Diff(map[string]any{"jobId": "job-1"}, decodeInput(t, in)); diff != "" {
				t.Errorf("Plan input mismatch (-want +got):\n%s", diff)
			}
			if f.planErr != nil {
				if err := f.planErr(call); err != nil {
					return nil, err
				}
			}
			if f.distributed {
				return encode(map[string]any{"itemsBucket": itemsBucket, "itemsKey": itemsKey, "resultsPrefix": resultsPrefix, "maxConcurrency": 4}), nil
			}
			return encode(map[string]any{"items": f.itemList(), "maxConcurrency": 4}), nil
		},
		asl.ResourceS3GetObject: func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
			f.mu.Lock()
			f.reads++
			f.mu.Unlock()
			if diff := cmp.Diff(map[string]any{"Bucket": itemsBucket, "Key": itemsKey}, decodeInput(t, in)); diff != "" {
				t.Errorf("s3:getObject input mismatch (-want +got):\n%s", diff)
				return nil, errors.New("NoSuchKey")
			}
			return encode(f.itemList()), nil
		},
		"ExportItemFunctionArn": func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
			m := decodeInput(t, in)
			item := int(m["item"].(float64))
			f.mu.Lock()
			f.exportCalls[item] = append(f.exportCalls[item], m)
			call := len(f.exportCalls[item])
			f.inFlight++
			f.maxInFlight = max(f.maxInFlight, f.inFlight)
			f.mu.Unlock()
			defer func() {
				f.mu.Lock()
				f.inFlight--
				f.mu.Unlock()
			}()
			if f.exportWait != nil {
				f.exportWait(ctx, item)
			}
			if f.exportErr != nil {
				if err := f.exportErr(item, call); err != nil {
					return nil, err
				}
			}
			// The Choice loops back with ExportItem's output as the next
			// input, so a continuation must carry jobId and item along.
			f.mu.Lock()
			f.exportOK[item]++
			part := f.exportOK[item]
			f.mu.Unlock()
			if part <= f.loops {
				return encode(map[string]any{"jobId": m["jobId"], "item": item, "cursor": fmt.Sprintf("c%d", part), "done": false}), nil
			}
			if f.exportDone != nil {
				return encode(f.exportDone(m)), nil
			}
			return json.RawMessage(`{"done":true}`), nil
		},
		"FinalizeFunctionArn": func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
			f.mu.Lock()
			f.finalize = append(f.finalize, decodeInput(t, in))
			call := len(f.finalize)
			f.mu.Unlock()
			if f.finalizeErr != nil {
				if err := f.finalizeErr(call); err != nil {
					return nil, err
				}
			}
			return json.RawMessage(`{"status":"completed"}`), nil
		},
		"MarkFailedFunctionArn": func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
			f.mu.Lock()
			f.markFailed = append(f.markFailed, decodeInput(t, in))
			call := len(f.markFailed)
			f.mu.Unlock()
			if f.markErr != nil {
				if err := f.markErr(call); err != nil {
					return nil, err
				}
			}
			return json.RawMessage(`{}`), nil
		},
		asl.ResourceS3PutObject: f.puts.step,
	}
}

func (f *exportFake) itemList() []int {
	items := make([]int, f.items)
	for i := range items {
		items[i] = i
	}
	return items
}

func newExport(t *testing.T, f *exportFake) (*asl.Machine, *sleepRecorder) {
	t.Helper()
	f.exportCalls = map[int][]map[string]any{}
	f.exportOK = map[int]int{}
	if f.puts == nil {
		f.puts = &puts{}
	}
	m, err := asl.Parse(statemachines.Export, f.measured(f.steps(t)))
	if err != nil {
		t.Fatalf("Parse(export.asl.json) = %v", err)
	}
	s := &sleepRecorder{}
	m.Sleep = s.sleep
	m.Rand = func() float64 { return 0.5 } // every FULL-jitter wait is half its interval
	return m, s
}

// jittered is the waits of retries whose intervals are ns seconds, under
// newExport's Rand.
func jittered(ns ...int) []time.Duration {
	var ds []time.Duration
	for _, n := range ns {
		ds = append(ds, time.Duration(n)*time.Second/2)
	}
	return ds
}

func TestExport_OK(t *testing.T) {
	f := &exportFake{items: 9, loops: 2}
	m, s := newExport(t, f)
	out, err := m.Run(context.Background(), "job-1", json.RawMessage(`{"jobId":"job-1"}`))
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if got, want := string(out), `{"status":"completed"}`; got != want {
		t.Errorf("Run() = %s, want %s", got, want)
	}
	for item := range f.items {
		want := []map[string]any{
			{"jobId": "job-1", "item": float64(item)},
			{"jobId": "job-1", "item": float64(item), "cursor": "c1", "done": false},
			{"jobId": "job-1", "item": float64(item), "cursor": "c2", "done": false},
		}
		if diff := cmp.Diff(want, f.exportCalls[item]); diff != "" {
			t.Errorf("ExportItem inputs for item %d mismatch (-want +got):\n%s", item, diff)
		}
	}
	if f.maxInFlight > 4 {
		t.Errorf("ExportItem ran %d at once, want at most maxConcurrency 4", f.maxInFlight)
	}
	// ExportItems has ResultPath null, so Finalize sees the plan, not the Map's result.
	wantFinalize := []map[string]any{{"jobId": "job-1"}}
	if diff := cmp.Diff(wantFinalize, f.finalize); diff != "" {
		t.Errorf("Finalize inputs mismatch (-want +got):\n%s", diff)
	}
	if len(f.markFailed) != 0 || len(s.delays) != 0 {
		t.Errorf("MarkFailed calls %v, sleeps %v; want none", f.markFailed, s.delays)
	}
}

func TestExport_TransientRetried(t *testing.T) {
	transient := &namedError{"Transient", "throttled"}
	tests := []struct {
		name       string
		fake       *exportFake
		wantSleeps []time.Duration
		wantErr    string // "" for success
	}{{
		name:       "ExportItemRecovers",
		fake:       &exportFake{items: 1, exportErr: func(item, call int) error { return errIf(call <= 3, transient) }},
		wantSleeps: jittered(1, 2, 4),
	}, {
		name:       "FinalizeRecovers",
		fake:       &exportFake{items: 2, finalizeErr: func(call int) error { return errIf(call == 1, transient) }},
		wantSleeps: jittered(1),
	}, {
		// Plan allows MaxAttempts 8 with MaxDelaySeconds 30: nine failures
		// exhaust it and the Catch marks the job failed.
		name:       "PlanExhausted",
		fake:       &exportFake{items: 2, planErr: func(call int) error { return transient }},
		wantSleeps: jittered(1, 2, 4, 8, 16, 30, 30, 30),
		wantErr:    "ExportFailed",
	}, {
		// ExportItem allows MaxAttempts 10 with MaxDelaySeconds 60: about
		// five minutes of throttling (half on average with the jitter).
		name: "ExportItemThrottledLong",
		fake: &exportFake{items: 1, exportErr: func(item, call int) error {
			return errIf(call <= 10, &namedError{"Lambda.TooManyRequestsException", "Rate Exceeded."})
		}},
		wantSleeps: jittered(1, 2, 4, 8, 16, 32, 60, 60, 60, 60),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, s := newExport(t, tc.fake)
			_, err := m.Run(context.Background(), "job-1", json.RawMessage(`{"jobId":"job-1"}`))
			if got := errorName(err); got != tc.wantErr {
				t.Errorf("Run() error = %v, want name %q", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantSleeps, s.delays); diff != "" {
				t.Errorf("retry delays mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func errIf(cond bool, err error) error {
	if cond {
		return err
	}
	return nil
}

func errorName(err error) string {
	var ee *asl.ExecutionError
	if errors.As(err, &ee) {
		return ee.Name
	}
	if err != nil {
		return "not an ExecutionError: " + err.Error()
	}
	return ""
}

func TestExport_PermanentErrorMarksFailed(t *testing.T) {
	tests := []struct {
		name      string
		fake      *exportFake
		wantError map[string]any
	}{{
		// Retried (States.ALL) until exhausted, then caught.
		name:      "PlanPlainError",
		fake:      &exportFake{items: 3, planErr: func(int) error { return errors.New("index unavailable") }},
		wantError: map[string]any{"Error": "States.TaskFailed", "Cause": "index unavailable"},
	}, {
		name: "ExportItemExportError",
		fake: &exportFake{items: 20, loops: 1, exportErr: func(item, call int) error {
			return errIf(item == 7 && call == 2, &namedError{"ExportError", "bad cursor"})
		}},
		wantError: map[string]any{"Error": "ExportError", "Cause": "bad cursor"},
	}, {
		name:      "FinalizePanics",
		fake:      &exportFake{items: 1, finalizeErr: func(int) error { panic("nil map") }},
		wantError: map[string]any{"Error": "States.TaskFailed", "Cause": "panic: nil map"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newExport(t, tc.fake)
			_, err := m.Run(context.Background(), "job-1", json.RawMessage(`{"jobId":"job-1"}`))
			want := &asl.ExecutionError{Name: "ExportFailed", Cause: "The export job failed; its status says why."}
			var got *asl.ExecutionError
			if !errors.As(err, &got) || *got != *want {
				t.Errorf("Run() = %v, want %v", err, want)
			}
			wantMark := []map[string]any{{"jobId": "job-1", "error": tc.wantError}}
			if diff := cmp.Diff(wantMark, tc.fake.markFailed); diff != "" {
				t.Errorf("MarkFailed inputs mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// A States.Runtime error is not caught by States.ALL (as on AWS): an
// ExportItem that forgets "done" fails the execution without MarkFailed.
func TestExport_RuntimeErrorNotCaught(t *testing.T) {
	f := &exportFake{items: 1, exportDone: func(map[string]any) any { return map[string]any{"finished": true} }}
	m, _ := newExport(t, f)
	_, err := m.Run(context.Background(), "job-1", json.RawMessage(`{"jobId":"job-1"}`))
	if got := errorName(err); got != "States.Runtime" {
		t.Errorf("Run() = %v, want States.Runtime", err)
	}
	if len(f.markFailed) != 0 {
		t.Errorf("MarkFailed called with %v, want no call", f.markFailed)
	}
}

func TestExport_CancelMidMap(t *testing.T) { testCancel(t, false) }

// testCancel cancels an execution while its Map (inline or distributed)
// runs items: Run returns context.Canceled, no item starts after it, and
// neither Finalize nor MarkFailed runs.
func testCancel(t *testing.T, distributed bool) {
	started := make(chan int, 100)
	f := &exportFake{items: 100, distributed: distributed, exportWait: func(ctx context.Context, item int) {
		started <- item
		<-ctx.Done() // a long export that honours cancellation
	}}
	m, _ := newExport(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := m.Run(ctx, "job-1", json.RawMessage(`{"jobId":"job-1"}`))
		done <- err
	}()
	for range 4 { // maxConcurrency
		<-started
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run() = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run() did not return after cancel")
	}
	if n := len(started); n != 0 {
		t.Errorf("%d more ExportItem calls started after cancel, want 0", n)
	}
	if len(f.finalize) != 0 || len(f.markFailed) != 0 {
		t.Errorf("Finalize %v, MarkFailed %v after cancel; want neither", f.finalize, f.markFailed)
	}
}

func TestExport_PayloadLimit(t *testing.T) {
	tests := []struct {
		name    string
		done    func(map[string]any) any
		wantErr string
	}{
		// 10,000 × {"done":true} is about 140 KB: under 256 KiB.
		{name: "SmallItemOutput", wantErr: ""},
		// On AWS the Map's result array counts even with ResultPath null;
		// echoing the input back (about 40 bytes × 10,000) would break the
		// limit, but ItemSucceeded's OutputPath null makes each result {}.
		{name: "EchoedItemOutput", done: func(in map[string]any) any {
			return map[string]any{"jobId": in["jobId"], "item": in["item"], "done": true}
		}, wantErr: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &exportFake{items: 10000, exportDone: tc.done}
			m, _ := newExport(t, f)
			_, err := m.Run(context.Background(), "job-1", json.RawMessage(`{"jobId":"job-1"}`))
			if got := errorName(err); got != tc.wantErr {
				t.Errorf("Run() = %v, want error name %q", err, tc.wantErr)
			}
			if len(f.exportCalls) != 10000 {
				t.Errorf("ExportItem ran for %d items, want 10000", len(f.exportCalls))
			}
		})
	}
}

func TestExport_ParseErrors(t *testing.T) {
	var def map[string]any
	if err := json.Unmarshal(statemachines.Export, &def); err != nil {
		t.Fatal(err)
	}
	withTimeout := func() []byte {
		var d map[string]any
		json.Unmarshal(statemachines.Export, &d)
		d["States"].(map[string]any)["Plan"].(map[string]any)["TimeoutSeconds"] = 60
		return encode(d)
	}
	f := &exportFake{}
	tests := []struct {
		name    string
		def     []byte
		edit    func(map[string]asl.Step)
		wantErr string
	}{
		{"MissingStep", statemachines.Export, func(s map[string]asl.Step) { delete(s, "MarkFailedFunctionArn") }, `no step "MarkFailedFunctionArn"`},
		{"UnreferencedStep", statemachines.Export, func(s map[string]asl.Step) { s["Extra"] = s["PlanFunctionArn"] }, `step "Extra" is never referenced`},
		{"UnknownField", withTimeout(), func(map[string]asl.Step) {}, `unsupported field "TimeoutSeconds"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			steps := f.steps(t)
			tc.edit(steps)
			_, err := asl.Parse(tc.def, steps)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestExport_Distributed10000: above the inline threshold Plan returns where
// the item list is, not the list; the Distributed Map reads it from S3 and
// runs every item once (with its cursor loop), while every state payload
// stays tiny. The same 10,000 items inline put about 50 KB into the state.
func TestExport_Distributed10000(t *testing.T) {
	f := &exportFake{items: 10000, loops: 1, distributed: true}
	m, s := newExport(t, f)
	out, err := m.Run(context.Background(), "job-1", json.RawMessage(`{"jobId":"job-1"}`))
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	f.payload(out)
	if f.reads != 1 {
		t.Errorf("the item list was read %d times, want once", f.reads)
	}
	if len(f.exportCalls) != f.items {
		t.Errorf("ExportItem ran for %d items, want %d", len(f.exportCalls), f.items)
	}
	for item := range f.items {
		want := []map[string]any{
			{"jobId": "job-1", "item": float64(item)},
			{"jobId": "job-1", "item": float64(item), "cursor": "c1", "done": false},
		}
		if diff := cmp.Diff(want, f.exportCalls[item]); diff != "" {
			t.Fatalf("ExportItem inputs for item %d mismatch (-want +got):\n%s", item, diff)
		}
	}
	if f.maxInFlight > 4 {
		t.Errorf("ExportItem ran %d at once, want at most maxConcurrency 4", f.maxInFlight)
	}
	if f.maxPayload >= 8<<10 {
		t.Errorf("largest state payload = %d bytes, want < 8 KB", f.maxPayload)
	}
	t.Logf("largest step payload: %d bytes", f.maxPayload)
	// ExportItemsDistributed has ResultPath null, so Finalize sees the
	// plan, not the ResultWriter's descriptor.
	wantFinalize := []map[string]any{{"jobId": "job-1"}}
	if diff := cmp.Diff(wantFinalize, f.finalize); diff != "" {
		t.Errorf("Finalize inputs mismatch (-want +got):\n%s", diff)
	}
	if len(f.markFailed) != 0 || len(s.delays) != 0 {
		t.Errorf("MarkFailed calls %v, sleeps %v; want none", f.markFailed, s.delays)
	}
	// The results went to the job's plan/ prefix, each item's {} (COMPACT).
	if len(f.puts.keys) != 2 {
		t.Fatalf("objects written %v, want the results and the manifest", f.puts.keys)
	}
	results, manifest := f.puts.keys[0], f.puts.keys[1]
	dir, ok := strings.CutSuffix(results, "SUCCEEDED_0.json")
	if !ok || !strings.HasPrefix(dir, itemsBucket+"/"+resultsPrefix) || manifest != dir+"manifest.json" {
		t.Errorf("objects written %v, want SUCCEEDED_0.json and manifest.json under %s/%s<map run id>/", f.puts.keys, itemsBucket, resultsPrefix)
	}
	if want := "[" + strings.Repeat("{},", f.items-1) + "{}]"; f.puts.bodies[results] != want {
		t.Errorf("SUCCEEDED_0.json has %d bytes, want %d items of {}", len(f.puts.bodies[results]), f.items)
	}

	inline := &exportFake{items: 10000}
	m, _ = newExport(t, inline)
	if _, err := m.Run(context.Background(), "job-1", json.RawMessage(`{"jobId":"job-1"}`)); err != nil {
		t.Fatalf("inline Run() = %v", err)
	}
	if inline.reads != 0 || inline.maxPayload < 40<<10 {
		t.Errorf("inline: %d reads, largest payload %d bytes; want no read and the ~50 KB item list in the state", inline.reads, inline.maxPayload)
	}
}

// In the Distributed Map a failed item fails the Map Run
// (States.ExceedToleratedFailureThreshold), and the Catch marks the job
// failed; retries inside the item still come first.
func TestExport_DistributedFailure(t *testing.T) {
	transient := &namedError{"Transient", "throttled"}
	f := &exportFake{items: 50, distributed: true, exportErr: func(item, call int) error {
		switch {
		case item == 3 && call <= 2:
			return transient
		case item == 17:
			return &namedError{"ExportError", "bad cursor"}
		}
		return nil
	}}
	m, _ := newExport(t, f)
	_, err := m.Run(context.Background(), "job-1", json.RawMessage(`{"jobId":"job-1"}`))
	if got := errorName(err); got != "ExportFailed" {
		t.Errorf("Run() = %v, want ExportFailed", err)
	}
	if len(f.markFailed) != 1 {
		t.Fatalf("MarkFailed calls = %v, want one", f.markFailed)
	}
	e := f.markFailed[0]["error"].(map[string]any)
	if e["Error"] != asl.ErrExceedToleratedFailureThreshold || !strings.Contains(e["Cause"].(string), "item 17 failed with ExportError: bad cursor") {
		t.Errorf("MarkFailed error = %v, want %s naming item 17", e, asl.ErrExceedToleratedFailureThreshold)
	}
	if len(f.finalize) != 0 {
		t.Errorf("Finalize ran %d times, want 0", len(f.finalize))
	}
	if n := len(f.exportCalls[17]); n != 1 {
		t.Errorf("item 17 ran %d times, want once (ExportError is not retried)", n)
	}
	if len(f.puts.keys) != 0 {
		t.Errorf("results written for a failed Map Run: %v", f.puts.keys)
	}
}

func TestExport_DistributedCancel(t *testing.T) { testCancel(t, true) }

// TestExport_ErrorModel: every Task of the definition retries whatever a
// Lambda invocation can fail with (crash, timeout, out of memory,
// throttling, the steps' Transient), and sends the steps' permanent
// ExportError straight to MarkFailed without a retry.
func TestExport_ErrorModel(t *testing.T) {
	retried := []string{
		"Lambda.ClientExecutionTimeoutException", "Runtime.ExitError", "Runtime.OutOfMemory", "Sandbox.Timedout",
		"Lambda.Unknown", "States.Timeout", "Transient", "Lambda.TooManyRequestsException", "Lambda.ServiceException",
		"States.TaskFailed",
	}
	tasks := []struct {
		name        string
		distributed bool
		inject      func(f *exportFake, fail func(call int) error)
		calls       func(f *exportFake) int
		// The error MarkFailed is given for a task's ExportError.
		wantMarked string
	}{
		{"Plan", false, func(f *exportFake, fail func(int) error) { f.planErr = fail },
			func(f *exportFake) int { return f.planCalls }, "ExportError"},
		{"ExportItem", false, func(f *exportFake, fail func(int) error) {
			f.exportErr = func(_, call int) error { return fail(call) }
		}, func(f *exportFake) int { return len(f.exportCalls[0]) }, "ExportError"},
		{"ExportChildItem", true, func(f *exportFake, fail func(int) error) {
			f.exportErr = func(_, call int) error { return fail(call) }
		}, func(f *exportFake) int { return len(f.exportCalls[0]) }, asl.ErrExceedToleratedFailureThreshold},
		{"Finalize", false, func(f *exportFake, fail func(int) error) { f.finalizeErr = fail },
			func(f *exportFake) int { return len(f.finalize) }, "ExportError"},
	}
	for _, task := range tasks {
		t.Run(task.name+"/ExportError", func(t *testing.T) {
			f := &exportFake{items: 1, distributed: task.distributed}
			task.inject(f, func(call int) error { return errIf(call == 1, &namedError{"ExportError", "bad request"}) })
			m, s := newExport(t, f)
			_, err := m.Run(context.Background(), "job-1", json.RawMessage(`{"jobId":"job-1"}`))
			if got := errorName(err); got != "ExportFailed" {
				t.Errorf("Run() = %v, want ExportFailed", err)
			}
			if n := task.calls(f); n != 1 || len(s.delays) != 0 {
				t.Errorf("%s called %d times, sleeps %v; want once, no retry", task.name, n, s.delays)
			}
			if len(f.markFailed) != 1 || f.markFailed[0]["error"].(map[string]any)["Error"] != task.wantMarked {
				t.Errorf("MarkFailed inputs %v, want one with %s", f.markFailed, task.wantMarked)
			}
		})
		for _, name := range retried {
			t.Run(task.name+"/"+name, func(t *testing.T) {
				f := &exportFake{items: 1, distributed: task.distributed}
				task.inject(f, func(call int) error { return errIf(call <= 2, &namedError{name, "failed"}) })
				m, s := newExport(t, f)
				out, err := m.Run(context.Background(), "job-1", json.RawMessage(`{"jobId":"job-1"}`))
				if err != nil || string(out) != `{"status":"completed"}` {
					t.Errorf("Run() = %s, %v; want the export completed", out, err)
				}
				if n := task.calls(f); n != 3 || len(f.markFailed) != 0 {
					t.Errorf("%s called %d times, MarkFailed %v; want 3 calls, no MarkFailed", task.name, n, f.markFailed)
				}
				if diff := cmp.Diff(jittered(1, 2), s.delays); diff != "" {
					t.Errorf("retry delays mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}

	// MarkFailed retries likewise, so the job does not stay in progress.
	t.Run("MarkFailed/Lambda.Unknown", func(t *testing.T) {
		f := &exportFake{items: 1, planErr: func(int) error { return &namedError{"ExportError", "bad request"} },
			markErr: func(call int) error { return errIf(call <= 2, &namedError{"Lambda.Unknown", "crashed"}) }}
		m, s := newExport(t, f)
		_, err := m.Run(context.Background(), "job-1", json.RawMessage(`{"jobId":"job-1"}`))
		if got := errorName(err); got != "ExportFailed" || len(f.markFailed) != 3 {
			t.Errorf("Run() = %v after %d MarkFailed calls, want ExportFailed after 3", err, len(f.markFailed))
		}
		if diff := cmp.Diff(jittered(1, 2), s.delays); diff != "" {
			t.Errorf("retry delays mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("MarkFailed/ExportError", func(t *testing.T) {
		f := &exportFake{items: 1, planErr: func(int) error { return &namedError{"ExportError", "bad request"} },
			markErr: func(int) error { return &namedError{"ExportError", "no such job"} }}
		m, _ := newExport(t, f)
		_, err := m.Run(context.Background(), "job-1", json.RawMessage(`{"jobId":"job-1"}`))
		if got := errorName(err); got != "ExportError" || len(f.markFailed) != 1 {
			t.Errorf("Run() = %v after %d MarkFailed calls, want ExportError after one", err, len(f.markFailed))
		}
	})
}

// A Map Run whose results cannot be written fails the Map with
// States.ResultWriterFailed, which the Catch sends to MarkFailed.
func TestExport_DistributedResultWriterFailed(t *testing.T) {
	f := &exportFake{items: 3, distributed: true, puts: &puts{fail: func(string) error { return errors.New("AccessDenied") }}}
	m, _ := newExport(t, f)
	_, err := m.Run(context.Background(), "job-1", json.RawMessage(`{"jobId":"job-1"}`))
	if got := errorName(err); got != "ExportFailed" {
		t.Errorf("Run() = %v, want ExportFailed", err)
	}
	if len(f.markFailed) != 1 || f.markFailed[0]["error"].(map[string]any)["Error"] != asl.ErrResultWriterFailed || len(f.finalize) != 0 {
		t.Errorf("MarkFailed %v, Finalize %v; want MarkFailed with %s and no Finalize", f.markFailed, f.finalize, asl.ErrResultWriterFailed)
	}
}
