package asl

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustDecode(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := decodeStrict([]byte(s), &v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		in      string
		context bool
		steps   []pathStep
	}{
		{"$", false, nil},
		{"$$", true, nil},
		{"$.a.b", false, []pathStep{{"a", -1}, {"b", -1}}},
		{"$.a[0]", false, []pathStep{{"a", -1}, {"", 0}}},
		{"$.a[12][3]", false, []pathStep{{"a", -1}, {"", 12}, {"", 3}}},
		{"$['a b']", false, []pathStep{{"a b", -1}}},
		{"$.x.['def ghi']", false, []pathStep{{"x", -1}, {"def ghi", -1}}},
		{"$['a.b'].c", false, []pathStep{{"a.b", -1}, {"c", -1}}},
		{"$$.Map.Item.Value", true, []pathStep{{"Map", -1}, {"Item", -1}, {"Value", -1}}},
		{"$._x9.é", false, []pathStep{{"_x9", -1}, {"é", -1}}},
	}
	for _, tc := range tests {
		p, err := parsePath(tc.in)
		if err != nil {
			t.Errorf("parsePath(%q) = %v", tc.in, err)
			continue
		}
		if p.context != tc.context || !cmp.Equal(p.steps, tc.steps, cmp.AllowUnexported(pathStep{})) {
			t.Errorf("parsePath(%q) = %v %+v, want %v %+v", tc.in, p.context, p.steps, tc.context, tc.steps)
		}
	}
}

func TestParsePath_Invalid(t *testing.T) {
	for _, in := range []string{
		"", "a", ".a", "$.", "$a", "$..a", "$.*", "$.a[*]", "$.a[-1]", "$.a[1:2]", "$.a[?(@.b)]",
		"$.a[", "$['a", "$['a'", "$.-a", "$.9a", "$.a b", "$.a,b", "$[0", "$.a[01x]", "$['a\\'b']",
	} {
		if p, err := parsePath(in); err == nil {
			t.Errorf("parsePath(%q) = %+v, want error", in, p)
		}
	}
}

func TestPathLookup(t *testing.T) {
	data := mustDecode(t, `{"a":{"b":[10,{"c":null}]},"d e":1}`)
	tests := []struct {
		path string
		want any
		ok   bool
	}{
		{"$", data, true},
		{"$.a.b[0]", json.Number("10"), true},
		{"$.a.b[1].c", nil, true}, // present and null
		{"$['d e']", json.Number("1"), true},
		{"$.a.b[2]", nil, false},
		{"$.a.x", nil, false},
		{"$.a.b.c", nil, false},    // field of an array
		{"$.a[0]", nil, false},     // index of an object
		{"$.a.b[0].c", nil, false}, // field of a number
	}
	for _, tc := range tests {
		p, err := parsePath(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := p.lookup(data)
		if ok != tc.ok || !cmp.Equal(got, tc.want) {
			t.Errorf("lookup(%q) = %v, %v, want %v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPathSet(t *testing.T) {
	tests := []struct {
		root, path, value string
		want              string // "" for a failure
	}{
		{`{"a":1}`, "$", `{"x":2}`, `{"x":2}`},
		{`"scalar"`, "$", `[1]`, `[1]`},
		{`{"a":1}`, "$.b", `2`, `{"a":1,"b":2}`},
		{`{"a":1}`, "$.a", `{"n":true}`, `{"a":{"n":true}}`},
		{`{"a":1}`, "$.x.y.z", `3`, `{"a":1,"x":{"y":{"z":3}}}`}, // missing objects are created
		{`{"a":{"k":0}}`, "$.a.b", `2`, `{"a":{"b":2,"k":0}}`},
		{`{"a":[1]}`, "$.a.b", `2`, ""}, // through an array
		{`{"a":null}`, "$.a.b", `2`, ""},
		{`[1,2]`, "$.a", `2`, ""},
		{`null`, "$.a", `2`, ""},
	}
	for _, tc := range tests {
		p, err := parsePath(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		root := mustDecode(t, tc.root)
		before := string(marshal(root))
		got, ok := p.set(root, mustDecode(t, tc.value))
		if tc.want == "" {
			if ok {
				t.Errorf("set(%s, %q) = %s, want failure", tc.root, tc.path, marshal(got))
			}
			continue
		}
		if !ok || string(marshal(got)) != tc.want {
			t.Errorf("set(%s, %q) = %s, %v, want %s", tc.root, tc.path, marshal(got), ok, tc.want)
		}
		if after := string(marshal(root)); after != before {
			t.Errorf("set(%s, %q) modified its input to %s", tc.root, tc.path, after)
		}
	}
}
