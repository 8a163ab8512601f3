// Package sfn is the Step Functions bulk.Workflow: one execution of the
// export state machine (statemachines/export.asl.json, deployed by
// template.yaml) per job, named by the job id.
//
// The name makes Start idempotent: Step Functions refuses a second
// execution with the same name (ExecutionAlreadyExists, for 90 days), so a
// retried kick-off or a recovery pass can never run a job twice.
package sfn

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	sfnsdk "github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"

	"github.com/tranchehq/tranche/internal/bulk"
)

// API is the part of the Step Functions client the workflow calls;
// *sfn.Client implements it.
type API interface {
	StartExecution(ctx context.Context, in *sfnsdk.StartExecutionInput, opts ...func(*sfnsdk.Options)) (*sfnsdk.StartExecutionOutput, error)
	StopExecution(ctx context.Context, in *sfnsdk.StopExecutionInput, opts ...func(*sfnsdk.Options)) (*sfnsdk.StopExecutionOutput, error)
	DescribeExecution(ctx context.Context, in *sfnsdk.DescribeExecutionInput, opts ...func(*sfnsdk.Options)) (*sfnsdk.DescribeExecutionOutput, error)
}

var _ API = (*sfnsdk.Client)(nil)

// Workflow starts, stops and describes executions of one state machine.
type Workflow struct {
	api API
	arn string
}

var _ bulk.Workflow = (*Workflow)(nil)

// New returns the workflow of the (standard) state machine stateMachineARN.
func New(api API, stateMachineARN string) (*Workflow, error) {
	if !strings.Contains(stateMachineARN, ":stateMachine:") {
		return nil, bulk.Errorf(bulk.EINVALID, "State machine ARN %q is not an ARN of a state machine.", stateMachineARN)
	}
	return &Workflow{api: api, arn: stateMachineARN}, nil
}

// execution names: 1–80 characters of letters, digits, - and _.
var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// Start starts the execution named jobID with input {"jobId": jobID}. An
// execution of that name that exists already, running or finished, is
// success: the job's workflow was started.
func (w *Workflow) Start(ctx context.Context, jobID string) (err error) {
	defer bulk.Wrap(&err, "sfn.Workflow.Start(%q)", jobID)
	if !validName.MatchString(jobID) {
		return bulk.Errorf(bulk.EINVALID, "Job id %q cannot name an execution.", jobID)
	}
	input, err := json.Marshal(struct {
		JobID string `json:"jobId"`
	}{jobID})
	if err != nil {
		return err
	}
	_, err = w.api.StartExecution(ctx, &sfnsdk.StartExecutionInput{
		StateMachineArn: aws.String(w.arn),
		Name:            aws.String(jobID),
		Input:           aws.String(string(input)),
	})
	var exists *types.ExecutionAlreadyExists
	if errors.As(err, &exists) {
		return nil
	}
	return translate(err)
}

// Stop stops the job's execution. Stopping an unknown or finished execution
// is not an error.
//
// Step Functions stops the execution at once, but a Lambda task already
// running finishes its invocation: an ExportItem that was writing sees the
// job cancelled when it records its checkpoint, writes no more, and what it
// wrote after the cancel's delete expires with the bucket's lifecycle rule.
func (w *Workflow) Stop(ctx context.Context, jobID string) (err error) {
	defer bulk.Wrap(&err, "sfn.Workflow.Stop(%q)", jobID)
	if !validName.MatchString(jobID) {
		return nil // no such execution can exist
	}
	_, err = w.api.StopExecution(ctx, &sfnsdk.StopExecutionInput{
		ExecutionArn: aws.String(w.ExecutionARN(jobID)),
		Error:        aws.String("Cancelled"),
		Cause:        aws.String("The client deleted the export job."),
	})
	var missing *types.ExecutionDoesNotExist
	if errors.As(err, &missing) {
		return nil
	}
	return translate(err)
}

// Running describes the job's execution: it runs unless it has ended
// (SUCCEEDED, FAILED, TIMED_OUT, ABORTED) or does not exist (never
// started, or its history is past Step Functions' retention). Any other
// status, such as PENDING_REDRIVE, counts as running: the watchdog must
// never fail a job that may still move.
func (w *Workflow) Running(ctx context.Context, jobID string) (_ bool, err error) {
	defer bulk.Wrap(&err, "sfn.Workflow.Running(%q)", jobID)
	if !validName.MatchString(jobID) {
		return false, nil // no such execution can exist
	}
	out, err := w.api.DescribeExecution(ctx, &sfnsdk.DescribeExecutionInput{
		ExecutionArn: aws.String(w.ExecutionARN(jobID)),
	})
	var missing *types.ExecutionDoesNotExist
	if errors.As(err, &missing) {
		return false, nil
	}
	if err != nil {
		return false, translate(err)
	}
	switch out.Status {
	case types.ExecutionStatusSucceeded, types.ExecutionStatusFailed, types.ExecutionStatusTimedOut, types.ExecutionStatusAborted:
		return false, nil
	}
	return true, nil
}

// ExecutionARN returns the ARN of the job's execution:
// arn:aws:states:REGION:ACCOUNT:execution:MACHINE:JOBID.
func (w *Workflow) ExecutionARN(jobID string) string {
	return strings.Replace(w.arn, ":stateMachine:", ":execution:", 1) + ":" + jobID
}

// translate turns an SDK error into an application error: throttling,
// limits and server errors are ETRANSIENT (the kick-off answers 503 and the
// client retries), anything else EINTERNAL.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var api smithy.APIError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return bulk.Wrapf(err, bulk.ETRANSIENT, "Request cancelled.")
	case errors.As(err, &api):
		switch api.ErrorCode() {
		case "ExecutionLimitExceeded", "ThrottlingException", "ServiceUnavailable", "InternalFailure", "RequestLimitExceeded":
			return bulk.Wrapf(err, bulk.ETRANSIENT, "The workflow service is busy; try again later.")
		}
	}
	var resp interface{ HTTPStatusCode() int }
	if errors.As(err, &resp) && resp.HTTPStatusCode() >= 500 {
		return bulk.Wrapf(err, bulk.ETRANSIENT, "The workflow service is busy; try again later.")
	}
	return bulk.Wrapf(err, bulk.EINTERNAL, "Starting, stopping or describing the workflow failed.")
}
