package asl

import (
	"errors"
	"strings"
	"testing"
)

func TestRule(t *testing.T) {
	data := `{"done":true,"s":"abc","n":5,"f":2.5,"null":null,"obj":{}}`
	tests := []struct {
		rule string
		want bool
	}{
		{`{"Variable":"$.done","BooleanEquals":true}`, true},
		{`{"Variable":"$.done","BooleanEquals":false}`, false},
		{`{"Variable":"$.s","BooleanEquals":true}`, false}, // type mismatch: no match, no error
		{`{"Variable":"$.s","StringEquals":"abc"}`, true},
		{`{"Variable":"$.s","StringEquals":"ab"}`, false},
		{`{"Variable":"$.n","StringEquals":"5"}`, false},
		{`{"Variable":"$.n","NumericEquals":5}`, true},
		{`{"Variable":"$.n","NumericEquals":5.0}`, true},
		{`{"Variable":"$.s","NumericEquals":5}`, false},
		{`{"Variable":"$.f","NumericLessThan":3}`, true},
		{`{"Variable":"$.f","NumericLessThan":2.5}`, false},
		{`{"Variable":"$.f","NumericLessThanEquals":2.5}`, true},
		{`{"Variable":"$.n","NumericGreaterThan":4.9}`, true},
		{`{"Variable":"$.n","NumericGreaterThan":5}`, false},
		{`{"Variable":"$.n","NumericGreaterThanEquals":5}`, true},
		{`{"Variable":"$.n","IsPresent":true}`, true},
		{`{"Variable":"$.missing","IsPresent":true}`, false},
		{`{"Variable":"$.missing","IsPresent":false}`, true},
		{`{"Variable":"$.null","IsPresent":true}`, true},
		{`{"Variable":"$.null","IsNull":true}`, true},
		{`{"Variable":"$.obj","IsNull":false}`, true},
		{`{"Variable":"$.done","IsBoolean":true}`, true},
		{`{"Variable":"$.s","IsString":true}`, true},
		{`{"Variable":"$.n","IsString":false}`, true},
		{`{"Variable":"$.f","IsNumeric":true}`, true},
		{`{"Variable":"$.null","IsNumeric":true}`, false},
		{`{"And":[{"Variable":"$.done","BooleanEquals":true},{"Variable":"$.n","NumericEquals":5}]}`, true},
		{`{"And":[{"Variable":"$.done","BooleanEquals":true},{"Variable":"$.n","NumericEquals":6}]}`, false},
		{`{"Or":[{"Variable":"$.done","BooleanEquals":false},{"Variable":"$.n","NumericEquals":5}]}`, true},
		{`{"Or":[{"Variable":"$.done","BooleanEquals":false},{"Variable":"$.n","NumericEquals":6}]}`, false},
		{`{"Not":{"Variable":"$.done","BooleanEquals":false}}`, true},
		// And and Or short-circuit, so the missing path is never read.
		{`{"And":[{"Variable":"$.missing","IsPresent":true},{"Variable":"$.missing","StringEquals":"x"}]}`, false},
		{`{"Or":[{"Variable":"$.missing","IsPresent":false},{"Variable":"$.missing","StringEquals":"x"}]}`, true},
		{`{"Variable":"$$.Execution.Name","StringEquals":"exec"}`, true},
	}
	c := &contextObject{execName: "exec", stateName: "C"}
	for _, tc := range tests {
		r, err := parseRule([]byte(tc.rule), false)
		if err != nil {
			t.Errorf("parseRule(%s) = %v", tc.rule, err)
			continue
		}
		got, err := r.eval(mustDecode(t, data), c)
		if err != nil || got != tc.want {
			t.Errorf("eval(%s) = %v, %v, want %v", tc.rule, got, err, tc.want)
		}
	}
}

func TestRule_MissingVariable(t *testing.T) {
	for _, rule := range []string{
		`{"Variable":"$.missing","BooleanEquals":true}`,
		`{"Variable":"$.missing","IsNull":true}`,
		`{"Not":{"Variable":"$.missing","StringEquals":"x"}}`,
	} {
		r, err := parseRule([]byte(rule), false)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.eval(mustDecode(t, `{}`), &contextObject{stateName: "C"})
		var ee *ExecutionError
		if !errors.As(err, &ee) || ee.Name != ErrRuntime {
			t.Errorf("eval(%s) = %v, want States.Runtime", rule, err)
		}
	}
}

func TestParseRule_Invalid(t *testing.T) {
	tests := []struct {
		rule    string
		top     bool
		wantErr string
	}{
		{`{"Variable":"$.a","BooleanEquals":true}`, true, "needs Next"},
		{`{"Variable":"$.a","BooleanEquals":true,"Next":"X"}`, false, `unsupported field "Next"`},
		{`{"Variable":"$.a","StringMatches":"a*","Next":"X"}`, true, `unsupported field "StringMatches"`},
		{`{"Variable":"$.a","TimestampEquals":"2020-01-01T00:00:00Z","Next":"X"}`, true, `unsupported field "TimestampEquals"`},
		{`{"Variable":"$.a","StringEqualsPath":"$.b","Next":"X"}`, true, `unsupported field "StringEqualsPath"`},
		{`{"Variable":"$.a","Next":"X"}`, true, "exactly one operator"},
		{`{"Variable":"$.a","BooleanEquals":true,"IsNull":true,"Next":"X"}`, true, "exactly one operator"},
		{`{"Variable":"$.a","BooleanEquals":"true","Next":"X"}`, true, "must be a boolean"},
		{`{"Variable":"$.a","NumericEquals":"1","Next":"X"}`, true, "must be a number"},
		{`{"Variable":"$.a","StringEquals":1,"Next":"X"}`, true, "must be a string"},
		{`{"BooleanEquals":true,"Next":"X"}`, true, "needs a Variable"},
		{`{"Variable":"$.a[*]","BooleanEquals":true,"Next":"X"}`, true, "Variable"},
		{`{"Variable":"$$.Map.Item.Value","BooleanEquals":true,"Next":"X"}`, true, "$$.Map"},
		{`{"And":[],"Next":"X"}`, true, "non-empty array"},
		{`{"Variable":"$.a","And":[{"Variable":"$.a","IsNull":true}],"Next":"X"}`, true, "takes no Variable"},
		{`{"Not":{"Variable":"$.a","IsNull":true,"Next":"Y"},"Next":"X"}`, true, `Not: unsupported field "Next"`},
	}
	for _, tc := range tests {
		_, err := parseRule([]byte(tc.rule), tc.top)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("parseRule(%s, %v) = %v, want error containing %q", tc.rule, tc.top, err, tc.wantErr)
		}
	}
}
