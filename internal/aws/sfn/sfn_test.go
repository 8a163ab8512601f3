package sfn_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	sfnsdk "github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/sfn"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/workflow/asl"
)

const machine = "arn:aws:states:us-east-1:123456789012:stateMachine:tranche-export"

// request is one call the fake Step Functions endpoint received.
type request struct {
	Target string
	Body   map[string]any
}

// fakeSFN answers the awsJson1_0 protocol: it records each call and
// replies with the status and body reply returns for it.
type fakeSFN struct {
	mu       sync.Mutex
	requests []request
	reply    func(target string) (int, string)
}

func (f *fakeSFN) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	target := r.Header.Get("X-Amz-Target")
	f.mu.Lock()
	f.requests = append(f.requests, request{Target: target, Body: body})
	f.mu.Unlock()
	status, out := f.reply(target)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(status)
	io.WriteString(w, out)
}

func newWorkflow(t *testing.T, reply func(target string) (int, string)) (*sfn.Workflow, *fakeSFN) {
	t.Helper()
	f := &fakeSFN{reply: reply}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	client := sfnsdk.NewFromConfig(awstest.Config(), func(o *sfnsdk.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.RetryMaxAttempts = 1
	})
	w, err := sfn.New(client, machine)
	if err != nil {
		t.Fatal(err)
	}
	return w, f
}

func ok(string) (int, string) {
	return 200, `{"executionArn":"arn:aws:states:us-east-1:123456789012:execution:tranche-export:job1","startDate":1.7e9,"stopDate":1.7e9}`
}

func awsError(name string) func(string) (int, string) {
	return func(string) (int, string) {
		return 400, `{"__type":"com.amazonaws.states#` + name + `","message":"m"}`
	}
}

func TestStartStop(t *testing.T) {
	w, f := newWorkflow(t, ok)
	ctx := context.Background()
	if err := w.Start(ctx, "0123abcd"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := w.Stop(ctx, "0123abcd"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	want := []request{
		{Target: "AWSStepFunctions.StartExecution", Body: map[string]any{
			"stateMachineArn": machine, "name": "0123abcd", "input": `{"jobId":"0123abcd"}`,
		}},
		{Target: "AWSStepFunctions.StopExecution", Body: map[string]any{
			"executionArn": "arn:aws:states:us-east-1:123456789012:execution:tranche-export:0123abcd",
			"error":        "Cancelled", "cause": "The client deleted the export job.",
		}},
	}
	if diff := cmp.Diff(want, f.requests); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		reply     func(string) (int, string)
		wantStart string // error code, "" for success
		wantStop  string
		// wantRunning is Running's error code; an execution that does
		// not exist is not running, without an error.
		wantRunning string
	}{
		// A retried kick-off or recovery: the job's execution exists.
		{"AlreadyExists", awsError("ExecutionAlreadyExists"), "", bulk.EINTERNAL, bulk.EINTERNAL},
		{"DoesNotExist", awsError("ExecutionDoesNotExist"), bulk.EINTERNAL, "", ""},
		{"Limit", awsError("ExecutionLimitExceeded"), bulk.ETRANSIENT, bulk.ETRANSIENT, bulk.ETRANSIENT},
		{"Throttled", awsError("ThrottlingException"), bulk.ETRANSIENT, bulk.ETRANSIENT, bulk.ETRANSIENT},
		{"ServerError", func(string) (int, string) { return 500, `{"__type":"InternalFailure"}` }, bulk.ETRANSIENT, bulk.ETRANSIENT, bulk.ETRANSIENT},
		{"AccessDenied", awsError("AccessDeniedException"), bulk.EINTERNAL, bulk.EINTERNAL, bulk.EINTERNAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := newWorkflow(t, tc.reply)
			if err := w.Start(ctx, "job1"); bulk.ErrorCode(err) != tc.wantStart {
				t.Errorf("Start error = %v, want code %q", err, tc.wantStart)
			}
			if err := w.Stop(ctx, "job1"); bulk.ErrorCode(err) != tc.wantStop {
				t.Errorf("Stop error = %v, want code %q", err, tc.wantStop)
			}
			running, err := w.Running(ctx, "job1")
			if bulk.ErrorCode(err) != tc.wantRunning || running {
				t.Errorf("Running = %v, %v; want false with code %q", running, err, tc.wantRunning)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	w, f := newWorkflow(t, ok)
	ctx := context.Background()
	for _, id := range []string{"", "a b", "x/../y", string(make([]byte, 81))} {
		if err := w.Start(ctx, id); bulk.ErrorCode(err) != bulk.EINVALID {
			t.Errorf("Start(%q) error = %v, want %s", id, err, bulk.EINVALID)
		}
		if err := w.Stop(ctx, id); err != nil {
			t.Errorf("Stop(%q) = %v, want nil (no such execution)", id, err)
		}
		if running, err := w.Running(ctx, id); running || err != nil {
			t.Errorf("Running(%q) = %v, %v; want false (no such execution)", id, running, err)
		}
	}
	if len(f.requests) != 0 {
		t.Errorf("invalid ids sent %d requests, want none", len(f.requests))
	}
	if _, err := sfn.New(nil, "arn:aws:lambda:us-east-1:1:function:x"); bulk.ErrorCode(err) != bulk.EINVALID {
		t.Errorf("New(a function ARN) error = %v, want %s", err, bulk.EINVALID)
	}
}

// TestRunning: Running describes the job's execution by its ARN, and only
// an execution that has ended is not running.
func TestRunning(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		status string
		want   bool
	}{
		{"RUNNING", true},
		{"SUCCEEDED", false},
		{"FAILED", false},
		{"TIMED_OUT", false},
		{"ABORTED", false},
		// A failed execution being redriven may run again.
		{"PENDING_REDRIVE", true},
	} {
		t.Run(tc.status, func(t *testing.T) {
			w, f := newWorkflow(t, func(string) (int, string) {
				return 200, `{"executionArn":"arn:aws:states:us-east-1:123456789012:execution:tranche-export:0123abcd",` +
					`"stateMachineArn":"` + machine + `","status":"` + tc.status + `","startDate":1.7e9}`
			})
			got, err := w.Running(ctx, "0123abcd")
			if err != nil || got != tc.want {
				t.Errorf("Running() = %v, %v; want %v", got, err, tc.want)
			}
			want := []request{{Target: "AWSStepFunctions.DescribeExecution", Body: map[string]any{
				"executionArn": "arn:aws:states:us-east-1:123456789012:execution:tranche-export:0123abcd",
			}}}
			if diff := cmp.Diff(want, f.requests); diff != "" {
				t.Errorf("requests mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunningEmulator: the Step Functions emulator the serverless bench
// runs on answers DescribeExecution as the adapter reads it.
func TestRunningEmulator(t *testing.T) {
	ctx := context.Background()
	emu := awstest.NewStepFunctions(t)
	block := asl.Step(func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	def := []byte(`{"StartAt":"Wait","States":{"Wait":{"Type":"Task","Resource":"${Block}","End":true}}}`)
	if err := emu.SetSteps(def, map[string]asl.Step{"Block": block}); err != nil {
		t.Fatal(err)
	}
	client := sfnsdk.NewFromConfig(awstest.Config(), func(o *sfnsdk.Options) {
		o.BaseEndpoint = aws.String(emu.URL)
		o.RetryMaxAttempts = 1
	})
	w, err := sfn.New(client, machine)
	if err != nil {
		t.Fatal(err)
	}
	if running, err := w.Running(ctx, "job1"); running || err != nil {
		t.Errorf("Running(never started) = %v, %v; want false", running, err)
	}
	if err := w.Start(ctx, "job1"); err != nil {
		t.Fatal(err)
	}
	if running, err := w.Running(ctx, "job1"); !running || err != nil {
		t.Errorf("Running(started) = %v, %v; want true", running, err)
	}
	if err := w.Stop(ctx, "job1"); err != nil {
		t.Fatal(err)
	}
	if status, _ := emu.Wait(ctx, "job1"); status != "ABORTED" {
		t.Errorf("stopped execution status = %s, want ABORTED", status)
	}
	if running, err := w.Running(ctx, "job1"); running || err != nil {
		t.Errorf("Running(aborted) = %v, %v; want false", running, err)
	}
}
