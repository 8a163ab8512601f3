package asl

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// destination is where a ResultWriter writes: its Parameters resolved.
type destination struct {
	bucket, prefix string // prefix is "" or ends in "/"
}

// destination resolves a ResultWriter's Parameters against the Map's
// effective input, before any item runs.
func (x *execution) destination(st *state, eff any) (*destination, error) {
	v, err := st.writer.parameters.eval(eff, x.contextFor(st))
	if err != nil {
		return nil, err
	}
	params, _ := v.(map[string]any)
	bucket, ok := params["Bucket"].(string)
	prefix, okPrefix := params["Prefix"].(string)
	if _, has := params["Prefix"]; !has {
		okPrefix = true
	}
	if !ok || bucket == "" || !okPrefix {
		return nil, &ExecutionError{Name: ErrResultWriterFailed, Cause: fmt.Sprintf(
			"The ResultWriter of state '%s' needs a non-empty string Bucket and a string Prefix, got %s.", st.name, marshal(v))}
	}
	// Prefix "csvProcessJobs" gives keys "csvProcessJobs/<map run id>/..."
	// in the AWS examples.
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &destination{bucket: bucket, prefix: prefix}, nil
}

// writeResults exports a succeeded Map Run's results as
// https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html
// describes: SUCCEEDED_0.json (the children's results, shaped by the
// Transformation; one file, whatever the size) and then manifest.json,
// under Prefix/<map run id>/. The Map's result is
// {"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}, Key being the
// manifest's. A failed write is States.ResultWriterFailed.
//
// Unlike AWS, a Map Run that fails writes nothing, and NONE's entries lack
// StartDate, StopDate and StateMachineArn, which this runner has no values
// for. ARNs have empty region and account fields.
func (x *execution) writeResults(ctx context.Context, st *state, dest *destination, inputs, outputs []any) (any, error) {
	runID := x.mapRunID(st)
	arn := fmt.Sprintf("arn:aws:states:::mapRun:%s/%s:%s", x.name, st.name, runID)
	dir := dest.prefix + runID + "/"
	entries := make([]any, 0, len(outputs))
	for i, out := range outputs {
		switch st.writer.transformation {
		case "COMPACT":
			entries = append(entries, out)
		case "FLATTEN":
			if a, ok := out.([]any); ok {
				entries = append(entries, a...)
			} else {
				entries = append(entries, out)
			}
		default: // NONE: the child executions with their metadata
			name := x.childName(st, i)
			entries = append(entries, map[string]any{
				"ExecutionArn":        "arn:aws:states:::execution:" + name,
				"Name":                name,
				"Input":               string(marshal(inputs[i])),
				"InputDetails":        map[string]any{"Included": true},
				"Output":              string(marshal(out)),
				"OutputDetails":       map[string]any{"Included": true},
				"Status":              "SUCCEEDED",
				"RedriveCount":        json.Number("0"),
				"RedriveStatus":       "NOT_REDRIVABLE",
				"RedriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
			})
		}
	}
	succeeded := []any{}
	if len(entries) > 0 {
		key := dir + "SUCCEEDED_0.json"
		body := marshal(entries)
		if err := x.putObject(ctx, st, dest.bucket, key, body); err != nil {
			return nil, err
		}
		succeeded = append(succeeded, map[string]any{"Key": key, "Size": json.Number(strconv.Itoa(len(body)))})
	}
	key := dir + "manifest.json"
	manifest := map[string]any{
		"DestinationBucket": dest.bucket,
		"MapRunArn":         arn,
		"ResultFiles":       map[string]any{"FAILED": []any{}, "PENDING": []any{}, "SUCCEEDED": succeeded},
	}
	if err := x.putObject(ctx, st, dest.bucket, key, marshal(manifest)); err != nil {
		return nil, err
	}
	return map[string]any{"MapRunArn": arn, "ResultWriterDetails": map[string]any{"Bucket": dest.bucket, "Key": key}}, nil
}

// putObject writes one object with the ResultWriter's step.
func (x *execution) putObject(ctx context.Context, st *state, bucket, key string, body []byte) (err error) {
	fail := func(format string, args ...any) error {
		return &ExecutionError{Name: ErrResultWriterFailed, Cause: fmt.Sprintf("The ResultWriter of state '%s' (%s) failed to write s3://%s/%s: ", st.name, st.writer.resource, bucket, key) + fmt.Sprintf(format, args...)}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fail("panic: %v", r)
		}
	}()
	in := marshal(map[string]any{"Bucket": bucket, "Key": key, "Body": string(body)})
	if _, err := st.writer.step(ctx, in); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fail("%v", err)
	}
	return nil
}

// mapRunID names the nth Map Run of st in this execution: a UUID derived
// from the execution name, so a re-run of the same execution (after a
// restart) writes the same keys.
func (x *execution) mapRunID(st *state) string {
	x.mu.Lock()
	if x.mapRuns == nil {
		x.mapRuns = map[string]int{}
	}
	n := x.mapRuns[st.name]
	x.mapRuns[st.name]++
	x.mu.Unlock()
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d", x.name, st.name, n)))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x80 // version 8 (RFC 9562: custom)
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
