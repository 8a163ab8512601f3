package search

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// splitEscaped splits s on sep where sep is not escaped by a backslash (R4
// search.html#escaping: "\,", "\|", "\$" and "\\"), into at most n parts
// (n <= 0: all). The parts keep their escapes; see unescape.
func splitEscaped(s string, sep byte, n int) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // skip the escaped byte
		case sep:
			if n > 0 && len(parts) == n-1 {
				return append(parts, s[start:])
			}
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// unescape removes the backslash of "\,", "\|", "\$" and "\\"; any other
// backslash is kept.
func unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case ',', '|', '$', '\\':
				i++
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// String matching (R4 search.html#string).
const (
	stringPrefix   = iota // default: starts with, ignoring case and accents
	stringExact           // :exact, exact and case-sensitive
	stringContains        // :contains, anywhere, ignoring case and accents
)

type stringValue struct {
	mode   int
	raw    string // for :exact
	folded string
}

// stringParts are the string fields of HumanName and Address that a string
// parameter on the whole datatype searches.
var stringParts = []string{"text", "family", "given", "prefix", "suffix", "line", "city", "district", "state", "postalCode", "country"}

func (s stringValue) match(v gjson.Result, _ *path) bool {
	switch v.Type {
	case gjson.String:
		return s.matchString(v.Str)
	case gjson.JSON:
		if !v.IsObject() {
			return false
		}
	default:
		return false
	}
	for _, k := range stringParts {
		part := v.Get(k)
		if part.Type == gjson.String && s.matchString(part.Str) {
			return true
		}
		if part.IsArray() {
			hit := false
			part.ForEach(func(_, e gjson.Result) bool {
				hit = e.Type == gjson.String && s.matchString(e.Str)
				return !hit
			})
			if hit {
				return true
			}
		}
	}
	return false
}

func (s stringValue) matchString(x string) bool {
	switch s.mode {
	case stringExact:
		return x == s.raw
	case stringContains:
		return strings.Contains(fold(x), s.folded)
	default:
		return hasFoldedPrefix(x, s.folded)
	}
}

// hasFoldedPrefix reports whether fold(x) starts with prefix, which is
// already folded.
func hasFoldedPrefix(x, prefix string) bool {
	if isASCII(x) {
		// Fast path: compare without allocating.
		if len(x) < len(prefix) {
			return false
		}
		for i := 0; i < len(prefix); i++ {
			c := x[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != prefix[i] {
				return false
			}
		}
		return true
	}
	return strings.HasPrefix(fold(x), prefix)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// fold lower-cases s and strips accents: combining marks are dropped and the
// precomposed Latin letters of Latin-1 and Latin Extended-A map to their
// base letters (é → e, ß → ss, Ł → l). Other scripts are only lower-cased.
func fold(s string) string {
	if isASCII(s) {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		r = unicode.ToLower(r)
		if m, ok := foldMap[r]; ok {
			b.WriteString(m)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// foldMap maps accented lower-case Latin letters to ASCII.
var foldMap = func() map[rune]string {
	m := make(map[rune]string)
	for _, pair := range []struct{ from, to string }{
		{"àáâãäåāăą", "a"}, {"æ", "ae"}, {"çćĉċč", "c"}, {"ďđð", "d"},
		{"èéêëēĕėęě", "e"}, {"ĝğġģ", "g"}, {"ĥħ", "h"}, {"ìíîïĩīĭįı", "i"},
		{"ĳ", "ij"}, {"ĵ", "j"}, {"ķĸ", "k"}, {"ĺļľŀł", "l"}, {"ñńņňŉŋ", "n"},
		{"òóôõöøōŏő", "o"}, {"œ", "oe"}, {"ŕŗř", "r"}, {"śŝşšſ", "s"}, {"ß", "ss"},
		{"ţťŧ", "t"}, {"þ", "th"}, {"ùúûüũūŭůűų", "u"}, {"ŵ", "w"}, {"ýÿŷ", "y"},
		{"źżž", "z"},
	} {
		for _, r := range pair.from {
			m[r] = pair.to
		}
	}
	return m
}()

// URI matching (R4 search.html#uri).
const (
	uriExact = iota
	uriBelow // :below, the resource's URI starts with the value
	uriAbove // :above, the value starts with the resource's URI
)

type uriValue struct {
	mode int
	uri  string
}

func (u uriValue) match(v gjson.Result, _ *path) bool {
	if v.Type != gjson.String {
		return false
	}
	switch u.mode {
	case uriBelow:
		return strings.HasPrefix(v.Str, u.uri)
	case uriAbove:
		return v.Str != "" && strings.HasPrefix(u.uri, v.Str)
	default:
		return v.Str == u.uri
	}
}
