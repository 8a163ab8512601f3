package fhir

import (
	"bytes"
	"strings"
)

// ParseReference parses a literal reference (R4 references.html#literal) to a
// resource of a type known in any supported release:
//
//	Patient/123
//	Patient/123/_history/4
//	https://example.org/fhir/Patient/123[/_history/4]
//
// Absolute references must use http or https, as the R4 Reference.reference
// pattern requires. Contained ("#p1"), "urn:uuid:" and "urn:oid:" references,
// conditional references ("Patient?identifier=…") and unknown types are not
// ok: they name no stored resource.
func ParseReference(s string) (typ, id string, ok bool) {
	p := s
	absolute := false
	if rest, found := strings.CutPrefix(p, "https://"); found {
		p, absolute = rest, true
	} else if rest, found := strings.CutPrefix(p, "http://"); found {
		p, absolute = rest, true
	}
	if absolute {
		// Drop the host; the base path before Type/id may be anything.
		i := strings.IndexByte(p, '/')
		if i <= 0 {
			return "", "", false
		}
		p = p[i+1:]
	}
	if i := strings.LastIndex(p, "/_history/"); i >= 0 {
		if !IsID(p[i+len("/_history/"):]) {
			return "", "", false
		}
		p = p[:i]
	}
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", "", false
	}
	id, p = p[i+1:], p[:i]
	if j := strings.LastIndexByte(p, '/'); j >= 0 {
		if !absolute {
			// A relative reference is exactly Type/id.
			return "", "", false
		}
		p = p[j+1:]
	}
	if !IsID(id) || !isAnyResourceType(p) {
		return "", "", false
	}
	return p, id, true
}

// IsID reports whether s is a valid resource id: 1–64 characters of
// [A-Za-z0-9\-\.] (R4 datatypes.html#id).
func IsID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// EachReference calls fn with the value of every "reference" element in a
// JSON resource, at any depth (Reference.reference, in arrays, extensions
// and contained resources alike). A JSON string cannot hold an unescaped
// quote, so the bytes `"reference"` followed by a colon are always that key:
// a byte scan finds them without decoding the resource. Values with escapes
// are skipped: no literal reference needs one.
func EachReference(body []byte, fn func(ref string)) {
	const key = `"reference"`
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(key))
		if j < 0 {
			return
		}
		k := skipSpace(body, i+j+len(key))
		i = i + j + len(key)
		if k >= len(body) || body[k] != ':' {
			continue
		}
		k = skipSpace(body, k+1)
		if k >= len(body) || body[k] != '"' {
			continue
		}
		end := bytes.IndexByte(body[k+1:], '"')
		if end < 0 {
			return
		}
		v := body[k+1 : k+1+end]
		i = k + 1 + end
		if bytes.IndexByte(v, '\\') < 0 {
			fn(string(v))
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
