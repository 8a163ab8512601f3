package search

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"github.com/tranchehq/tranche/internal/bulk"
)

// subsettedTag is the meta.tag a subsetted resource gains (1.4.5, R21), so
// that it is never taken for the full resource.
const (
	subsettedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	subsettedTag    = `{"system":"` + subsettedSystem + `","code":"SUBSETTED"}`
)

// Elements is a parsed _elements parameter: the top-level elements to keep,
// per type. The zero value keeps everything. It is immutable and safe for
// concurrent use.
type Elements struct {
	// sets holds what to keep for each type the list applies to.
	sets map[string]*keepSet
}

// keepSet is what Subset keeps of one type: element names, and choice
// element base names whose variants (effectiveDateTime, …) are kept too.
type keepSet struct {
	names   map[string]bool
	choices []string
}

// ParseElements parses _elements values: comma-separated lists, repeats
// joined. Each entry is "Type.element", which applies to that type, or a
// bare "element", which applies to every type (R22). Only top-level
// elements are allowed; a choice element is named by its base name
// ("effective", or "effective[x]") or by one variant ("effectiveDateTime").
// What Subset keeps besides (mandatory elements) and which elements are
// choices are the engine's release's. Returns EINVALID for a nested path, a
// type that is not a resource type of the release or a malformed element
// name.
func (e *Engine) ParseElements(values []string) (Elements, error) {
	var all []string
	byType := make(map[string][]string)
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			typ, elem, typed := strings.Cut(item, ".")
			if !typed {
				typ, elem = "", item
			}
			switch {
			case strings.Contains(elem, ".") || (typed && isElementName(typ)):
				return Elements{}, bulk.Errorf(bulk.EINVALID, "_elements %s is a nested path; only top-level elements such as Patient.name are allowed.", quote(item))
			case typed && !e.defs.IsResourceType(typ):
				return Elements{}, bulk.Errorf(bulk.EINVALID, "_elements %s: %s is not a FHIR %s resource type.", quote(item), quote(typ), e.name)
			case !isElementName(elem):
				return Elements{}, bulk.Errorf(bulk.EINVALID, "_elements %s is not an element name such as Patient.id or id.", quote(item))
			}
			if typed {
				byType[typ] = append(byType[typ], elem)
			} else {
				all = append(all, elem)
			}
		}
	}
	if len(all) == 0 && len(byType) == 0 {
		return Elements{}, nil
	}
	out := Elements{sets: make(map[string]*keepSet)}
	for _, typ := range e.defs.ResourceTypes() {
		if len(all) == 0 && len(byType[typ]) == 0 {
			continue
		}
		ks := &keepSet{names: map[string]bool{"resourceType": true, "id": true, "meta": true}}
		for _, list := range [][]string{e.defs.Mandatory(typ), all, byType[typ]} {
			for _, name := range list {
				ks.add(e.choices[typ], name)
			}
		}
		out.sets[typ] = ks
	}
	return out, nil
}

// ParseElements is ParseElements of the R4 engine.
func ParseElements(values []string) (Elements, error) { return r4().ParseElements(values) }

// add keeps name, an element of a type whose top-level choice elements are
// choices (by base name).
func (ks *keepSet) add(choices []string, name string) {
	base, isChoice := strings.CutSuffix(name, "[x]")
	if !isChoice && slices.Contains(choices, base) {
		isChoice = true
	}
	if isChoice {
		if !slices.Contains(ks.choices, base) {
			ks.choices = append(ks.choices, base)
		}
		return
	}
	ks.names[base] = true
}

// keep reports whether the top-level JSON key is kept. "_x", the extensions
// of primitive x, follows x.
func (ks *keepSet) keep(key string) bool {
	if key == "resourceType" {
		return true
	}
	key = strings.TrimPrefix(key, "_")
	if ks.names[key] {
		return true
	}
	for _, c := range ks.choices {
		if len(key) > len(c) && strings.HasPrefix(key, c) && 'A' <= key[len(c)] && key[len(c)] <= 'Z' {
			return true
		}
	}
	return false
}

// isElementName reports whether s is an element name: a lower-case letter,
// then letters and digits, optionally ending in "[x]".
func isElementName(s string) bool {
	s = strings.TrimSuffix(s, "[x]")
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	return isIdent(s)
}

// Subset returns body with only the listed top-level elements for its type,
// plus resourceType, id, meta and the type's mandatory elements (those with
// min ≥ 1 in the release's StructureDefinition), in their original order,
// and with meta.tag gaining the SUBSETTED code of
// http://terminology.hl7.org/CodeSystem/v3-ObservationValue (1.4.5, 5.6,
// R21). The output is compact JSON in a new slice. If the list does
// not apply to typ (no bare element and none for typ), or body is not a
// valid JSON object, body is returned unchanged and ok is false.
func (e Elements) Subset(typ string, body []byte) (out []byte, ok bool) {
	ks := e.sets[typ]
	// encoding/json validates without recursion (gjson.ValidBytes recurses
	// once per nesting level).
	if ks == nil || !json.Valid(body) {
		return body, false
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return body, false
	}
	out = make([]byte, 0, len(body))
	out = append(out, '{')
	n := 0
	afterID := -1 // where to insert meta if body has none
	hasMeta := false
	root.ForEach(func(k, v gjson.Result) bool {
		key := k.String()
		if !ks.keep(key) {
			return true
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, k.Raw...)
		out = append(out, ':')
		if key == "meta" && !hasMeta {
			hasMeta = true
			out = append(out, taggedMeta(v)...)
		} else {
			out = append(out, v.Raw...)
		}
		n++
		if key == "resourceType" || key == "id" {
			afterID = len(out)
		}
		return true
	})
	out = append(out, '}')
	if !hasMeta {
		meta := `"meta":{"tag":[` + subsettedTag + `]}`
		switch {
		case afterID >= 0:
			out = append(out[:afterID], append([]byte(","+meta), out[afterID:]...)...)
		case n == 0:
			out = append(out[:1], append([]byte(meta), out[1:]...)...)
		default:
			out = append(out[:1], append([]byte(meta+","), out[1:]...)...)
		}
	}
	if bytes.ContainsAny(out, " \t\r\n") {
		var buf bytes.Buffer
		if json.Compact(&buf, out) == nil {
			out = buf.Bytes()
		}
	}
	return out, true
}

// taggedMeta returns the raw JSON of meta with the SUBSETTED tag added, or
// unchanged if it has it already.
func taggedMeta(meta gjson.Result) string {
	if !meta.IsObject() {
		return `{"tag":[` + subsettedTag + `]}`
	}
	tags := meta.Get("tag")
	if !tags.IsArray() {
		// Absent, or malformed: in both cases the tag list is just ours.
		raw, err := sjson.SetRaw(meta.Raw, "tag", "["+subsettedTag+"]")
		if err != nil {
			return `{"tag":[` + subsettedTag + `]}`
		}
		return raw
	}
	found := false
	tags.ForEach(func(_, t gjson.Result) bool {
		found = t.Get("system").String() == subsettedSystem && t.Get("code").String() == "SUBSETTED"
		return !found
	})
	if found {
		return meta.Raw
	}
	raw, err := sjson.SetRaw(meta.Raw, "tag.-1", subsettedTag)
	if err != nil {
		return `{"tag":[` + subsettedTag + `]}`
	}
	return raw
}
