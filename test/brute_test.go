package test

import (
	"strings"
	"time"
)

// Brute-force stand-ins for the server's search engine: each reads the
// decoded input resource directly, knowing nothing of search parameter
// definitions, so a test that compares the server's _typeFilter output with
// them checks the engine against an independent reading of the data.

// bf is a brute-force filter set: per type, predicates that are OR-ed, as
// several _typeFilter queries for one type are (R27); types without any
// pass (R28).
type bf map[string][]func(m map[string]any) bool

func (f bf) match(r *inputResource) bool {
	preds, ok := f[r.Type]
	if !ok {
		return true
	}
	for _, p := range preds {
		if p(r.json()) {
			return true
		}
	}
	return false
}

// and combines two brute-force filters: a resource must pass both.
func and(a, b func(*inputResource) bool) func(*inputResource) bool {
	return func(r *inputResource) bool { return a(r) && b(r) }
}

// codings returns the codings of a CodeableConcept, a Coding, or a list of
// either.
func codings(v any) []map[string]any {
	var out []map[string]any
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = append(out, codings(e)...)
		}
	case map[string]any:
		if cs, ok := x["coding"].([]any); ok {
			for _, c := range cs {
				if cm, ok := c.(map[string]any); ok {
					out = append(out, cm)
				}
			}
		} else if _, ok := x["code"]; ok {
			out = append(out, x)
		}
	}
	return out
}

// coded reports whether element key of m has a coding with code (and
// system, unless empty).
func coded(m map[string]any, key, system, code string) bool {
	for _, c := range codings(m[key]) {
		if c["code"] == code && (system == "" || c["system"] == system) {
			return true
		}
	}
	return false
}

// strIs reports whether element key of m is the string s.
func strIs(m map[string]any, key, s string) bool { return m[key] == s }

// refIs reports whether element key of m (a Reference or a list of them)
// references ref.
func refIs(m map[string]any, key, ref string) bool {
	switch x := m[key].(type) {
	case map[string]any:
		return x["reference"] == ref
	case []any:
		for _, e := range x {
			if em, ok := e.(map[string]any); ok && em["reference"] == ref {
				return true
			}
		}
	}
	return false
}

// instant parses element key of m as a dateTime with a time, or reports
// false.
func instant(m map[string]any, key string) (time.Time, bool) {
	s, _ := m[key].(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// familyStarts reports whether a name of a Patient has a family name that
// starts with prefix, ignoring case (string search, R4 search.html#string).
func familyStarts(m map[string]any, prefix string) bool {
	names, _ := m["name"].([]any)
	for _, n := range names {
		nm, _ := n.(map[string]any)
		if f, ok := nm["family"].(string); ok && strings.HasPrefix(strings.ToLower(f), strings.ToLower(prefix)) {
			return true
		}
	}
	return false
}
