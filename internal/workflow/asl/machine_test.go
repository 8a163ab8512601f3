package asl_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tranchehq/tranche/internal/workflow/asl"
)

// fixed is a step that records its inputs and returns out.
type fixed struct {
	mu     sync.Mutex
	out    string
	inputs []string
}

func (f *fixed) step(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inputs = append(f.inputs, string(in))
	return json.RawMessage(f.out), nil
}

// echo is a step that returns its input.
func echo(_ context.Context, in json.RawMessage) (json.RawMessage, error) { return in, nil }

// failing is a step that fails with errs[i] on call i, then returns {"ok":true}.
func failing(errs ...error) (asl.Step, *atomic.Int32) {
	var calls atomic.Int32
	return func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		if i := int(calls.Add(1)) - 1; i < len(errs) {
			return nil, errs[i]
		}
		return json.RawMessage(`{"ok":true}`), nil
	}, &calls
}

func repeat(err error, n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

func run(t *testing.T, def string, steps map[string]asl.Step, input string) (string, *sleepRecorder, error) {
	t.Helper()
	m, err := asl.Parse([]byte(def), steps)
	if err != nil {
		t.Fatalf("Parse(%s) = %v", def, err)
	}
	s := &sleepRecorder{}
	m.Sleep = s.sleep
	out, err := m.Run(context.Background(), "exec-1", json.RawMessage(input))
	return string(out), s, err
}

func TestRun_InputOutputProcessing(t *testing.T) {
	tests := []struct {
		name      string
		def       string
		input     string
		result    string // what the step T returns
		wantInput string // what the step T receives
		want      string
	}{{
		name: "AllFieldsInAWSOrder",
		def: `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","End":true,
			"InputPath":"$.a","Parameters":{"x.$":"$.b","name.$":"$$.Execution.Name","lit":"$.b"},
			"ResultPath":"$.a.res","OutputPath":"$.a"}}}`,
		input:     `{"a":{"b":1},"c":2}`,
		result:    `{"val":"v","junk":1}`,
		wantInput: `{"lit":"$.b","name":"exec-1","x":1}`,
		want:      `{"b":1,"res":{"junk":1,"val":"v"}}`,
	}, {
		name:      "DefaultsReplaceInputWithResult",
		def:       `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","End":true}}}`,
		input:     `{"a":1}`,
		result:    `[1,2]`,
		wantInput: `{"a":1}`,
		want:      `[1,2]`,
	}, {
		name:      "ResultPathNullKeepsInput",
		def:       `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","ResultPath":null,"End":true}}}`,
		input:     `{"a":1}`,
		result:    `{"big":"ignored"}`,
		wantInput: `{"a":1}`,
		want:      `{"a":1}`,
	}, {
		name:      "InputPathNullAndOutputPathNull",
		def:       `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","InputPath":null,"OutputPath":null,"End":true}}}`,
		input:     `{"a":1}`,
		result:    `{"r":1}`,
		wantInput: `{}`,
		want:      `{}`,
	}, {
		name:      "ResultPathRootSubfieldAndNumbersKept",
		def:       `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","ResultPath":"$.out","End":true}}}`,
		input:     `{"big":12345678901234567890,"html":"<&>"}`,
		result:    `1.50`,
		wantInput: `{"big":12345678901234567890,"html":"<&>"}`,
		want:      `{"big":12345678901234567890,"html":"<&>","out":1.50}`,
	}, {
		name: "TaskChain",
		def: `{"StartAt":"P1","States":{
			"P1":{"Type":"Task","Resource":"${X1}","ResultPath":"$.r","Next":"P2"},
			"P2":{"Type":"Task","Resource":"${Echo}","Parameters":{"y.$":"$.r.x","in.$":"$$.Execution.Input.a"},"Next":"T"},
			"T":{"Type":"Task","Resource":"${T}","ResultPath":"$.t","Next":"Done"},
			"Done":{"Type":"Succeed","InputPath":"$.t","OutputPath":"$.z"}}}`,
		input:     `{"a":"A"}`,
		result:    `{"z":"end"}`,
		wantInput: `{"in":"A","y":1}`,
		want:      `"end"`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fixed{out: tc.result}
			steps := map[string]asl.Step{"T": f.step}
			if strings.Contains(tc.def, "${X1}") {
				steps["X1"], steps["Echo"] = (&fixed{out: `{"x":1}`}).step, echo
			}
			got, _, err := run(t, tc.def, steps, tc.input)
			if err != nil {
				t.Fatalf("Run(%s) = %v", tc.input, err)
			}
			if got != tc.want {
				t.Errorf("Run(%s) = %s, want %s", tc.input, got, tc.want)
			}
			if diff := cmp.Diff([]string{tc.wantInput}, f.inputs); diff != "" {
				t.Errorf("step inputs mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRun_RuntimeErrors(t *testing.T) {
	tests := []struct {
		name, def, input, wantCause string
	}{
		{"InputPath", `{"StartAt":"S","States":{"S":{"Type":"Succeed","InputPath":"$.x"}}}`, `{}`, "InputPath"},
		{"OutputPath", `{"StartAt":"S","States":{"S":{"Type":"Succeed","OutputPath":"$.x"}}}`, `{}`, "OutputPath"},
		{"Parameters", `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","Parameters":{"a.$":"$.x"},"End":true}}}`, `{}`, "'a.$'"},
		{"Choice", `{"StartAt":"S","States":{"S":{"Type":"Choice","Choices":[{"Variable":"$.x","BooleanEquals":true,"Next":"E"}],"Default":"E"},"E":{"Type":"Succeed"}}}`, `{}`, "'$.x'"},
		{"ItemsPath", `{"StartAt":"S","States":{"S":{"Type":"Map","ItemsPath":"$.x","ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Succeed"}}},"End":true}}}`, `{"x":{}}`, "ItemsPath"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			steps := map[string]asl.Step{}
			if strings.Contains(tc.def, "${T}") {
				steps["T"] = echo
			}
			_, _, err := run(t, tc.def, steps, tc.input)
			var ee *asl.ExecutionError
			if !errors.As(err, &ee) || ee.Name != "States.Runtime" || !strings.Contains(ee.Cause, tc.wantCause) {
				t.Errorf("Run(%s) = %v, want States.Runtime mentioning %q", tc.input, err, tc.wantCause)
			}
		})
	}
}

func TestRun_Retry(t *testing.T) {
	e := &namedError{"E", "e failed"}
	task := func(retry string) string {
		return `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","End":true,"Retry":` + retry + `}}}`
	}
	tests := []struct {
		name       string
		retry      string
		errs       []error
		wantSleeps []time.Duration
		wantErr    string // "" for success
	}{
		{"Defaults", `[{"ErrorEquals":["E"]}]`, repeat(e, 3), seconds(1, 2, 4), ""},
		{"DefaultsExhausted", `[{"ErrorEquals":["E"]}]`, repeat(e, 4), seconds(1, 2, 4), "E"},
		{"MaxAttemptsZero", `[{"ErrorEquals":["E"],"MaxAttempts":0}]`, repeat(e, 1), nil, "E"},
		{"MaxDelay", `[{"ErrorEquals":["E"],"MaxAttempts":5,"MaxDelaySeconds":3}]`, repeat(e, 5), seconds(1, 2, 3, 3, 3), ""},
		{"Backoff", `[{"ErrorEquals":["E"],"IntervalSeconds":2,"BackoffRate":1.5}]`, repeat(e, 3),
			[]time.Duration{2 * time.Second, 3 * time.Second, 4500 * time.Millisecond}, ""},
		{"OtherName", `[{"ErrorEquals":["Other"]}]`, repeat(e, 1), nil, "E"},
		// Only the first matching retrier applies, even once exhausted.
		{"FirstMatchOnly", `[{"ErrorEquals":["E"],"MaxAttempts":1},{"ErrorEquals":["States.ALL"],"MaxAttempts":5}]`, repeat(e, 3), seconds(1), "E"},
		// MaxAttempts 0 matches and never retries: States.ALL after it
		// retries every other error (the AWS guide's "retries any error
		// except States.Timeout").
		{"MaxAttemptsZeroFirst", `[{"ErrorEquals":["E"],"MaxAttempts":0},{"ErrorEquals":["States.ALL"],"MaxAttempts":5}]`, repeat(e, 1), nil, "E"},
		{"MaxAttemptsZeroOthersRetried", `[{"ErrorEquals":["E"],"MaxAttempts":0},{"ErrorEquals":["States.ALL"],"MaxAttempts":5}]`,
			[]error{&namedError{"Lambda.Unknown", "crashed"}, &namedError{"Sandbox.Timedout", "timed out"}, errors.New("plain")}, seconds(1, 2, 4), ""},
		// Each retrier counts its own attempts.
		{"SeparateCounters", `[{"ErrorEquals":["A"],"MaxAttempts":1},{"ErrorEquals":["B"],"MaxAttempts":1,"IntervalSeconds":5}]`,
			[]error{&namedError{"A", "a"}, &namedError{"B", "b"}}, seconds(1, 5), ""},
		{"TaskFailedMatchesPlainErrors", `[{"ErrorEquals":["States.TaskFailed"],"MaxAttempts":1}]`, []error{errors.New("x")}, seconds(1), ""},
		{"TaskFailedMatchesNamedErrors", `[{"ErrorEquals":["States.TaskFailed"],"MaxAttempts":1}]`, repeat(e, 1), seconds(1), ""},
		{"TaskFailedSkipsTimeout", `[{"ErrorEquals":["States.TaskFailed"]}]`, []error{&namedError{"States.Timeout", "slow"}}, nil, "States.Timeout"},
		{"AllMatchesTimeout", `[{"ErrorEquals":["States.ALL"],"MaxAttempts":1}]`, []error{&namedError{"States.Timeout", "slow"}}, seconds(1), ""},
		{"WrappedNamedError", `[{"ErrorEquals":["E"],"MaxAttempts":1}]`, []error{fmt.Errorf("ctx: %w", e)}, seconds(1), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			step, calls := failing(tc.errs...)
			out, s, err := run(t, task(tc.retry), map[string]asl.Step{"T": step}, `{}`)
			if got := errorName(err); got != tc.wantErr {
				t.Errorf("Run() = %s, %v, want error name %q", out, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantSleeps, s.delays); diff != "" {
				t.Errorf("retry delays mismatch (-want +got):\n%s", diff)
			}
			if n := int(calls.Load()); n != len(tc.wantSleeps)+1 {
				t.Errorf("step called %d times, want %d (one more than the retries)", n, len(tc.wantSleeps)+1)
			}
		})
	}
}

// sequence is an injected Machine.Rand returning rs in turn.
func sequence(t *testing.T, rs ...float64) func() float64 {
	var i atomic.Int32
	return func() float64 {
		n := int(i.Add(1)) - 1
		if n >= len(rs) {
			t.Errorf("Rand called %d times, want at most %d", n+1, len(rs))
			return 0
		}
		return rs[n]
	}
}

// JitterStrategy FULL waits a random fraction of the interval that NONE
// would wait, MaxDelaySeconds capping that interval first.
func TestRun_RetryJitter(t *testing.T) {
	e := &namedError{"E", "e failed"}
	task := func(retry string) string {
		return `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","End":true,"Retry":[` + retry + `]}}}`
	}
	almostOne := math.Nextafter(1, 0)
	ms := func(ns ...float64) []time.Duration {
		var ds []time.Duration
		for _, n := range ns {
			ds = append(ds, time.Duration(n*float64(time.Millisecond)))
		}
		return ds
	}
	tests := []struct {
		name       string
		retry      string
		rand       []float64
		wantSleeps []time.Duration
	}{
		// Intervals 2, 4, 8→5, 16→5 seconds.
		{"Full", `{"ErrorEquals":["E"],"IntervalSeconds":2,"MaxAttempts":4,"MaxDelaySeconds":5,"JitterStrategy":"FULL"}`,
			[]float64{0.5, 0.25, 0, almostOne}, ms(1000, 1000, 0, 5000*almostOne)},
		// Rand is not consulted without FULL.
		{"None", `{"ErrorEquals":["E"],"MaxAttempts":2,"JitterStrategy":"NONE"}`, nil, seconds(1, 2)},
		{"Default", `{"ErrorEquals":["E"],"MaxAttempts":2}`, nil, seconds(1, 2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			step, _ := failing(repeat(e, len(tc.wantSleeps))...)
			m, err := asl.Parse([]byte(task(tc.retry)), map[string]asl.Step{"T": step})
			if err != nil {
				t.Fatal(err)
			}
			s := &sleepRecorder{}
			m.Sleep, m.Rand = s.sleep, sequence(t, tc.rand...)
			if _, err := m.Run(context.Background(), "exec-1", nil); err != nil {
				t.Fatalf("Run() = %v", err)
			}
			if diff := cmp.Diff(tc.wantSleeps, s.delays); diff != "" {
				t.Errorf("retry delays mismatch (-want +got):\n%s", diff)
			}
		})
	}

	// The default source: every wait is within [0, interval].
	step, _ := failing(repeat(e, 20)...)
	m, err := asl.Parse([]byte(task(`{"ErrorEquals":["E"],"MaxAttempts":20,"MaxDelaySeconds":8,"JitterStrategy":"FULL"}`)), map[string]asl.Step{"T": step})
	if err != nil {
		t.Fatal(err)
	}
	s := &sleepRecorder{}
	m.Sleep = s.sleep
	if _, err := m.Run(context.Background(), "exec-1", nil); err != nil {
		t.Fatalf("Run() = %v", err)
	}
	for i, d := range s.delays {
		if limit := time.Duration(min(1<<i, 8)) * time.Second; d < 0 || d > limit {
			t.Errorf("retry %d waited %v, want within [0, %v]", i+1, d, limit)
		}
	}
}

func TestRun_Catch(t *testing.T) {
	// def is a Task S whose Catchers go to H (a Succeed) and maybe F (a Fail).
	def := func(extra string) string {
		fail := ""
		if strings.Contains(extra, `"F"`) {
			fail = `,"F":{"Type":"Fail"}` // only when used: unreachable states are refused
		}
		return `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","End":true` + extra + `},
			"H":{"Type":"Succeed"}` + fail + `}}`
	}
	boom := func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		return nil, &namedError{"Boom", "it broke"}
	}
	ok := func(out string) asl.Step {
		return func(context.Context, json.RawMessage) (json.RawMessage, error) { return json.RawMessage(out), nil }
	}
	tests := []struct {
		name    string
		def     string
		step    asl.Step
		want    string
		wantErr string
	}{
		{"ResultPath", def(`,"Catch":[{"ErrorEquals":["Boom"],"ResultPath":"$.error","Next":"H"}]`), boom,
			`{"error":{"Cause":"it broke","Error":"Boom"},"in":1}`, ""},
		{"DefaultResultPath", def(`,"Catch":[{"ErrorEquals":["States.ALL"],"Next":"H"}]`), boom,
			`{"Cause":"it broke","Error":"Boom"}`, ""},
		{"ResultPathNull", def(`,"Catch":[{"ErrorEquals":["States.TaskFailed"],"ResultPath":null,"Next":"H"}]`), boom,
			`{"in":1}`, ""},
		{"FirstMatchingCatcher", def(`,"Catch":[{"ErrorEquals":["Other"],"Next":"F"},{"ErrorEquals":["Boom"],"ResultPath":"$.e","Next":"H"},{"ErrorEquals":["States.ALL"],"Next":"F"}]`), boom,
			`{"e":{"Cause":"it broke","Error":"Boom"},"in":1}`, ""},
		{"NotMatched", def(`,"Catch":[{"ErrorEquals":["Other"],"Next":"H"}]`), boom, "", "Boom"},
		// States.ALL does not catch States.Runtime ...
		{"RuntimeNotCaught", def(`,"Parameters":{"a.$":"$.missing"},"Catch":[{"ErrorEquals":["States.ALL"],"Next":"H"}]`), boom,
			"", "States.Runtime"},
		{"RuntimeFromInvalidResult", def(`,"Catch":[{"ErrorEquals":["States.ALL"],"Next":"H"}]`), ok(`{oops`),
			"", "States.Runtime"},
		// ... but ResultPathMatchFailure is an ordinary error.
		{"ResultPathMatchFailure", def(`,"ResultPath":"$.in.x","Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.e","Next":"H"}]`), ok(`1`),
			`{"e":{"Cause":"Unable to apply ResultPath '$.in.x' to the input of state 'S'.","Error":"States.ResultPathMatchFailure"},"in":1}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := run(t, tc.def, map[string]asl.Step{"T": tc.step}, `{"in":1}`)
			if errorName(err) != tc.wantErr || got != tc.want {
				t.Errorf("Run() = %s, %v, want %s, error name %q", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestRun_ChoiceAndFail(t *testing.T) {
	def := `{"StartAt":"C","States":{
		"C":{"Type":"Choice","Choices":[
			{"Variable":"$.n","NumericGreaterThan":10,"Next":"Big"},
			{"And":[{"Variable":"$.s","IsPresent":true},{"Variable":"$.s","StringEquals":"x"}],"Next":"X"}],
			"Default":"Other","OutputPath":"$.n"},
		"Big":{"Type":"Task","Resource":"${Big}","End":true},
		"X":{"Type":"Fail","Error":"GotX","Cause":"s was x"},
		"Other":{"Type":"Choice","Choices":[{"Variable":"$","NumericEquals":1,"Next":"Big"}]}}}`
	tests := []struct {
		input, want string
		wantErr     *asl.ExecutionError
	}{
		{`{"n":11}`, `"big"`, nil},
		{`{"n":1,"s":"x"}`, "", &asl.ExecutionError{Name: "GotX", Cause: "s was x"}},
		{`{"n":1}`, `"big"`, nil}, // Default, with the Choice's OutputPath applied
		{`{"n":2}`, "", &asl.ExecutionError{Name: "States.NoChoiceMatched", Cause: "No choice rule of state 'Other' matched and it has no Default."}},
	}
	big := &fixed{out: `"big"`}
	for _, tc := range tests {
		got, _, err := run(t, def, map[string]asl.Step{"Big": big.step}, tc.input)
		var ee *asl.ExecutionError
		errors.As(err, &ee)
		if got != tc.want || !cmp.Equal(ee, tc.wantErr) {
			t.Errorf("Run(%s) = %s, %v, want %s, %v", tc.input, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestRun_Map(t *testing.T) {
	tests := []struct {
		name, def, input, want string
	}{{
		name: "ItemSelector",
		def: `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.xs","MaxConcurrency":2,
			"ItemSelector":{"i.$":"$$.Map.Item.Index","v.$":"$$.Map.Item.Value","tag.$":"$.tag"},
			"ItemProcessor":{"ProcessorConfig":{"Mode":"INLINE"},"StartAt":"T","States":{"T":{"Type":"Task","Resource":"${T}","End":true}}},
			"ResultPath":"$.out","End":true}}}`,
		input: `{"xs":["a","b","c"],"tag":"t"}`,
		want:  `{"out":[{"i":0,"tag":"t","v":"a"},{"i":1,"tag":"t","v":"b"},{"i":2,"tag":"t","v":"c"}],"tag":"t","xs":["a","b","c"]}`,
	}, {
		name: "ItemProcessorOutputPath",
		def: `{"StartAt":"M","States":{"M":{"Type":"Map","ItemSelector":{"v.$":"$$.Map.Item.Value"},
			"ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"${T}","OutputPath":"$.v","End":true}}},"End":true}}}`,
		input: `[1,2,3]`,
		want:  `[1,2,3]`,
	}, {
		name: "NoItemSelectorAndEmpty",
		def: `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.xs",
			"ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"${T}","End":true}}},"End":true}}}`,
		input: `{"xs":[]}`,
		want:  `[]`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := run(t, tc.def, map[string]asl.Step{"T": echo}, tc.input)
			if err != nil || got != tc.want {
				t.Errorf("Run(%s) = %s, %v, want %s", tc.input, got, err, tc.want)
			}
		})
	}
}

func TestRun_MapFailureCancelsOthers(t *testing.T) {
	def := `{"StartAt":"M","States":{"M":{"Type":"Map","MaxConcurrency":0,
		"ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"${T}","End":true}}},"End":true}}}`
	var running, started atomic.Int32
	ready := make(chan struct{})
	step := func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		running.Add(1)
		defer running.Add(-1)
		if started.Add(1) == 3 {
			close(ready)
		}
		if string(in) == "2" {
			<-ready // fail once three iterations are running
			return nil, &namedError{"Bad", "item 2"}
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	m, err := asl.Parse([]byte(def), map[string]asl.Step{"T": step})
	if err != nil {
		t.Fatal(err)
	}
	m.MaxMapConcurrency = 3
	_, err = m.Run(context.Background(), "e", json.RawMessage(`[0,1,2,3,4,5,6,7]`))
	var ee *asl.ExecutionError
	if !errors.As(err, &ee) || *ee != (asl.ExecutionError{Name: "Bad", Cause: "item 2"}) {
		t.Errorf("Run() = %v, want Bad: item 2", err)
	}
	if n := running.Load(); n != 0 {
		t.Errorf("%d iterations still running after Run returned, want 0", n)
	}
	if n := started.Load(); n != 3 {
		t.Errorf("%d iterations started, want 3 (MaxMapConcurrency, none after the failure)", n)
	}
}

func TestRun_MapRetryRerunsAllItems(t *testing.T) {
	def := `{"StartAt":"M","States":{"M":{"Type":"Map","MaxConcurrency":1,
		"ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"${T}","End":true}}},
		"Retry":[{"ErrorEquals":["Flaky"],"MaxAttempts":1}],"End":true}}}`
	var calls atomic.Int32
	step := func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		if calls.Add(1) == 2 {
			return nil, &namedError{"Flaky", "once"}
		}
		return in, nil
	}
	got, s, err := run(t, def, map[string]asl.Step{"T": step}, `[1,2]`)
	if err != nil || got != `[1,2]` {
		t.Errorf("Run() = %s, %v, want [1,2]", got, err)
	}
	if n := calls.Load(); n != 4 || len(s.delays) != 1 {
		t.Errorf("step calls = %d, sleeps = %v, want 4 calls and one sleep", n, s.delays)
	}
}

func TestRun_PayloadLimit(t *testing.T) {
	big := `"` + strings.Repeat("x", 200) + `"`
	tests := []struct {
		name, def, input, result string
	}{
		{"ExecutionInput", `{"StartAt":"S","States":{"S":{"Type":"Succeed"}}}`, `{"a":` + big + `}`, ``},
		{"TaskResultEvenIfDiscarded", `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","ResultPath":null,"End":true}}}`, `{}`, big},
		// Input and result are each under the limit, the output is not.
		{"StateOutput", `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","ResultPath":"$.b","End":true}}}`,
			`{"a":"` + strings.Repeat("x", 90) + `"}`, `"` + strings.Repeat("y", 90) + `"`},
		{"AfterParameters", `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","Parameters":{"a.$":"$","b.$":"$","c.$":"$"},"End":true}}}`,
			`{"x":"` + strings.Repeat("y", 40) + `"}`, `{}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			steps := map[string]asl.Step{}
			if tc.result != "" {
				steps["T"] = (&fixed{out: tc.result}).step
			}
			m, err := asl.Parse([]byte(tc.def), steps)
			if err != nil {
				t.Fatal(err)
			}
			m.PayloadLimit = 150
			_, err = m.Run(context.Background(), "e", json.RawMessage(tc.input))
			if got := errorName(err); got != "States.DataLimitExceeded" {
				t.Errorf("Run() = %v, want States.DataLimitExceeded", err)
			}
		})
	}
}

func TestRun_CancelDuringRetry(t *testing.T) {
	def := `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","End":true,
		"Retry":[{"ErrorEquals":["States.ALL"]}],"Catch":[{"ErrorEquals":["States.ALL"],"Next":"H"}]},
		"H":{"Type":"Task","Resource":"${H}","End":true}}}`
	step, calls := failing(repeat(errors.New("down"), 10)...)
	handler := &fixed{out: `{}`}
	m, err := asl.Parse([]byte(def), map[string]asl.Step{"T": step, "H": handler.step})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Sleep = func(ctx context.Context, d time.Duration) error {
		cancel() // cancelled while waiting to retry
		<-ctx.Done()
		return ctx.Err()
	}
	if _, err := m.Run(ctx, "e", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Run() = %v, want context.Canceled", err)
	}
	if n := calls.Load(); n != 1 || len(handler.inputs) != 0 {
		t.Errorf("step calls = %d, Catch handler inputs = %v; want 1 call and no handler", n, handler.inputs)
	}
}

func TestRun_BadInput(t *testing.T) {
	m, err := asl.Parse([]byte(`{"StartAt":"S","States":{"S":{"Type":"Succeed"}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{`{`, `{} {}`} {
		var ee *asl.ExecutionError
		if _, err := m.Run(context.Background(), "e", json.RawMessage(in)); err == nil || errors.As(err, &ee) {
			t.Errorf("Run(%s) = %v, want an input error", in, err)
		}
	}
	if out, err := m.Run(context.Background(), "e", nil); err != nil || string(out) != `{}` {
		t.Errorf("Run(nil) = %s, %v, want {}", out, err)
	}
}

// The bounds of MaxDelaySeconds and both JitterStrategy values parse.
func TestParse_RetrierLimits(t *testing.T) {
	for _, retry := range []string{
		`{"ErrorEquals":["E"],"MaxDelaySeconds":1,"JitterStrategy":"FULL"}`,
		`{"ErrorEquals":["E"],"MaxDelaySeconds":31622400,"JitterStrategy":"NONE"}`,
		`{"ErrorEquals":["E"],"MaxAttempts":0},{"ErrorEquals":["States.ALL"],"MaxAttempts":99999999}`,
	} {
		def := `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","End":true,"Retry":[` + retry + `]}}}`
		if _, err := asl.Parse([]byte(def), map[string]asl.Step{"T": (&fixed{out: `{}`}).step}); err != nil {
			t.Errorf("Parse(Retry [%s]) = %v", retry, err)
		}
	}
}

func TestParse_Errors(t *testing.T) {
	succeed := `"E":{"Type":"Succeed"}`
	one := func(state string) string { return `{"StartAt":"S","States":{"S":` + state + `,` + succeed + `}}` }
	task := func(extra string) string { return one(`{"Type":"Task","Resource":"${T}","Next":"E"` + extra + `}`) }
	mapState := func(extra string) string {
		return one(`{"Type":"Map","Next":"E","ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Succeed"}}}` + extra + `}`)
	}
	tests := []struct {
		name, def, wantErr string
	}{
		{"NotJSON", `{`, "must be a JSON object"},
		{"TrailingData", `{"StartAt":"S","States":{"S":{"Type":"Succeed"}}} x`, "must be a JSON object"},
		{"TopLevelField", `{"StartAt":"S","TimeoutSeconds":5,"States":{"S":{"Type":"Succeed"}}}`, `unsupported field "TimeoutSeconds" in top level`},
		{"JSONata", `{"QueryLanguage":"JSONata","StartAt":"S","States":{"S":{"Type":"Succeed"}}}`, "only JSONPath"},
		{"NoStartAt", `{"States":{"S":{"Type":"Succeed"}}}`, "StartAt is required"},
		{"MissingStartAt", `{"StartAt":"X","States":{"S":{"Type":"Succeed"}}}`, `StartAt "X" names no state`},
		{"MissingNext", one(`{"Type":"Task","Resource":"${T}","Next":"Nope"}`), `transition to "Nope"`},
		{"MissingDefault", one(`{"Type":"Choice","Choices":[{"Variable":"$.a","IsNull":true,"Next":"E"}],"Default":"Nope"}`), `transition to "Nope"`},
		{"MissingCatchNext", task(`,"Catch":[{"ErrorEquals":["States.ALL"],"Next":"Nope"}]`), `transition to "Nope"`},
		{"Unreachable", `{"StartAt":"S","States":{"S":{"Type":"Succeed"},"Orphan":{"Type":"Succeed"}}}`, `"Orphan" is not reachable`},
		{"ParallelType", one(`{"Type":"Parallel","Branches":[],"Next":"E"}`), `unsupported state Type "Parallel"`},
		{"TaskTimeout", task(`,"TimeoutSeconds":30`), `unsupported field "TimeoutSeconds" in Task state`},
		{"TaskHeartbeat", task(`,"HeartbeatSeconds":30`), `unsupported field "HeartbeatSeconds"`},
		// Features no definition uses (see unsupported in parse.go).
		{"Pass", one(`{"Type":"Pass","Next":"E"}`), "unsupported by this runner: Pass state"},
		{"Wait", one(`{"Type":"Wait","Seconds":1,"Next":"E"}`), "unsupported by this runner: Wait state"},
		{"ResultSelector", task(`,"ResultSelector":{"a.$":"$.b"}`), "unsupported by this runner: ResultSelector"},
		{"MapResultSelector", mapState(`,"ResultSelector":{}`), "unsupported by this runner: ResultSelector"},
		{"MapIterator", one(`{"Type":"Map","Next":"E","Iterator":{"StartAt":"P","States":{"P":{"Type":"Succeed"}}}}`), "unsupported by this runner: Iterator"},
		{"MapParameters", mapState(`,"Parameters":{"v.$":"$$.Map.Item.Value"}`), "unsupported by this runner: Parameters in a Map"},
		{"NextAndEnd", task(`,"End":true`), "exactly one of Next and End"},
		{"NeitherNextNorEnd", one(`{"Type":"Task","Resource":"${T}"}`), "exactly one of Next and End"},
		{"EndFalse", `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"${T}","End":false}}}`, "End must be true"},
		{"ArnResource", one(`{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:f","Next":"E"}`), "only \"${Name}\" placeholders"},
		{"NoStep", one(`{"Type":"Task","Resource":"${Other}","Next":"E"}`), `no step "Other"`},
		{"BadInputPath", task(`,"InputPath":"$.a[*]"`), "InputPath"},
		{"ContextInputPath", task(`,"InputPath":"$$.Execution.Input"`), "context paths"},
		{"ResultPathIndex", task(`,"ResultPath":"$.a[0]"`), "array indexes"},
		{"Intrinsic", task(`,"Parameters":{"a.$":"States.UUID()"}`), "intrinsic functions"},
		{"ParametersNotObject", task(`,"Parameters":"x"`), "Parameters: must be a JSON object"},
		{"StatesAllNotAlone", task(`,"Retry":[{"ErrorEquals":["States.ALL","E"]}]`), "States.ALL must appear alone"},
		{"StatesAllNotLast", task(`,"Catch":[{"ErrorEquals":["States.ALL"],"Next":"E"},{"ErrorEquals":["E"],"Next":"E"}]`), "States.ALL must appear alone"},
		{"EmptyErrorEquals", task(`,"Retry":[{"ErrorEquals":[]}]`), "ErrorEquals must be a non-empty array"},
		{"BackoffBelowOne", task(`,"Retry":[{"ErrorEquals":["E"],"BackoffRate":0.5}]`), "BackoffRate"},
		{"IntervalZero", task(`,"Retry":[{"ErrorEquals":["E"],"IntervalSeconds":0}]`), "IntervalSeconds"},
		{"JitterUnknown", task(`,"Retry":[{"ErrorEquals":["E"],"JitterStrategy":"PARTIAL"}]`), "JitterStrategy must be FULL or NONE"},
		{"JitterLowercase", task(`,"Retry":[{"ErrorEquals":["E"],"JitterStrategy":"full"}]`), "JitterStrategy must be FULL or NONE"},
		{"JitterNotString", task(`,"Retry":[{"ErrorEquals":["E"],"JitterStrategy":true}]`), "JitterStrategy must be FULL or NONE"},
		{"MaxDelayZero", task(`,"Retry":[{"ErrorEquals":["E"],"MaxDelaySeconds":0}]`), "MaxDelaySeconds must be an integer from 1 to 31622400"},
		{"MaxDelayNegative", task(`,"Retry":[{"ErrorEquals":["E"],"MaxDelaySeconds":-5}]`), "MaxDelaySeconds must be an integer from 1 to 31622400"},
		{"MaxDelayTooLong", task(`,"Retry":[{"ErrorEquals":["E"],"MaxDelaySeconds":31622401}]`), "MaxDelaySeconds must be an integer from 1 to 31622400"},
		{"MaxDelayFraction", task(`,"Retry":[{"ErrorEquals":["E"],"MaxDelaySeconds":1.5}]`), "MaxDelaySeconds must be an integer"},
		{"MaxDelayString", task(`,"Retry":[{"ErrorEquals":["E"],"MaxDelaySeconds":"10"}]`), "MaxDelaySeconds must be an integer"},
		{"RetrierField", task(`,"Retry":[{"ErrorEquals":["E"],"Interval":1}]`), `unsupported field "Interval" in retrier`},
		{"CatcherOutputPath", task(`,"Catch":[{"ErrorEquals":["E"],"Next":"E","OutputPath":"$"}]`), `unsupported field "OutputPath" in catcher`},
		{"CatcherNoNext", task(`,"Catch":[{"ErrorEquals":["E"]}]`), "Next is required"},
		{"ChoiceNoChoices", one(`{"Type":"Choice","Choices":[]}`), "Choices must be a non-empty array"},
		{"ChoiceRule", one(`{"Type":"Choice","Choices":[{"Variable":"$.a","StringMatches":"*","Next":"E"}]}`), `Choices[0]: unsupported field "StringMatches"`},
		{"FailErrorPath", one(`{"Type":"Fail","ErrorPath":"$.e"}`), `unsupported field "ErrorPath"`},
		{"MapItemReaderInline", mapState(`,"ItemReader":{}`), "ItemReader needs ProcessorConfig Mode DISTRIBUTED"},
		{"MapDistributedNoExecutionType", one(`{"Type":"Map","Next":"E","ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED"},"StartAt":"P","States":{"P":{"Type":"Succeed"}}}}`), "needs ExecutionType STANDARD or EXPRESS"},
		{"MapUnknownMode", one(`{"Type":"Map","Next":"E","ItemProcessor":{"ProcessorConfig":{"Mode":"PARALLEL"},"StartAt":"P","States":{"P":{"Type":"Succeed"}}}}`), `Mode "PARALLEL": want INLINE or DISTRIBUTED`},
		{"MapExecutionType", one(`{"Type":"Map","Next":"E","ItemProcessor":{"ProcessorConfig":{"Mode":"INLINE","ExecutionType":"EXPRESS"},"StartAt":"P","States":{"P":{"Type":"Succeed"}}}}`), "ExecutionType is only for Mode DISTRIBUTED"},
		{"MapProcessorConfigField", one(`{"Type":"Map","Next":"E","ItemProcessor":{"ProcessorConfig":{"Mode":"INLINE","Label":"x"},"StartAt":"P","States":{"P":{"Type":"Succeed"}}}}`), `unsupported field "Label" in ProcessorConfig`},
		{"MapNoProcessor", one(`{"Type":"Map","Next":"E"}`), "ItemProcessor is required"},
		{"MapBothConcurrency", mapState(`,"MaxConcurrency":1,"MaxConcurrencyPath":"$.c"`), "exclusive"},
		{"MapToleratedFailureInline", mapState(`,"ToleratedFailurePercentage":0`), "ToleratedFailurePercentage needs ProcessorConfig Mode DISTRIBUTED"},
		{"MapResultWriterInline", mapState(`,"ResultWriter":{}`), "ResultWriter needs ProcessorConfig Mode DISTRIBUTED"},
		{"MapItemBatcher", mapState(`,"ItemBatcher":{}`), `unsupported field "ItemBatcher"`},
		{"MapContextOutsideSelector", one(`{"Type":"Map","Next":"E","ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Task","Resource":"${T}","Parameters":{"v.$":"$$.Map.Item.Value"},"End":true}}}}`), "only available in a Map state's ItemSelector"},
		{"MapNextOutside", one(`{"Type":"Map","Next":"E","ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Task","Resource":"${T}","Next":"E"}}}}`), `transition to "E"`},
		{"DuplicateNestedName", one(`{"Type":"Map","Next":"E","ItemProcessor":{"StartAt":"S","States":{"S":{"Type":"Succeed"}}}}`), "duplicate state name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			step := (&fixed{out: `{}`}).step
			steps := map[string]asl.Step{}
			if strings.Contains(tc.def, "${T}") {
				steps["T"] = step
			}
			_, err := asl.Parse([]byte(tc.def), steps)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%s) = %v, want error containing %q", tc.def, err, tc.wantErr)
			}
		})
	}
}
