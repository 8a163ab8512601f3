// Package workflow binds the export steps to statemachines/export.asl.json:
// the typed step functions that are Lambda handlers on AWS, and the local
// runner that executes the same definition in-process (style.md rule 6).
//
// The local runner (Local) is the definition as the asl package executes
// it, which the Developer Guide's worked examples check
// (asl/testdata/aws_examples). It models the payload quota (256 KiB,
// States.DataLimitExceeded), the inline Map's 40 concurrent iterations, and
// the names under which the steps' errors reach Retry and Catch. It does
// not model, per https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
// unless noted:
//   - the execution history and its quota of 25,000 events: nothing is
//     recorded, and a run that would fail on AWS for its length runs here
//     (ChooseMap's Distributed Map keeps long jobs under it);
//   - the time limits: an execution's year, EXPRESS children's 5 minutes
//     and Lambda's function timeout; TimeoutSeconds is refused by asl.Parse;
//   - execution names: Step Functions refuses a name used in the last 90
//     days (ExecutionAlreadyExists, which sfn.Workflow relies on), Local only
//     one still running; and nothing survives a restart (Service.Recover
//     starts unfinished jobs again);
//   - IAM: the state machine role's lambda:InvokeFunction, s3:GetObject and
//     s3:PutObject are not checked, so States.Permissions never occurs;
//   - Lambda: its own error names never occur here (Lambda.ServiceException,
//     Lambda.SdkClientException, Lambda.TooManyRequestsException, and
//     Lambda.Unknown or Sandbox.Timedout for a crashed, killed or timed-out
//     function, per https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html),
//     a step's panic is States.TaskFailed, and a Cause is the error's text
//     where Lambda's is its {"errorMessage", "errorType"} payload;
//   - a stopped execution's status: Stop is StopExecution (the execution
//     ends, no Catch runs), but nothing records ABORTED or its error and
//     cause (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StopExecution.html);
//     Running just turns false.
package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/workflow/asl"
	"github.com/tranchehq/tranche/statemachines"
)

// JobInput is the execution input and the Plan and Finalize input.
type JobInput struct {
	JobID string `json:"jobId"`
}

// FailInput is MarkFailed's input: the job and the Catch's error object.
type FailInput struct {
	JobID string `json:"jobId"`
	Error struct {
		Error string `json:"Error"`
		Cause string `json:"Cause"`
	} `json:"error"`
}

// Steps are the typed task handlers. On AWS each is a Lambda
// (lambda.Start(steps.Plan)); locally the runner calls them directly.
type Steps struct{ Svc *export.Service }

// Plan is the Plan state.
func (s Steps) Plan(ctx context.Context, in JobInput) (export.PlanOutput, error) {
	out, err := s.Svc.Plan(ctx, in.JobID)
	return out, named(err)
}

// ExportItem is the ExportItem state inside the Map.
func (s Steps) ExportItem(ctx context.Context, in export.ItemInput) (export.ItemOutput, error) {
	out, err := s.Svc.ExportItem(ctx, in)
	return out, named(err)
}

// Finalize is the Finalize state.
func (s Steps) Finalize(ctx context.Context, in JobInput) (JobInput, error) {
	return in, named(s.Svc.Finalize(ctx, in.JobID))
}

// MarkFailed is the MarkFailed state (the Catch target).
func (s Steps) MarkFailed(ctx context.Context, in FailInput) (JobInput, error) {
	if err := ctx.Err(); err != nil {
		// Shutting down or cancelled, not failed: a restart resumes the job.
		return JobInput{}, err
	}
	return JobInput{JobID: in.JobID}, named(s.Svc.MarkFailed(ctx, in.JobID, in.Error.Error, in.Error.Cause))
}

// Registry maps the definition's ${...FunctionArn} substitutions to steps,
// each failing under the error name its Lambda would (see ErrorName), and
// the Distributed Map's ItemReader (s3:getObject) and ResultWriter
// (s3:putObject), which Step Functions itself does on AWS, to the service's
// ItemLists.
func (s Steps) Registry() map[string]asl.Step {
	return map[string]asl.Step{
		"PlanFunctionArn":       asLambda(asl.Typed(s.Plan)),
		"ExportItemFunctionArn": asLambda(asl.Typed(s.ExportItem)),
		"FinalizeFunctionArn":   asLambda(asl.Typed(s.Finalize)),
		"MarkFailedFunctionArn": asLambda(asl.Typed(s.MarkFailed)),
		asl.ResourceS3GetObject: GetObject(s.Svc.ItemLists),
		asl.ResourceS3PutObject: PutObject(s.Svc.ItemLists),
	}
}

// ErrorName is the error name under which a step's error reaches the
// definition's Retry and Catch: bulk.StepErrorName, as the Lambda host
// (internal/aws/handler) names it, so a step stopped by its context is
// Transient on both hosts rather than States.TaskFailed here.
func ErrorName(err error) string { return bulk.StepErrorName(err) }

// asLambda names a step's errors with ErrorName, as its Lambda does.
func asLambda(step asl.Step) asl.Step { return asl.Named(step, ErrorName) }

// PutObjectInput is the ResultWriter's s3:putObject request.
type PutObjectInput struct {
	Bucket string `json:"Bucket"`
	Key    string `json:"Key"`
	Body   string `json:"Body"`
}

// PutObject is the ResultWriter's s3:putObject over an object store: it
// writes Body to the object Key of Bucket, which must be under the item
// lists' prefix (the job's plan/results/).
func PutObject(lists export.ItemLists) asl.Step {
	return func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
		var in PutObjectInput
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, fmt.Errorf("decode s3:putObject input: %w", err)
		}
		key, ok := strings.CutPrefix(in.Key, lists.Prefix)
		if in.Bucket != lists.Bucket || !ok {
			return nil, fmt.Errorf("AccessDenied: s3://%s/%s is not under the results prefix (want s3://%s/%s...)", in.Bucket, in.Key, lists.Bucket, lists.Prefix)
		}
		w, err := lists.Store.Create(ctx, key)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, in.Body); err != nil {
			_ = w.Abort()
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return json.RawMessage(`{}`), nil
	}
}

// GetObjectInput is the ItemReader's s3:getObject request.
type GetObjectInput struct {
	Bucket string `json:"Bucket"`
	Key    string `json:"Key"`
}

// GetObject is the ItemReader's s3:getObject over an object store: it
// returns the bytes of the object Key of Bucket, which must be the one
// lists names, under its Prefix.
func GetObject(lists export.ItemLists) asl.Step {
	return func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
		var in GetObjectInput
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, fmt.Errorf("decode s3:getObject input: %w", err)
		}
		key, ok := strings.CutPrefix(in.Key, lists.Prefix)
		if in.Bucket != lists.Bucket || !ok {
			return nil, fmt.Errorf("NoSuchKey: s3://%s/%s is not an item list (want s3://%s/%s...)", in.Bucket, in.Key, lists.Bucket, lists.Prefix)
		}
		obj, err := lists.Store.Open(ctx, key)
		if err != nil {
			return nil, err
		}
		defer obj.Close()
		return io.ReadAll(obj)
	}
}

// stepError names a step error for Retry/Catch: transient store errors are
// "Transient" and retried by the definition; everything else is
// "ExportError", which the definition's Catch sends to MarkFailed.
type stepError struct{ err error }

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// ErrorName is the ASL error name.
func (e *stepError) ErrorName() string {
	if bulk.ErrorCode(e.err) == bulk.ETRANSIENT {
		return "Transient"
	}
	// Not States.TaskFailed: the States. prefix is reserved for Step
	// Functions' own errors. Catch [States.ALL] matches this name.
	return "ExportError"
}

func named(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	return &stepError{err}
}

// Local runs executions in-process with the ASL interpreter. It implements
// bulk.Workflow.
type Local struct {
	machine *asl.Machine
	logger  *slog.Logger

	mu      sync.Mutex
	running map[string]*execution
	closed  bool
	wg      sync.WaitGroup
}

type execution struct {
	cancel context.CancelFunc
	done   chan struct{}
}

var _ bulk.Workflow = (*Local)(nil)

// NewLocal parses the embedded definition against steps.
func NewLocal(steps Steps, logger *slog.Logger) (*Local, error) {
	m, err := asl.Parse(statemachines.Export, steps.Registry())
	if err != nil {
		return nil, fmt.Errorf("statemachines/export.asl.json: %w", err)
	}
	return &Local{machine: m, logger: logger, running: map[string]*execution{}}, nil
}

// Start runs the execution named jobID in the background. It is a no-op if
// that execution is already running.
func (l *Local) Start(_ context.Context, jobID string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return bulk.Errorf(bulk.ETRANSIENT, "The server is shutting down.")
	}
	if _, ok := l.running[jobID]; ok {
		return nil
	}
	// Detached from the request: the export outlives the kick-off call.
	ctx, cancel := context.WithCancel(context.Background())
	ex := &execution{cancel: cancel, done: make(chan struct{})}
	l.running[jobID] = ex
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(ex.done)
		defer cancel()
		input, _ := json.Marshal(JobInput{JobID: jobID})
		_, err := l.machine.Run(ctx, jobID, input)
		l.mu.Lock()
		delete(l.running, jobID)
		l.mu.Unlock()
		if err != nil && !errors.Is(err, context.Canceled) {
			l.logger.Error("execution ended with an error", "job", jobID, "err", err)
		}
	}()
	return nil
}

// Stop cancels a running execution and waits until its steps have returned.
func (l *Local) Stop(ctx context.Context, jobID string) error {
	l.mu.Lock()
	ex, ok := l.running[jobID]
	l.mu.Unlock()
	if !ok {
		return nil
	}
	ex.cancel()
	select {
	case <-ex.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Running reports whether the job's execution is running in this process.
// After a restart, Recover starts the unfinished jobs' executions again, so
// ask only after it has run.
func (l *Local) Running(_ context.Context, jobID string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.running[jobID]
	return ok, nil
}

// Close stops every execution and waits for them, for a graceful shutdown.
// Their jobs stay in progress in the store and resume on the next start.
func (l *Local) Close() {
	l.mu.Lock()
	l.closed = true
	for _, ex := range l.running {
		ex.cancel()
	}
	l.mu.Unlock()
	l.wg.Wait()
}
