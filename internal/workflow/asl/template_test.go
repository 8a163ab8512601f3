package asl

import (
	"errors"
	"strings"
	"testing"
)

func TestTemplate(t *testing.T) {
	data := `{"jobId":"j1","n":3,"list":[{"id":"a"},{"id":"b"}],"deep":{"x":true}}`
	c := &contextObject{execName: "exec-1", execInput: mustDecode(t, `{"start":1}`), stateName: "S",
		inMap: true, mapIndex: 2, mapValue: mustDecode(t, `{"v":"item"}`)}
	tests := []struct {
		name, tmpl, want string
	}{
		{"Literal", `{"a":1,"b":"$.jobId","c":[1,{"d":null}]}`, `{"a":1,"b":"$.jobId","c":[1,{"d":null}]}`},
		{"Path", `{"id.$":"$.jobId","all.$":"$"}`,
			`{"all":{"deep":{"x":true},"jobId":"j1","list":[{"id":"a"},{"id":"b"}],"n":3},"id":"j1"}`},
		{"Nested", `{"job":{"id.$":"$.jobId","k":1},"second.$":"$.list[1].id","b.$":"$['deep'].x"}`,
			`{"b":true,"job":{"id":"j1","k":1},"second":"b"}`},
		{"InArray", `{"env":[{"Name":"JOB","Value.$":"$.jobId"},"lit"]}`, `{"env":[{"Name":"JOB","Value":"j1"},"lit"]}`},
		{"Context", `{"name.$":"$$.Execution.Name","in.$":"$$.Execution.Input.start","state.$":"$$.State.Name"}`,
			`{"in":1,"name":"exec-1","state":"S"}`},
		{"MapItem", `{"i.$":"$$.Map.Item.Index","v.$":"$$.Map.Item.Value.v","job.$":"$.jobId"}`,
			`{"i":2,"job":"j1","v":"item"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := compileTemplate(mustDecode(t, tc.tmpl), true)
			if err != nil {
				t.Fatalf("compileTemplate(%s) = %v", tc.tmpl, err)
			}
			got, err := tp.eval(mustDecode(t, data), c)
			if err != nil {
				t.Fatalf("eval(%s) = %v", tc.tmpl, err)
			}
			if string(marshal(got)) != tc.want {
				t.Errorf("eval(%s) = %s, want %s", tc.tmpl, marshal(got), tc.want)
			}
		})
	}
}

func TestTemplate_MissingPath(t *testing.T) {
	tp, err := compileTemplate(mustDecode(t, `{"a":{"x.$":"$.nope"}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tp.eval(mustDecode(t, `{}`), &contextObject{stateName: "S"})
	var ee *ExecutionError
	if !errors.As(err, &ee) || ee.Name != ErrRuntime || !strings.Contains(ee.Cause, "'$.nope'") {
		t.Errorf("eval = %v, want States.Runtime naming $.nope", err)
	}
}

func TestCompileTemplate_Invalid(t *testing.T) {
	tests := []struct {
		tmpl    string
		inMap   bool
		wantErr string
	}{
		{`[1]`, false, "must be a JSON object"},
		{`{"a.$":1}`, false, "must be a path string"},
		{`{"a.$":"jobId"}`, false, "must start with $"},
		{`{"a.$":"States.Format('{}', $.x)"}`, false, "intrinsic functions"},
		{`{"a.$":"$.x[*]"}`, false, "not a non-negative index"},
		{`{"a.$":"$.x","a":1}`, false, "conflict"},
		{`{"l":[{"a.$":"$..x"}]}`, false, `field "l": [0]: field "a.$"`},
		{`{"a.$":"$$.Map.Item.Value"}`, false, "only available in a Map state's ItemSelector"},
		{`{"a.$":"$$.Execution.StartTime"}`, true, "not supported"},
		{`{"a.$":"$$.Execution"}`, true, "not supported"},
		{`{"a.$":"$$.Task.Token"}`, true, "not supported"},
		{`{"a.$":"$$.Map.Item.Index.x"}`, true, "not supported"},
	}
	for _, tc := range tests {
		_, err := compileTemplate(mustDecode(t, tc.tmpl), tc.inMap)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("compileTemplate(%s) = %v, want error containing %q", tc.tmpl, err, tc.wantErr)
		}
	}
}
