package search

import (
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tranchehq/tranche/internal/fhir"
)

// refValue is one reference search value (R4 search.html#reference):
// Type/id, a bare id, or an absolute URL. URLs are compared by their Type/id
// tail, because this library does not know the server's base URL; a URL or
// URN that names no Type/id (urn:uuid:…, a canonical) is compared literally.
type refValue struct {
	typ, id string // typ may be empty for a bare id; id empty for a literal
	literal string
}

// parseRef parses a reference search value; typ is the :[type] modifier, if
// any, and isType tells the resource types of the engine's release: a
// Type/id of another release's type is none of the accepted forms, and an
// absolute URL ending in one is compared literally. ok is false for a value
// that is none of the accepted forms.
func parseRef(raw, typ string, isType func(string) bool) (refValue, bool) {
	if t, id, ok := fhir.ParseReference(raw); ok && isType(t) {
		if typ != "" && t != typ {
			return refValue{}, false
		}
		return refValue{typ: t, id: id, literal: raw}, true
	}
	if fhir.IsID(raw) {
		return refValue{typ: typ, id: raw, literal: raw}, true
	}
	if strings.Contains(raw, ":") && !strings.ContainsAny(raw, " \t\r\n") {
		return refValue{literal: raw}, true
	}
	return refValue{}, false
}

// match reports whether v, a Reference or a canonical (a string), points at
// the searched resource. A where(resolve() is T) in the parameter's
// expression admits only references to a T.
func (r refValue) match(v gjson.Result, p *path) bool {
	var ref string
	switch {
	case v.Type == gjson.String:
		ref = v.Str // canonical
	case v.IsObject():
		ref = v.Get("reference").String()
	}
	if ref == "" {
		return false
	}
	typ, id, ok := fhir.ParseReference(ref)
	if p != nil && p.target != "" && (!ok || typ != p.target) {
		return false
	}
	if !ok || r.id == "" {
		return ref == r.literal
	}
	return id == r.id && (r.typ == "" || r.typ == typ)
}

// refPresent reports whether v counts as a value of a reference parameter
// for :missing: with a where(resolve() is T), only a reference to a T does.
func refPresent(v gjson.Result, p *path) bool {
	if p.target == "" {
		return true
	}
	typ, _, ok := fhir.ParseReference(v.Get("reference").String())
	return ok && typ == p.target
}
