package importer

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
)

// entry is a Bundle entry checked and ready to apply.
type entry struct {
	at    loc
	phase int // transaction processing order, see bundle
	// del is set for DELETE entries.
	del *bulk.Ref
	// typ, id and raw for entries that store a resource; newID is set when
	// the id was not in the resource and had to be given to it.
	typ, id string
	newID   bool
	raw     string
}

// Transaction processing order (R4 http.html#trules): DELETE, then POST,
// then PUT; GET and HEAD read nothing to import.
const (
	phaseDelete = iota
	phasePost
	phasePut
)

// bundle imports the entries of a transaction, batch or collection Bundle.
// `urn:uuid:` fullUrls name entries, and references to them are rewritten to
// the entries' Type/id.
func (im *importer) bundle(at loc, doc []byte, bundleType string, multiline bool) error {
	// The entries of a Bundle file are its units (Position); a resumed one
	// reported its entries' faults before its first unit was stored.
	units := multiline && im.depth == 1
	skip := int64(0)
	if units && im.file == im.opts.Resume.File {
		skip = im.opts.Resume.Unit
	}
	im.quiet = skip > 0
	var entries []entry
	urns := map[string]string{}
	line, pos := at.line, 0 // line is the line of doc[pos]
	i := -1
	gjson.GetBytes(doc, "entry").ForEach(func(_, e gjson.Result) bool {
		i++
		ea := at
		ea.entry = i
		if multiline && e.Index > pos && e.Index <= len(doc) {
			line += bytes.Count(doc[pos:e.Index], []byte{'\n'})
			pos = e.Index
			ea.line = line
		}
		if en, ok := im.entry(ea, e); ok {
			entries = append(entries, en)
			if fullURL := e.Get("fullUrl").String(); en.del == nil && strings.HasPrefix(fullURL, "urn:uuid:") {
				urns[fullURL[len("urn:uuid:"):]] = en.typ + "/" + en.id
			}
		}
		return true
	})
	if bundleType == "transaction" {
		slices.SortStableFunc(entries, func(a, b entry) int { return cmp.Compare(a.phase, b.phase) })
	}
	im.quiet = false
	for i, en := range entries {
		if units {
			if int64(i) < skip {
				im.unitDone() // stored before Options.Resume
				continue
			}
			if im.stopping() {
				return ErrStopped
			}
		}
		if err := im.apply(en, urns); err != nil {
			return err
		}
		if units {
			im.unitDone()
		}
	}
	return nil
}

// apply queues what one checked entry does.
func (im *importer) apply(en entry, urns map[string]string) error {
	if en.del != nil {
		return im.delete(*en.del)
	}
	id := ""
	if en.newID {
		id = en.id
	}
	return im.resource(en.at, en.typ, id, compact([]byte(en.raw)), urns)
}

// entry checks a Bundle entry; ok is false for an entry that was reported
// or that has nothing to import.
func (im *importer) entry(at loc, e gjson.Result) (en entry, ok bool) {
	en.at = at
	if !e.IsObject() {
		im.lineError(at, "not an object")
		return en, false
	}
	method := e.Get("request.method").String()
	url := e.Get("request.url").String()
	res := e.Get("resource")
	switch method {
	case "DELETE":
		typ, id, ok := fhir.ParseReference(url)
		if !ok {
			im.lineError(at, "DELETE of %q: only Type/id deletes are supported", url)
			return en, false
		}
		en.phase, en.del = phaseDelete, &bulk.Ref{Type: typ, ID: id}
		return en, true
	case "GET", "HEAD":
		return en, false
	case "POST":
		en.phase = phasePost
	case "PUT", "":
		// Collections have no request; they store what they hold.
		en.phase = phasePut
	default:
		im.lineError(at, "request.method %q is not supported", method)
		return en, false
	}
	if !res.IsObject() {
		im.lineError(at, "no resource")
		return en, false
	}
	typ, msg := resourceType(im.model, res.Get("resourceType"))
	if msg != "" {
		im.lineError(at, "%s", msg)
		return en, false
	}
	en.typ, en.raw = typ, res.Raw

	// A PUT names its resource in its url (conditional updates do not).
	urlType, urlID, isRef := fhir.ParseReference(url)
	if method == "PUT" && isRef && urlType != typ {
		im.lineError(at, "PUT %s of a %s", url, typ)
		return en, false
	}
	switch v := res.Get("id"); {
	case v.Exists():
		if v.Type != gjson.String || !fhir.IsID(v.Str) {
			im.lineError(at, "invalid id %s", v.Raw)
			return en, false
		}
		if method == "PUT" && isRef && v.Str != urlID {
			im.lineError(at, "id %q does not match request.url %q", v.Str, url)
			return en, false
		}
		en.id = v.Str
	case method == "PUT" && isRef:
		en.id, en.newID = urlID, true
	default:
		en.id, en.newID = deriveID(e.Get("fullUrl").String(), res.Raw), true
	}
	return en, true
}

// deriveID gives a resource without an id a deterministic one, so that
// importing the same Bundle twice replaces rather than duplicates: the uuid
// of a `urn:uuid:` fullUrl, or else a name-based id hashed from the
// resource's JSON.
func deriveID(fullURL, raw string) string {
	if uuid, ok := strings.CutPrefix(fullURL, "urn:uuid:"); ok && fhir.IsID(uuid) {
		return uuid
	}
	if _, id, ok := fhir.ParseReference(fullURL); ok {
		return id
	}
	h := sha256.Sum256(compact([]byte(raw)))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
