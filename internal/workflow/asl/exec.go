package asl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// execution is one Run. Values flowing between states are decoded JSON
// (map[string]any, []any, string, json.Number, bool, nil) and are never
// modified in place, so Map iterations can share them.
type execution struct {
	m     *Machine
	name  string
	input any

	mu      sync.Mutex
	mapRuns map[string]int // Map Runs started so far, by Distributed Map state
}

func (x *execution) contextFor(st *state) *contextObject {
	return &contextObject{execName: x.name, execInput: x.input, stateName: st.name}
}

// run executes sm from its StartAt state until a state ends it.
func (x *execution) run(ctx context.Context, sm *stateMachine, in any) (any, error) {
	st := sm.states[sm.startAt]
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out, next, err := x.state(ctx, st, in)
		if err != nil {
			return nil, err
		}
		if err := x.limit(st.name, "output", out); err != nil {
			return nil, err
		}
		if next == "" {
			return out, nil
		}
		st, in = sm.states[next], out
	}
}

// state executes st on its raw input and returns its output and the next
// state ("" when st ends the machine).
func (x *execution) state(ctx context.Context, st *state, in any) (any, string, error) {
	switch st.typ {
	case "Task":
		return x.withCatch(ctx, st, in, x.callStep)
	case "Map":
		return x.withCatch(ctx, st, in, x.runMap)
	case "Fail":
		return nil, "", &ExecutionError{Name: st.errorName, Cause: st.cause}
	}
	// Choice and Succeed: InputPath, then OutputPath.
	eff, err := x.inputPath(st, in)
	if err != nil {
		return nil, "", err
	}
	next := st.next
	if st.typ == "Choice" {
		if next, err = x.choose(st, eff); err != nil {
			return nil, "", err
		}
	}
	out, err := x.applyOutputPath(st, eff)
	return out, next, err
}

// withCatch runs a Task or Map: input processing, invoke under the Retry
// policy, result processing; an error a Catcher matches becomes the error
// output {"Error", "Cause"} stored at the Catcher's ResultPath in the raw
// input. An error without a cause (a Fail state without Cause) has no Cause
// field: the object "usually contains the field Cause"
// (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html#error-handling-error-output),
// and the ResultPath guide's example catches {"Error": "Error here"}
// (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultpath.html#input-output-resultpath-catch).
func (x *execution) withCatch(ctx context.Context, st *state, in any, invoke func(context.Context, *state, any) (any, error)) (any, string, error) {
	out, err := x.act(ctx, st, in, invoke)
	if err == nil {
		return out, st.next, nil
	}
	var ee *ExecutionError
	if ctx.Err() != nil || !errors.As(err, &ee) {
		return nil, "", err
	}
	for _, c := range st.catch {
		if !matches(c.errorEquals, ee.Name) {
			continue
		}
		output := map[string]any{"Error": ee.Name}
		if ee.Cause != "" {
			output["Cause"] = ee.Cause
		}
		out, err := x.applyResultPath(st, c.resultPath, in, output)
		if err != nil {
			return nil, "", err
		}
		return out, c.next, nil
	}
	return nil, "", err
}

func (x *execution) act(ctx context.Context, st *state, in any, invoke func(context.Context, *state, any) (any, error)) (any, error) {
	eff, err := x.inputPath(st, in)
	if err != nil {
		return nil, err
	}
	if eff, err = x.parameters(st, eff); err != nil {
		return nil, err
	}
	result, err := x.retry(ctx, st, func(ctx context.Context) (any, error) { return invoke(ctx, st, eff) })
	if err != nil {
		return nil, err
	}
	if err := x.limit(st.name, "result", result); err != nil {
		return nil, err
	}
	return x.processResult(st, in, result)
}

// retry calls f until it succeeds or fails with an error that the first
// Retrier matching it no longer retries. Only that first match counts: a
// Retrier with MaxAttempts 0 matches and never retries, so the error goes on
// to Catch and later Retriers (a States.ALL) never see it
// (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html).
// Each Retrier counts its own attempts, from zero on every entry into the
// state.
func (x *execution) retry(ctx context.Context, st *state, f func(context.Context) (any, error)) (any, error) {
	attempts := make([]int, len(st.retry))
	for {
		v, err := f(ctx)
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ee *ExecutionError
		if !errors.As(err, &ee) {
			return nil, err
		}
		i := -1
		for j, r := range st.retry {
			if matches(r.errorEquals, ee.Name) {
				i = j
				break
			}
		}
		if i < 0 || attempts[i] >= st.retry[i].maxAttempts {
			return nil, err
		}
		d := st.retry[i].delay(attempts[i], x.m.random)
		attempts[i]++
		if err := x.m.sleep(ctx, d); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
	}
}

// delay is the wait before retry n+1: IntervalSeconds × BackoffRate^n,
// capped by MaxDelaySeconds; with JitterStrategy FULL, a random wait
// between 0 and that (rand returns [0, 1)).
func (r *retrier) delay(n int, rand func() float64) time.Duration {
	s := r.interval * math.Pow(r.backoff, float64(n))
	if r.maxDelay > 0 {
		s = min(s, r.maxDelay)
	}
	s = min(s, 1e9) // keep the conversion below from overflowing
	if r.jitter {
		s *= rand()
	}
	return time.Duration(s * float64(time.Second))
}

// callStep invokes a Task's step. A panic fails the task like an error.
func (x *execution) callStep(ctx context.Context, st *state, eff any) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			result, err = nil, &ExecutionError{Name: ErrTaskFailed, Cause: fmt.Sprintf("panic: %v", r)}
		}
	}()
	out, err := st.step(ctx, marshal(eff))
	if err != nil {
		return nil, stepError(err)
	}
	if len(out) == 0 {
		return nil, nil // no result is JSON null, as for a Lambda returning nothing
	}
	if err := decodeStrict(out, &result); err != nil {
		return nil, runtimeError(st.name, "The task returned invalid JSON: %v", err)
	}
	return result, nil
}

// runMap runs the ItemProcessor once per item, at most MaxConcurrency at a
// time. The first failing iteration fails the Map with its error; the other
// iterations are cancelled and waited for. The result is the iteration
// outputs in item order.
//
// A Distributed Map (ProcessorConfig Mode DISTRIBUTED) reads its items with
// its ItemReader, if it has one, and runs each item as a child execution
// with its own name and input; a failed child fails the Map with
// States.ExceedToleratedFailureThreshold (ToleratedFailurePercentage 0),
// which, unlike the child's own error, a Catch may handle even if it is
// States.Runtime. With a ResultWriter the results go to S3 and the result
// is where (see writeResults).
func (x *execution) runMap(ctx context.Context, st *state, eff any) (any, error) {
	var dest *destination
	if st.writer != nil {
		var err error
		if dest, err = x.destination(st, eff); err != nil {
			return nil, err
		}
	}
	var items []any
	if st.reader != nil {
		var err error
		if items, err = x.readItems(ctx, st, eff); err != nil {
			return nil, err
		}
	} else {
		v, ok := st.itemsPath.lookup(eff)
		if !ok {
			return nil, runtimeError(st.name, "Invalid path '%s': The ItemsPath could not be found in the input.", st.itemsPath)
		}
		if items, ok = v.([]any); !ok {
			return nil, runtimeError(st.name, "The ItemsPath '%s' must reference a JSON array.", st.itemsPath)
		}
	}
	limit := x.m.MaxMapConcurrency
	if st.distributed {
		limit = x.m.MaxDistributedConcurrency
	}
	if limit <= 0 {
		limit = DefaultMaxMapConcurrency
		if st.distributed {
			limit = DefaultMaxDistributedConcurrency
		}
	}
	workers := st.maxConcurrency
	if st.maxConcurrencyPath != nil {
		v, ok := st.maxConcurrencyPath.lookup(eff)
		n, isNum := v.(json.Number)
		i, err := n.Int64()
		if !ok || !isNum || err != nil || i < 0 {
			return nil, runtimeError(st.name, "The MaxConcurrencyPath '%s' must reference a non-negative integer.", st.maxConcurrencyPath)
		}
		workers = int(min(i, math.MaxInt32))
	}
	if workers == 0 || workers > limit {
		workers = limit
	}
	workers = min(workers, len(items))

	results := make([]any, len(items))
	var inputs []any // the children's inputs, for a ResultWriter
	if dest != nil {
		inputs = make([]any, len(items))
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for mctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(items) {
					return
				}
				in, out, err := x.iteration(mctx, st, eff, i, items[i])
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					return
				}
				results[i] = out
				if inputs != nil {
					inputs[i] = in
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if first != nil {
		return nil, first
	}
	if dest != nil {
		return x.writeResults(ctx, st, dest, inputs, results)
	}
	return results, nil
}

// iteration runs item i and returns its input (after ItemSelector) and
// output.
func (x *execution) iteration(ctx context.Context, st *state, eff any, i int, item any) (in, out any, err error) {
	in = item
	if st.itemSelector != nil {
		c := x.contextFor(st)
		c.inMap, c.mapIndex, c.mapValue = true, i, item
		if in, err = st.itemSelector.eval(eff, c); err != nil {
			return nil, nil, err
		}
	}
	if err := x.limit(st.name, fmt.Sprintf("iteration %d input", i), in); err != nil {
		return nil, nil, err
	}
	if !st.distributed {
		out, err = x.run(ctx, st.processor, in)
		return in, out, err
	}
	// A child execution: its context object ($$.Execution) is its own.
	child := &execution{m: x.m, name: x.childName(st, i), input: in}
	out, err = child.run(ctx, st.processor, in)
	var ee *ExecutionError
	if err != nil && ctx.Err() == nil && errors.As(err, &ee) {
		return nil, nil, &ExecutionError{Name: ErrExceedToleratedFailureThreshold, Cause: fmt.Sprintf(
			"The Map Run of state '%s' exceeded its tolerated failure threshold (0%%): item %d failed with %s: %s", st.name, i, ee.Name, ee.Cause)}
	}
	return in, out, err
}

// childName is the execution name of a Distributed Map's item i.
func (x *execution) childName(st *state, i int) string {
	return fmt.Sprintf("%s/%s:%d", x.name, st.name, i)
}

// readItems runs a Distributed Map's ItemReader: its Parameters on the
// Map's effective input, then its step, whose result must be a JSON array.
// Any failure is States.ItemReaderFailed (a Retry or Catch on the Map may
// handle it). The array is not subject to the payload limit: that is the
// point of reading it from S3.
func (x *execution) readItems(ctx context.Context, st *state, eff any) (items []any, err error) {
	params, err := st.reader.parameters.eval(eff, x.contextFor(st))
	if err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) error {
		return &ExecutionError{Name: ErrItemReaderFailed, Cause: fmt.Sprintf("The ItemReader of state '%s' (%s) failed: ", st.name, st.reader.resource) + fmt.Sprintf(format, args...)}
	}
	defer func() {
		if r := recover(); r != nil {
			items, err = nil, fail("panic: %v", r)
		}
	}()
	raw, err := st.reader.step(ctx, marshal(params))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fail("%v", err)
	}
	var v any
	if err := decodeStrict(raw, &v); err != nil {
		return nil, fail("the object is not JSON: %v", err)
	}
	if items, ok := v.([]any); ok {
		return items, nil
	}
	return nil, fail("the object is not a JSON array (ReaderConfig InputType JSON)")
}

func (x *execution) choose(st *state, eff any) (string, error) {
	c := x.contextFor(st)
	for _, r := range st.choices {
		ok, err := r.eval(eff, c)
		if err != nil {
			return "", err
		}
		if ok {
			return r.next, nil
		}
	}
	if st.defaultNext == "" {
		return "", &ExecutionError{Name: ErrNoChoiceMatched, Cause: fmt.Sprintf("No choice rule of state '%s' matched and it has no Default.", st.name)}
	}
	return st.defaultNext, nil
}

func (x *execution) inputPath(st *state, in any) (any, error) {
	if st.inputPath.null {
		return map[string]any{}, nil // InputPath null: the effective input is {}
	}
	v, ok := st.inputPath.p.lookup(in)
	if !ok {
		return nil, runtimeError(st.name, "Invalid path '%s' : The InputPath could not be found in the input.", st.inputPath.p)
	}
	return v, nil
}

// parameters applies Parameters and checks the payload limit on the result,
// which is the input the task receives.
func (x *execution) parameters(st *state, eff any) (any, error) {
	if st.parameters == nil {
		return eff, nil
	}
	v, err := st.parameters.eval(eff, x.contextFor(st))
	if err != nil {
		return nil, err
	}
	return v, x.limit(st.name, "input after Parameters", v)
}

// processResult applies ResultPath then OutputPath.
func (x *execution) processResult(st *state, in, result any) (any, error) {
	out, err := x.applyResultPath(st, st.resultPath, in, result)
	if err != nil {
		return nil, err
	}
	return x.applyOutputPath(st, out)
}

func (x *execution) applyResultPath(st *state, rp ioPath, in, result any) (any, error) {
	if rp.null {
		return in, nil // ResultPath null: discard the result, keep the input
	}
	out, ok := rp.p.set(in, result)
	if !ok {
		return nil, &ExecutionError{Name: ErrResultPathMatch, Cause: fmt.Sprintf("Unable to apply ResultPath '%s' to the input of state '%s'.", rp.p, st.name)}
	}
	return out, nil
}

func (x *execution) applyOutputPath(st *state, v any) (any, error) {
	if st.outputPath.null {
		return map[string]any{}, nil // OutputPath null: the output is {}
	}
	out, ok := st.outputPath.p.lookup(v)
	if !ok {
		return nil, runtimeError(st.name, "Invalid path '%s' : The OutputPath could not be found in the output.", st.outputPath.p)
	}
	return out, nil
}

// limit fails with States.DataLimitExceeded when v, as compact JSON, is
// larger than the payload limit.
func (x *execution) limit(stateName, what string, v any) error {
	max := x.m.PayloadLimit
	if max <= 0 {
		max = DefaultPayloadLimit
	}
	var n countWriter
	enc := json.NewEncoder(&n)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("asl: " + err.Error())
	}
	if size := int(n) - 1; size > max { // Encode adds a newline
		subject := fmt.Sprintf("The state/task '%s' %s", stateName, what)
		if stateName == "" {
			subject = "The " + what
		}
		return &ExecutionError{Name: ErrDataLimitExceeded, Cause: fmt.Sprintf(
			"%s has %d bytes, exceeding the maximum number of bytes service limit (%d).", subject, size, max)}
	}
	return nil
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

var _ io.Writer = (*countWriter)(nil)
