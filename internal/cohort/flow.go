package cohort

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/workflow/asl"
	"github.com/tranchehq/tranche/statemachines"
)

// The cohort workflow (statemachines/cohort.asl.json): one Run task, and
// MarkFailed as its Catch. On AWS each step is a Lambda
// (functions/cohortrun, functions/cohortfailed) and Step Functions runs
// the definition; locally Local runs the same definition in-process.

// FailInput is MarkFailed's input: the run and the Catch's error object.
type FailInput struct {
	bulk.CohortRun
	Error struct {
		Error string `json:"Error"`
		Cause string `json:"Cause"`
	} `json:"error"`
}

// Error names of the steps, for the definition's Retry and Catch.
const (
	// ErrRejected: the cohort cannot be evaluated as defined (its
	// contract no longer allows it, ...); the Cause is client-safe.
	ErrRejected = "CohortRejected"
	// ErrFailed: any other permanent failure; the Cause is internal.
	ErrFailed = "CohortFailed"
	// ErrTransient: retried by the definition.
	ErrTransient = "Transient"
)

// Steps are the typed task handlers of the cohort workflow.
type Steps struct{ Svc *Service }

// Run is the Run state.
func (s Steps) Run(ctx context.Context, in bulk.CohortRun) (bulk.CohortRun, error) {
	return in, stepErr(s.Svc.Run(ctx, in))
}

// MarkFailed is the MarkFailed state.
func (s Steps) MarkFailed(ctx context.Context, in FailInput) (bulk.CohortRun, error) {
	if err := ctx.Err(); err != nil {
		return in.CohortRun, err // shutting down, not failed: Recover runs it again
	}
	cause, internal := "The evaluation failed because of an internal error; refresh the cohort to try again.", true
	if in.Error.Error == ErrRejected {
		cause, internal = causeMessage(in.Error.Cause), false
	}
	return in.CohortRun, stepErr(s.Svc.MarkFailed(ctx, in.CohortRun, cause, internal))
}

// causeMessage reads a step error's message from a Catch's Cause: Lambda's
// {"errorMessage": ..., "errorType": ...} on AWS, the message itself in
// the local runner.
func causeMessage(cause string) string {
	var lambdaErr struct {
		ErrorMessage string `json:"errorMessage"`
	}
	if strings.HasPrefix(cause, "{") && json.Unmarshal([]byte(cause), &lambdaErr) == nil && lambdaErr.ErrorMessage != "" {
		return lambdaErr.ErrorMessage
	}
	return cause
}

// Registry maps the definition's ${...FunctionArn} substitutions to steps,
// each failing under the error name its Lambda would (bulk.StepErrorName).
func (s Steps) Registry() map[string]asl.Step {
	return map[string]asl.Step{
		"CohortRunFunctionArn":    asl.Named(asl.Typed(s.Run), bulk.StepErrorName),
		"CohortFailedFunctionArn": asl.Named(asl.Typed(s.MarkFailed), bulk.StepErrorName),
	}
}

// stepError names a step's error for the definition.
type stepError struct {
	name string
	err  error
}

// Error is the client-safe message for ErrRejected (it becomes the
// cohort's Failure), the whole error otherwise.
func (e *stepError) Error() string {
	if e.name == ErrRejected {
		return bulk.ErrorMessage(e.err)
	}
	return e.err.Error()
}
func (e *stepError) Unwrap() error { return e.err }

// ErrorName is the ASL error name.
func (e *stepError) ErrorName() string { return e.name }

func stepErr(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	switch bulk.ErrorCode(err) {
	case bulk.ETRANSIENT:
		return &stepError{ErrTransient, err}
	case bulk.EINVALID, bulk.EFORBIDDEN, bulk.EUNSUPPORTED, bulk.ENOTFOUND:
		return &stepError{ErrRejected, err}
	}
	return &stepError{ErrFailed, err}
}

// ExecutionName names a run's execution: the cohort id and the
// generation, so a retried start of the same request starts nothing new
// (Step Functions refuses a second execution of a name).
func ExecutionName(run bulk.CohortRun) string {
	return run.CohortID + "-" + strconv.Itoa(run.Generation)
}

// Local runs cohort executions in the background with the ASL
// interpreter. It implements bulk.CohortWorkflow. Like the export runner
// it keeps nothing across restarts: Service.Recover starts interrupted
// runs again; and it does not model Step Functions' IAM, history limits or
// Lambda's error names.
type Local struct {
	machine *asl.Machine
	logger  *slog.Logger

	mu      sync.Mutex
	running map[string]context.CancelFunc
	closed  bool
	wg      sync.WaitGroup
	// done, when set, is called after each execution ends (tests).
	done func(run bulk.CohortRun, err error)
}

var _ bulk.CohortWorkflow = (*Local)(nil)

// NewLocal parses the embedded definition against steps.
func NewLocal(steps Steps, logger *slog.Logger) (*Local, error) {
	m, err := asl.Parse(statemachines.Cohort, steps.Registry())
	if err != nil {
		return nil, fmt.Errorf("statemachines/cohort.asl.json: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Local{machine: m, logger: logger, running: map[string]context.CancelFunc{}}, nil
}

// OnDone sets a function called after each execution ends, with the
// execution's error (nil when it succeeded or was stopped).
func (l *Local) OnDone(fn func(run bulk.CohortRun, err error)) {
	l.mu.Lock()
	l.done = fn
	l.mu.Unlock()
}

// StartCohort runs the execution in the background; a no-op while an
// execution of that name runs.
func (l *Local) StartCohort(_ context.Context, run bulk.CohortRun) error {
	name := ExecutionName(run)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return bulk.Errorf(bulk.ETRANSIENT, "The server is shutting down.")
	}
	if _, ok := l.running[name]; ok {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.running[name] = cancel
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer cancel()
		input, _ := json.Marshal(run)
		_, err := l.machine.Run(ctx, name, input)
		l.mu.Lock()
		delete(l.running, name)
		done := l.done
		l.mu.Unlock()
		if errors.Is(err, context.Canceled) {
			err = nil
		} else if err != nil {
			l.logger.Error("cohort execution ended with an error", "cohort", run.CohortID, "generation", run.Generation, "err", err)
		}
		if done != nil {
			done(run, err)
		}
	}()
	return nil
}

// Close stops every execution and waits for them; interrupted runs stay
// pending or deleting and Recover starts them at the next start.
func (l *Local) Close() {
	l.mu.Lock()
	l.closed = true
	for _, cancel := range l.running {
		cancel()
	}
	l.mu.Unlock()
	l.wg.Wait()
}
