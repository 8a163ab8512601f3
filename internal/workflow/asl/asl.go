// Package asl is an in-process interpreter for the subset of Amazon States
// Language that statemachines/*.asl.json use, so the local server runs the
// very definition files that AWS Step Functions runs (style.md rule 6).
//
// The subset is faithful: what Parse accepts behaves as on Step Functions
// (input/output processing order, Retry and Catch matching, error names and
// the Catch error output, the 256 KiB payload limit), and everything else
// (other state types, fields, JSONPath operators, intrinsic functions, context
// object fields, JSONata) is refused by Parse instead of being ignored.
// testdata/aws_examples replays the worked examples of the Step Functions
// Developer Guide against it (aws_examples_test.go).
//
// Supported: Task, Map, Choice, Succeed and Fail states; InputPath,
// Parameters, ResultPath and OutputPath; Retry and Catch on Task and Map
// (with MaxDelaySeconds and JitterStrategy); reference paths such as $.a.b,
// $.a[0], $['a'] and $$.Map.Item.Value. A Map runs INLINE, or DISTRIBUTED
// (each item a child execution) with an optional ItemReader that reads a
// JSON array from S3 (arn:aws:states:::s3:getObject, bound to the step
// registered under that ARN), an optional ResultWriter that writes the Map
// Run's results to S3 (arn:aws:states:::s3:putObject, likewise) and
// ToleratedFailurePercentage 0. Pass and Wait states, ResultSelector, and a
// Map's legacy Iterator and Parameters are refused ("unsupported by this
// runner"): no definition uses them.
package asl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// Predefined error names (Step Functions "States." errors) used here.
const (
	ErrAll               = "States.ALL"
	ErrTaskFailed        = "States.TaskFailed"
	ErrTimeout           = "States.Timeout"
	ErrRuntime           = "States.Runtime"
	ErrDataLimitExceeded = "States.DataLimitExceeded"
	ErrResultPathMatch   = "States.ResultPathMatchFailure"
	ErrNoChoiceMatched   = "States.NoChoiceMatched"

	// A Distributed Map's ItemReader failed, or one of its child
	// executions did (ToleratedFailurePercentage 0).
	ErrItemReaderFailed                = "States.ItemReaderFailed"
	ErrExceedToleratedFailureThreshold = "States.ExceedToleratedFailureThreshold"
	// Its ResultWriter could not write the Map Run's results.
	ErrResultWriterFailed = "States.ResultWriterFailed"
)

// ResourceS3GetObject is the service integration a Distributed Map's
// ItemReader names to read its items from one S3 object. Its step is keyed
// by this ARN rather than by a "${Name}" placeholder; it gets
// {"Bucket", "Key"} and returns the object's bytes.
const ResourceS3GetObject = "arn:aws:states:::s3:getObject"

// ResourceS3PutObject is the service integration a Distributed Map's
// ResultWriter names to write the Map Run's results to S3. Its step is
// keyed by this ARN; it gets {"Bucket", "Key", "Body"}, Body being the
// object's content as a JSON string, and its result is ignored.
const ResourceS3PutObject = "arn:aws:states:::s3:putObject"

// Defaults of the Machine fields.
const (
	DefaultPayloadLimit              = 256 * 1024 // Step Functions' state payload quota
	DefaultMaxMapConcurrency         = 40         // AWS runs at most 40 inline Map iterations at once
	DefaultMaxDistributedConcurrency = 10000      // and at most 10,000 child executions of a Distributed Map
)

// Step implements one Task state's Resource. An error whose chain has a
// method ErrorName() string fails the task with that error name (for Retry
// and Catch); any other error, and a panic, fail it with States.TaskFailed.
type Step func(ctx context.Context, input json.RawMessage) (json.RawMessage, error)

// Typed makes a Step of a function of Go values: the input is decoded
// into I and the output encoded from O, as Lambda's Go runtime does.
func Typed[I, O any](f func(context.Context, I) (O, error)) Step {
	return func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
		var in I
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, fmt.Errorf("decode step input: %w", err)
		}
		out, err := f(ctx, in)
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	}
}

// Named makes step fail under the error name name gives its error, as a
// Lambda host names a function's error (its errorType) for Retry and Catch.
func Named(step Step, name func(error) string) Step {
	return func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		out, err := step(ctx, in)
		if err != nil {
			return nil, &namedError{name: name(err), err: err}
		}
		return out, nil
	}
}

type namedError struct {
	name string
	err  error
}

func (e *namedError) Error() string     { return e.err.Error() }
func (e *namedError) Unwrap() error     { return e.err }
func (e *namedError) ErrorName() string { return e.name }

// Machine is a parsed state machine. Its fields may be set before the first
// Run; after that it is safe for concurrent Runs.
type Machine struct {
	// Sleep waits for d or until ctx is done (Retry intervals).
	// Nil means a real timer; tests inject a recorder.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a random number in [0, 1) for a retrier's
	// JitterStrategy FULL. Nil means math/rand/v2's Float64; tests inject
	// a fixed sequence.
	Rand func() float64
	// PayloadLimit is the largest state input, output or task result in
	// bytes of compact JSON; larger ones fail with States.DataLimitExceeded.
	// Zero means DefaultPayloadLimit.
	PayloadLimit int
	// MaxMapConcurrency caps the iterations an inline Map runs at once,
	// whatever its MaxConcurrency says (0 there means "no limit"). Zero means
	// DefaultMaxMapConcurrency.
	MaxMapConcurrency int
	// MaxDistributedConcurrency is the same for a Distributed Map's child
	// executions. Zero means DefaultMaxDistributedConcurrency.
	MaxDistributedConcurrency int

	root *stateMachine
}

// ExecutionError is how an execution fails: a Fail state, or an error that no
// Catch handled. Name and Cause are Step Functions' "error" and "cause".
type ExecutionError struct {
	Name  string
	Cause string
}

func (e *ExecutionError) Error() string {
	return fmt.Sprintf("asl: execution failed: %s: %s", e.Name, e.Cause)
}

// ErrorName returns e.Name, so a step that returns an *ExecutionError fails
// with the same name.
func (e *ExecutionError) ErrorName() string { return e.Name }

// Parse validates def and binds each Task Resource of the form "${Name}" to
// steps[Name], and each ItemReader and ResultWriter Resource to the step
// keyed by its ARN (ResourceS3GetObject, ResourceS3PutObject). It fails if a
// placeholder, ItemReader or ResultWriter has no step, if a placeholder step
// is never referenced (an ARN-keyed step may go unused), if a Next, Default
// or StartAt names a missing state, if a state is unreachable, if a state
// type or field is unsupported, or if a path is malformed or unsupported.
func Parse(def []byte, steps map[string]Step) (*Machine, error) {
	p := &parser{steps: steps, used: map[string]bool{}, names: map[string]bool{}}
	root, err := p.parse(def)
	if err != nil {
		return nil, fmt.Errorf("asl: %w", err)
	}
	return &Machine{
		PayloadLimit:              DefaultPayloadLimit,
		MaxMapConcurrency:         DefaultMaxMapConcurrency,
		MaxDistributedConcurrency: DefaultMaxDistributedConcurrency,
		root:                      root,
	}, nil
}

// Run executes one execution named name (visible as $$.Execution.Name) with
// the given input (empty means {}) and returns its output. A Fail state, or
// an error not handled by a Catch, returns an *ExecutionError. If ctx is
// cancelled, Run stops promptly (no new task starts, retries stop waiting, a
// Map stops launching iterations and waits for running ones) and returns
// ctx.Err(); Catch handlers do not run for a cancellation.
func (m *Machine) Run(ctx context.Context, name string, input json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(input)) == 0 {
		input = json.RawMessage("{}")
	}
	var in any
	if err := decodeStrict(input, &in); err != nil {
		return nil, fmt.Errorf("asl: execution input: %w", err)
	}
	x := &execution{m: m, name: name, input: in}
	if err := x.limit("", "execution input", in); err != nil {
		return nil, err
	}
	out, err := x.run(ctx, m.root, in)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return marshal(out), nil
}

func (m *Machine) random() float64 {
	if m.Rand != nil {
		return m.Rand()
	}
	return rand.Float64()
}

func (m *Machine) sleep(ctx context.Context, d time.Duration) error {
	if m.Sleep != nil {
		return m.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// stepError turns what a Step returned into a task failure.
func stepError(err error) *ExecutionError {
	name := ErrTaskFailed
	var named interface{ ErrorName() string }
	if errors.As(err, &named) && named.ErrorName() != "" {
		name = named.ErrorName()
	}
	return &ExecutionError{Name: name, Cause: err.Error()}
}

func runtimeError(state, format string, args ...any) *ExecutionError {
	return &ExecutionError{
		Name:  ErrRuntime,
		Cause: fmt.Sprintf("An error occurred while executing the state '%s'. ", state) + fmt.Sprintf(format, args...),
	}
}

// matches reports whether a Retrier or Catcher with errorEquals handles the
// error name. Following the Step Functions error-handling guide
// (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html):
// States.ALL matches any error name (Lambda.Unknown, Sandbox.Timedout,
// Runtime.ExitError, States.Timeout, a step's own names ...), except that
// States.Runtime ("not retriable, always fails the execution") and
// States.DataLimitExceeded ("a terminal error") are never handled, not even
// by States.ALL; States.TaskFailed matches any error except States.Timeout.
func matches(errorEquals []string, name string) bool {
	if name == ErrRuntime || name == ErrDataLimitExceeded {
		return false
	}
	for _, e := range errorEquals {
		switch {
		case e == name, e == ErrAll:
			return true
		case e == ErrTaskFailed && name != ErrTimeout:
			return true
		}
	}
	return false
}

// marshal encodes a decoded JSON value compactly, without HTML escaping.
func marshal(v any) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Values come from decoding JSON, so they always encode.
		panic("asl: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// decodeStrict decodes one JSON value, keeping numbers as json.Number so that
// they reach steps exactly as written.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}
