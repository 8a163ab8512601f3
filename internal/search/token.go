package search

import (
	"github.com/tidwall/gjson"
)

// tokenValue is one token search value (R4 search.html#token):
//
//	code          any system
//	system|code   that system and code
//	|code         a code without a system
//	system|       any code of that system
type tokenValue struct {
	system, code string
	hasSystem    bool // a "|" was given, so system is constrained
}

func parseToken(raw string) tokenValue {
	parts := splitEscaped(raw, '|', 2)
	if len(parts) == 1 {
		return tokenValue{code: unescape(parts[0])}
	}
	return tokenValue{system: unescape(parts[0]), code: unescape(parts[1]), hasSystem: true}
}

// match reports whether v, an element reached by a token parameter, matches:
// a Coding, CodeableConcept (any coding), Identifier or ContactPoint
// (system|value), or a code, string, id, uri or boolean primitive. A
// primitive has no system of its own (it is implied by the element's
// binding, which this engine does not know), so only its code is compared.
func (t tokenValue) match(v gjson.Result, _ *path) bool {
	switch v.Type {
	case gjson.String:
		return t.code == "" || v.Str == t.code
	case gjson.True, gjson.False, gjson.Number:
		return t.code == "" || v.Raw == t.code
	case gjson.JSON:
		if !v.IsObject() {
			return false
		}
	default:
		return false
	}
	if coding := v.Get("coding"); coding.Exists() {
		hit := false
		coding.ForEach(func(_, c gjson.Result) bool {
			if c.IsObject() && t.matchPair(c.Get("system"), c.Get("code")) {
				hit = true
			}
			return !hit
		})
		return hit
	}
	if code := v.Get("code"); code.Exists() {
		return t.matchPair(v.Get("system"), code)
	}
	// Identifier or ContactPoint.
	return t.matchPair(v.Get("system"), v.Get("value"))
}

func (t tokenValue) matchPair(system, code gjson.Result) bool {
	if t.hasSystem {
		if t.system == "" {
			if system.Exists() && system.String() != "" {
				return false
			}
		} else if system.Type != gjson.String || system.Str != t.system {
			return false
		}
	}
	if t.code == "" {
		return t.hasSystem // "system|": any code of the system
	}
	switch code.Type {
	case gjson.String:
		return code.Str == t.code
	case gjson.True, gjson.False, gjson.Number:
		return code.Raw == t.code
	}
	return false
}

// tokenText is a token value under :text: a case- and accent-insensitive
// prefix match on CodeableConcept.text and the display of its codings, or on
// a Coding's display.
type tokenText struct {
	folded string
}

func (t tokenText) match(v gjson.Result, _ *path) bool {
	if !v.IsObject() {
		return false
	}
	hit := false
	test := func(s gjson.Result) {
		if !hit && s.Type == gjson.String && hasFoldedPrefix(s.Str, t.folded) {
			hit = true
		}
	}
	test(v.Get("text"))
	test(v.Get("display"))
	v.Get("coding").ForEach(func(_, c gjson.Result) bool {
		test(c.Get("display"))
		return !hit
	})
	return hit
}
