package awstest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tranchehq/tranche/internal/workflow/asl"
)

// StepFunctions is a Step Functions endpoint (the awsJson1_0 calls
// StartExecution, StopExecution and DescribeExecution) that executes the
// state machine with Tranche's ASL runner, each task invoking its step as
// Lambda would (Invoke). Executions are named and unique as on AWS.
type StepFunctions struct {
	URL string
	// Sleep, if set, is the runner's wait for Retry intervals (a bench
	// may scale time down); nil waits as long as the definition says.
	Sleep func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex
	refuse  int // StartExecutions to refuse (RefuseStarts)
	machine *asl.Machine
	runs    map[string]*run
	wg      sync.WaitGroup
	s3      S3API
}

// S3API is the S3 calls a Distributed Map's ItemReader and ResultWriter
// make; *s3.Client implements it.
type S3API interface {
	GetObject(ctx context.Context, in *s3sdk.GetObjectInput, opts ...func(*s3sdk.Options)) (*s3sdk.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3sdk.PutObjectInput, opts ...func(*s3sdk.Options)) (*s3sdk.PutObjectOutput, error)
}

type run struct {
	cancel context.CancelFunc
	done   chan struct{}
	status string // RUNNING, SUCCEEDED, FAILED, ABORTED
	output json.RawMessage
	err    error
}

// NewStepFunctions starts the endpoint for the definition def. SetSteps
// must give it the steps before the first execution starts.
func NewStepFunctions(tb testing.TB) *StepFunctions {
	tb.Helper()
	f := &StepFunctions{runs: map[string]*run{}}
	srv := httptest.NewServer(f)
	f.URL = srv.URL
	tb.Cleanup(func() {
		f.mu.Lock()
		for _, r := range f.runs {
			r.cancel()
		}
		f.mu.Unlock()
		f.wg.Wait()
		srv.Close()
	})
	return f
}

// RefuseStarts makes the next n StartExecution calls fail with
// ExecutionLimitExceeded, as Step Functions does at its quota.
func (f *StepFunctions) RefuseStarts(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse = n
}

// SetS3 gives the endpoint the S3 client its ItemReaders read with and its
// ResultWriters write with: on AWS Step Functions reads a Distributed Map's
// items and writes its results itself (the state machine's role needs
// s3:GetObject and s3:PutObject), no Lambda is involved.
func (f *StepFunctions) SetS3(client S3API) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s3 = client
}

// SetSteps parses def with the steps behind its ${...FunctionArn}s. Unless
// steps has its own, the ItemReader's s3:getObject reads and the
// ResultWriter's s3:putObject writes with the client SetS3 gave.
func (f *StepFunctions) SetSteps(def []byte, steps map[string]asl.Step) error {
	defaults := map[string]asl.Step{asl.ResourceS3GetObject: f.getObject, asl.ResourceS3PutObject: f.putObject}
	steps = maps.Clone(steps)
	if steps == nil {
		steps = map[string]asl.Step{}
	}
	for k, step := range defaults {
		if steps[k] == nil {
			steps[k] = step
		}
	}
	m, err := asl.Parse(def, steps)
	if err != nil {
		return err
	}
	m.Sleep = f.Sleep
	f.mu.Lock()
	f.machine = m
	f.mu.Unlock()
	return nil
}

// getObject is the ItemReader's s3:getObject: the object's bytes.
func (f *StepFunctions) getObject(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var in struct{ Bucket, Key string }
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	f.mu.Lock()
	client := f.s3
	f.mu.Unlock()
	if client == nil {
		return nil, errors.New("awstest: no S3 client for the ItemReader (StepFunctions.SetS3)")
	}
	out, err := client.GetObject(ctx, &s3sdk.GetObjectInput{Bucket: &in.Bucket, Key: &in.Key})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// putObject is the ResultWriter's s3:putObject: Body is the object.
func (f *StepFunctions) putObject(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var in struct{ Bucket, Key, Body string }
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	f.mu.Lock()
	client := f.s3
	f.mu.Unlock()
	if client == nil {
		return nil, errors.New("awstest: no S3 client for the ResultWriter (StepFunctions.SetS3)")
	}
	if _, err := client.PutObject(ctx, &s3sdk.PutObjectInput{Bucket: &in.Bucket, Key: &in.Key, Body: strings.NewReader(in.Body)}); err != nil {
		return nil, err
	}
	return json.RawMessage(`{}`), nil
}

// Wait blocks until the execution named name ends and returns its status
// and error.
func (f *StepFunctions) Wait(ctx context.Context, name string) (string, error) {
	f.mu.Lock()
	r, ok := f.runs[name]
	f.mu.Unlock()
	if !ok {
		return "", errors.New("no execution " + name)
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return r.status, r.err
}

// Executions returns the names of the executions started.
func (f *StepFunctions) Executions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for n := range f.runs {
		names = append(names, n)
	}
	return names
}

func (f *StepFunctions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var in map[string]string
	_ = json.Unmarshal(raw, &in)
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(typ, msg string) {
		reply(400, map[string]string{"__type": "com.amazonaws.states#" + typ, "message": msg})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AWSStepFunctions.") {
	case "StartExecution":
		if f.refuse > 0 {
			// The account's open-execution quota: a 400 the SDK does
			// not retry (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html).
			f.refuse--
			fail("ExecutionLimitExceeded", "The maximum number of running executions has been reached.")
			return
		}
		name := in["name"]
		if _, ok := f.runs[name]; ok {
			fail("ExecutionAlreadyExists", "Execution Already Exists: "+name)
			return
		}
		if f.machine == nil {
			fail("StateMachineDoesNotExist", "no steps set")
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		ex := &run{cancel: cancel, done: make(chan struct{}), status: "RUNNING"}
		f.runs[name] = ex
		f.wg.Add(1)
		m := f.machine
		go func() {
			defer f.wg.Done()
			defer close(ex.done)
			out, err := m.Run(ctx, name, json.RawMessage(in["input"]))
			f.mu.Lock()
			defer f.mu.Unlock()
			switch {
			case ex.status == "ABORTED":
			case err != nil:
				ex.status, ex.err = "FAILED", err
			default:
				ex.status, ex.output = "SUCCEEDED", out
			}
		}()
		arn := strings.Replace(in["stateMachineArn"], ":stateMachine:", ":execution:", 1) + ":" + name
		reply(200, map[string]any{"executionArn": arn, "startDate": 1.7e9})
	case "StopExecution":
		arn := in["executionArn"]
		name := arn[strings.LastIndex(arn, ":")+1:]
		ex, ok := f.runs[name]
		if !ok {
			fail("ExecutionDoesNotExist", "Execution Does Not Exist: "+arn)
			return
		}
		if ex.status == "RUNNING" {
			ex.status = "ABORTED"
			ex.cancel()
		}
		reply(200, map[string]any{"stopDate": 1.7e9})
	case "DescribeExecution":
		arn := in["executionArn"]
		ex, ok := f.runs[arn[strings.LastIndex(arn, ":")+1:]]
		if !ok {
			fail("ExecutionDoesNotExist", "Execution Does Not Exist: "+arn)
			return
		}
		// The status the adapters read: RUNNING until the execution
		// ends, ABORTED once stopped (StopExecution, or from outside).
		reply(200, map[string]any{"executionArn": arn, "status": ex.status, "startDate": 1.7e9})
	default:
		fail("UnknownOperationException", "unsupported: "+r.Header.Get("X-Amz-Target"))
	}
}

// Invoke adapts a Lambda task handler to an ASL step the way Step Functions
// invokes a Lambda: the input and output cross as JSON, and an error comes
// back as its errorType and errorMessage (which Retry and Catch match).
func Invoke[I, O any](fn func(context.Context, I) (O, error)) asl.Step {
	return func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
		var in I
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, &asl.ExecutionError{Name: "Lambda.Unknown", Cause: err.Error()}
		}
		out, err := fn(ctx, in)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, err
			}
			var ie messages.InvokeResponse_Error
			if errors.As(err, &ie) {
				return nil, &asl.ExecutionError{Name: ie.Type, Cause: ie.Message}
			}
			return nil, &asl.ExecutionError{Name: "Error", Cause: err.Error()}
		}
		return json.Marshal(out)
	}
}

// Secrets is a Secrets Manager endpoint serving GetSecretValue for the
// secrets given (name or ARN → value).
func Secrets(tb testing.TB, values map[string]string) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in map[string]string
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		v, ok := values[in["SecretId"]]
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" || !ok || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
			w.WriteHeader(400)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": "ResourceNotFoundException", "message": "Secrets Manager can't find the specified secret."})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"ARN": in["SecretId"], "SecretString": v})
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}
