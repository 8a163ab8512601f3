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
	itemsBucket = "tranche-bucket"
	itemsKey    = "exports/job-1/plan/items.json"
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
			if name != asl.ResourceS3GetObject { // the item list is read by Step Functions, not a state
				f.payload(in)
			}
			res, err := step(ctx, in)
			if name != asl.ResourceS3GetObject {
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
				return encode(map[string]any{"itemsBucket": itemsBucket, "itemsKey": itemsKey, "maxConcurrency": 4}), nil
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
			defer f.mu.Unlock()
			f.markFailed = append(f.markFailed, decodeInput(t, in))
			return json.RawMessage(`{}`), nil
		},
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
	m, err := asl.Parse(statemachines.Export, f.measured(f.steps(t)))
	if err != nil {
		t.Fatalf("Parse(export.asl.json) = %v", err)
	}
	s := &sleepRecorder{}
	m.Sleep = s.sleep
	return m, s
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
		wantSleeps: seconds(1, 2, 4),
	}, {
		name:       "FinalizeRecovers",
		fake:       &exportFake{items: 2, finalizeErr: func(call int) error { return errIf(call == 1, transient) }},
		wantSleeps: seconds(1),
	}, {
		// Plan allows MaxAttempts 5: six failures exhaust it and the Catch marks the job failed.
		name:       "PlanExhausted",
		fake:       &exportFake{items: 2, planErr: func(call int) error { return transient }},
		wantSleeps: seconds(1, 2, 4, 8, 16),
		wantErr:    "ExportFailed",
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
		name:      "PlanPlainError",
		fake:      &exportFake{items: 3, planErr: func(int) error { return errors.New("index unavailable") }},
		wantError: map[string]any{"Error": "States.TaskFailed", "Cause": "index unavailable"},
	}, {
		name: "ExportItemNamedError",
		fake: &exportFake{items: 20, loops: 1, exportErr: func(item, call int) error {
			return errIf(item == 7 && call == 2, &namedError{"Permanent", "bad cursor"})
		}},
		wantError: map[string]any{"Error": "Permanent", "Cause": "bad cursor"},
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
	wantFinalize := []map[string]any{{"jobId": "job-1"}}
	if diff := cmp.Diff(wantFinalize, f.finalize); diff != "" {
		t.Errorf("Finalize inputs mismatch (-want +got):\n%s", diff)
	}
	if len(f.markFailed) != 0 || len(s.delays) != 0 {
		t.Errorf("MarkFailed calls %v, sleeps %v; want none", f.markFailed, s.delays)
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
			return &namedError{"Permanent", "bad cursor"}
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
	if e["Error"] != asl.ErrExceedToleratedFailureThreshold || !strings.Contains(e["Cause"].(string), "item 17 failed with Permanent: bad cursor") {
		t.Errorf("MarkFailed error = %v, want %s naming item 17", e, asl.ErrExceedToleratedFailureThreshold)
	}
	if len(f.finalize) != 0 {
		t.Errorf("Finalize ran %d times, want 0", len(f.finalize))
	}
}

func TestExport_DistributedCancel(t *testing.T) { testCancel(t, true) }
