package importer

import (
	"errors"
	"testing"
	"time"
)

func TestHasSpace(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{`{"a":"b c"}`, false},
		{`{"a": "b"}`, true},
		{`{"a":"x\"y z"}`, false},
		{`{"a":"x\\"} `, true},
		{`{"a":"x\\\"y z"}`, false},
		{`{"a":["b\n c"]}`, false},
		{"{\"a\":\n1}", true},
		{`{"a":1}`, false},
	} {
		if got := hasSpace([]byte(tc.in)); got != tc.want {
			t.Errorf("hasSpace(%s) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestCompact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":"b c"}`, `{"a":"b c"}`},
		{"{\n  \"a\": [ 1, \"b c\" ],\r\n  \"d\": {}\n}", `{"a":[1,"b c"],"d":{}}`},
	} {
		if got := string(compact([]byte(tc.in))); got != tc.want {
			t.Errorf("compact(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestAppendMeta(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"resourceType":"Patient","id":"p"}`, `{"resourceType":"Patient","id":"p","meta":{"lastUpdated":"T"}}`},
		{`{}`, `{"meta":{"lastUpdated":"T"}}`},
	} {
		if got := string(appendMeta([]byte(tc.in), "T")); got != tc.want {
			t.Errorf("appendMeta(%s, T) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestRewriteURNRefs(t *testing.T) {
	known := map[string]string{"a": "Patient/a", "b": "Practitioner/b"}
	resolve := func(uuid string) (string, error) { return known[uuid], nil }
	for _, tc := range []struct {
		name, in   string
		want       string // "" for unchanged
		unresolved int
	}{
		{name: "None", in: `{"subject":{"reference":"Patient/a"}}`},
		{
			name: "Some",
			in:   `{"subject":{"reference":"urn:uuid:a"},"performer":[{"reference":"urn:uuid:b"},{"reference":"urn:uuid:c"}]}`,
			want: `{"subject":{"reference":"Patient/a"},"performer":[{"reference":"Practitioner/b"},{"reference":"urn:uuid:c"}]}`, unresolved: 1,
		},
		{name: "OnlyUnknown", in: `{"subject":{"reference":"urn:uuid:c"}}`, unresolved: 1},
		{name: "NotAReference", in: `{"url":"urn:uuid:a","note":"\"reference\":\"urn:uuid:a\""}`},
		{name: "Escaped", in: `{"subject":{"reference":"urn:uuid:a\"b"}}`, unresolved: 1},
		{name: "AtEnd", in: `{"a":{"reference":"urn:uuid:a"}}`, want: `{"a":{"reference":"Patient/a"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, unresolved, err := rewriteURNRefs([]byte(tc.in), resolve)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want || unresolved != tc.unresolved {
				t.Errorf("rewriteURNRefs(%s) = %s, %d, want %s, %d", tc.in, got, unresolved, tc.want, tc.unresolved)
			}
		})
	}
	wantErr := errors.New("store down")
	_, _, err := rewriteURNRefs([]byte(`{"a":{"reference":"urn:uuid:a"}}`), func(string) (string, error) { return "", wantErr })
	if !errors.Is(err, wantErr) {
		t.Errorf("rewriteURNRefs(failing resolve) = %v, want %v", err, wantErr)
	}
}

func TestParseInstant(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2020-01-02T03:04:05Z", time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC), true},
		{"2020-01-02T03:04:05.123456789+14:00", time.Date(2020, 1, 1, 13, 4, 5, 123456789, time.UTC), true},
		{"2020-01-02T03:04:05-05:30", time.Date(2020, 1, 2, 8, 34, 5, 0, time.UTC), true},
		{"2020-01-02", time.Time{}, false},
		{"2020-01-02T03:04Z", time.Time{}, false},
		{"2020-01-02T03:04:05", time.Time{}, false},
		{"2020-01-02 03:04:05Z", time.Time{}, false},
		{"2020-02-30T00:00:00Z", time.Time{}, false},
		{"2020-01-02T24:00:00Z", time.Time{}, false},
		{"2020-01-02T03:04:05+15:00", time.Time{}, false},
		{"0000-01-02T03:04:05Z", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, ok := parseInstant(tc.in)
		if !got.Equal(tc.want) || ok != tc.ok {
			t.Errorf("parseInstant(%q) = %v, %v, want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDeriveID(t *testing.T) {
	raw := `{"resourceType":"Procedure","status":"completed"}`
	hashed := deriveID("", raw)
	for _, tc := range []struct{ fullURL, raw, want string }{
		{"urn:uuid:0f1e2d3c-aaaa-bbbb-cccc-000000000001", raw, "0f1e2d3c-aaaa-bbbb-cccc-000000000001"},
		{"https://h/fhir/Procedure/pr1", raw, "pr1"},
		{"", raw, hashed},
		{"", "{\n  \"resourceType\": \"Procedure\",\n  \"status\": \"completed\"\n}", hashed},
		{"urn:oid:1.2.3", raw, hashed},
	} {
		if got := deriveID(tc.fullURL, tc.raw); got != tc.want {
			t.Errorf("deriveID(%q, %s) = %q, want %q", tc.fullURL, tc.raw, got, tc.want)
		}
	}
	if len(hashed) != 36 {
		t.Errorf("deriveID(\"\", %s) = %q, want 36 characters", raw, hashed)
	}
	if other := deriveID("", `{"resourceType":"Procedure","status":"stopped"}`); other == hashed {
		t.Errorf("deriveID gave %q to two different resources", other)
	}
}
