package importer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
)

// line imports one NDJSON line: a resource or a Bundle.
func (im *importer) line(at loc, line []byte) error {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil // blank lines, such as a trailing one, are not errors
	}
	if !gjson.ValidBytes(line) {
		im.lineError(at, "invalid JSON")
		return nil
	}
	return im.document(at, line, false)
}

// document imports one valid JSON value. multiline says whether it spans
// lines, so that Bundle entries get their own line numbers.
func (im *importer) document(at loc, doc []byte, multiline bool) error {
	if doc[0] != '{' {
		im.lineError(at, "not a JSON object")
		return nil
	}
	typ, msg := resourceType(im.model, gjson.GetBytes(doc, "resourceType"))
	if msg != "" {
		im.lineError(at, "%s", msg)
		return nil
	}
	if typ == "Bundle" {
		switch bt := gjson.GetBytes(doc, "type"); bt.String() {
		case "transaction", "batch", "collection":
			return im.bundle(at, doc, bt.Str, multiline)
		case "document", "message":
			// Resources in their own right, stored as such.
		default:
			im.lineError(at, "%s", bundleTypeError(bt))
			return nil
		}
	}
	return im.resource(at, typ, "", compact(doc), nil)
}

// bundleTypeError says why a Bundle of type bt is not imported, and which
// Bundles are. A searchset or history is what a FHIR server returns, not
// data to load: storing it as one Bundle resource hid its entries.
func bundleTypeError(bt gjson.Result) string {
	what := "a Bundle without a type"
	switch {
	case bt.Type == gjson.String:
		what = fmt.Sprintf("a %s Bundle", bt.Str)
	case bt.Exists():
		what = fmt.Sprintf("a Bundle of type %s", bt.Raw)
	}
	hint := ""
	switch bt.String() {
	case "searchset", "history":
		hint = `; to import search results, save them as NDJSON or set "type":"collection"`
	}
	return what + " does not import: the entries of transaction, batch and collection Bundles import, and document and message Bundles are stored whole" + hint
}

// resourceType checks a resourceType value.
func resourceType(m *fhir.Model, v gjson.Result) (typ, msg string) {
	switch {
	case !v.Exists():
		return "", "no resourceType"
	case v.Type != gjson.String:
		return "", fmt.Sprintf("resourceType %s is not a string", v.Raw)
	case !m.IsResourceType(v.Str):
		return "", fmt.Sprintf("unknown resourceType %q (this store holds FHIR %s)", v.Str, m.Name)
	}
	return v.Str, ""
}

// resource finishes and queues one resource. body is compact JSON that the
// importer owns. id, when set, replaces the resource's id (a Bundle entry
// that had none). urns, when set, maps the `urn:uuid:` fullUrls of a Bundle
// to Type/id references.
func (im *importer) resource(at loc, typ, id string, body []byte, urns map[string]string) error {
	var err error
	if id != "" {
		if body, err = sjson.SetBytes(body, "id", id); err != nil {
			im.lineError(at, "setting id: %v", err)
			return nil
		}
	} else {
		v := gjson.GetBytes(body, "id")
		switch {
		case !v.Exists():
			im.lineError(at, "%s without id", typ)
			return nil
		case v.Type != gjson.String || !fhir.IsID(v.Str):
			im.lineError(at, "invalid id %s", v.Raw)
			return nil
		}
		id = v.Str
	}

	meta := gjson.GetBytes(body, "meta")
	if !im.opts.KeepLastUpdated {
		switch lu := meta.Get("lastUpdated"); {
		case meta.Exists() && !meta.IsObject():
			im.lineError(at, "meta is not an object")
			return nil
		case lu.Exists():
			// The store's clock replaces it, but it is kept as it was
			// (stampMeta): it must be an instant all the same.
			if _, ok := parseInstant(lu.Str); lu.Type != gjson.String || !ok {
				im.lineError(at, "meta.lastUpdated %s is not a FHIR instant", lu.Raw)
				return nil
			}
		}
		body, rewritten := im.resolveURNs(typ, id, body, urns)
		if rewritten {
			meta = gjson.GetBytes(body, "meta")
		}
		body, off, msg := stampMeta(body, meta)
		if msg != "" {
			im.lineError(at, "%s", msg)
			return nil
		}
		// LastUpdated is the writer's to set, with the stamp.
		return im.add(newResource(im.model, typ, id, time.Time{}, body), off)
	}

	var lastUpdated time.Time
	switch lu := meta.Get("lastUpdated"); {
	case !meta.Exists():
		// The common case, done by hand: sjson would scan body again.
		body = appendMeta(body, im.nowText)
		lastUpdated = im.now
	case !meta.IsObject():
		im.lineError(at, "meta is not an object")
		return nil
	case !lu.Exists():
		if body, err = sjson.SetBytes(body, "meta.lastUpdated", im.nowText); err != nil {
			im.lineError(at, "setting meta.lastUpdated: %v", err)
			return nil
		}
		lastUpdated = im.now
	default:
		t, ok := parseInstant(lu.Str)
		if lu.Type != gjson.String || !ok {
			im.lineError(at, "meta.lastUpdated %s is not a FHIR instant", lu.Raw)
			return nil
		}
		lastUpdated = t
	}
	body, _ = im.resolveURNs(typ, id, body, urns)
	return im.add(newResource(im.model, typ, id, lastUpdated, body), -1)
}

// resolveURNs rewrites the `urn:uuid:` references of body that urns
// resolves, and notes the resource for the last pass if any are left.
func (im *importer) resolveURNs(typ, id string, body []byte, urns map[string]string) (_ []byte, rewritten bool) {
	if !bytes.Contains(body, urnRefPrefix) {
		return body, false
	}
	if len(urns) > 0 {
		resolved, _, _ := rewriteURNRefs(body, func(uuid string) (string, error) { return urns[uuid], nil })
		if resolved != nil {
			body, rewritten = resolved, true
		}
	}
	if bytes.Contains(body, urnRefPrefix) {
		im.deferred = append(im.deferred, bulk.Ref{Type: typ, ID: id})
	}
	return body, rewritten
}

// newResource fills in what the indexes need.
func newResource(m *fhir.Model, typ, id string, lastUpdated time.Time, body []byte) *bulk.Resource {
	r := &bulk.Resource{
		Type:        typ,
		ID:          id,
		LastUpdated: lastUpdated,
		Body:        body,
		Patients:    m.PatientCompartment(typ, id, body),
	}
	if typ == "Group" {
		r.Members = fhir.GroupMembers(body)
	}
	return r
}

// metaSlack is room for appendMeta: `,"meta":{"lastUpdated":""}` and an
// instant.
const metaSlack = 64

// appendMeta adds meta.lastUpdated to a compact object that has no meta.
func appendMeta(body []byte, instant string) []byte {
	end := len(body) - 1 // the closing '}'
	out := body[:end]
	if out[len(out)-1] != '{' {
		out = append(out, ',')
	}
	out = append(out, `"meta":{"lastUpdated":"`...)
	out = append(out, instant...)
	return append(out, `"}}`...)
}

// compact returns a compact copy of the valid JSON src, with room for
// appendMeta. Most NDJSON is compact already: then it is a plain copy.
func compact(src []byte) []byte {
	if !hasSpace(src) {
		out := make([]byte, len(src), len(src)+metaSlack)
		copy(out, src)
		return out
	}
	buf := bytes.NewBuffer(make([]byte, 0, len(src)+metaSlack))
	if err := json.Compact(buf, src); err != nil {
		// Unreachable: src was validated. Keep it as it is.
		return append(make([]byte, 0, len(src)+metaSlack), src...)
	}
	return buf.Bytes()
}

// hasSpace reports whether the valid JSON b has whitespace outside strings.
func hasSpace(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			return true
		case '"':
			// Jump to the closing quote: the next one not escaped, that is
			// not preceded by an odd number of backslashes.
			for {
				j := bytes.IndexByte(b[i+1:], '"')
				if j < 0 {
					return false
				}
				i += 1 + j
				n := 0
				for k := i - 1; b[k] == '\\'; k-- {
					n++
				}
				if n%2 == 0 {
					break
				}
			}
		}
	}
	return false
}
