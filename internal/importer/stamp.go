package importer

import (
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/tranchehq/tranche/internal/bulk"
)

// SourceLastUpdatedURL is the meta.extension in which an import keeps a
// resource's own meta.lastUpdated (valueInstant, as it was written) when
// the store's clock sets meta.lastUpdated: the time the source system
// gave, which `_since` no longer goes by. Importing again replaces it with
// the lastUpdated of the file imported (a Tranche export's is the exporting
// server's stamp).
const SourceLastUpdatedURL = bulk.SourceLastUpdatedURL

// placeholder stands in for meta.lastUpdated until the writer stamps the
// resource: an instant as long as every stamp (instantLayout in UTC), so the
// stamp overwrites it in place.
const placeholder = "0001-01-01T00:00:00.000Z"

// stampMeta prepares the compact body for the clock's stamp: meta.lastUpdated
// becomes the placeholder, at the returned offset, and a lastUpdated it had
// moves to the SourceLastUpdatedURL extension of meta (replacing an earlier
// one), other members keeping their order. meta is body's meta, checked to
// be an object with a valid lastUpdated if it exists. msg reports a meta
// that cannot take the extension.
func stampMeta(body []byte, meta gjson.Result) (out []byte, off int, msg string) {
	if !meta.Exists() {
		out = appendMeta(body, placeholder)
		return out, len(out) - len(`"}}`) - len(placeholder), ""
	}
	end := meta.Index + len(meta.Raw)
	if meta.Index <= 0 || end > len(body) || string(body[meta.Index:end]) != meta.Raw {
		// Unreachable for a plain path; the slow way all the same.
		out, err := sjson.SetBytes(body, "meta.lastUpdated", placeholder)
		if err != nil {
			return nil, 0, "setting meta.lastUpdated: " + err.Error()
		}
		return out, -1, ""
	}
	src := meta.Get("lastUpdated")
	ext := meta.Get("extension")
	if src.Exists() && ext.Exists() && !ext.IsArray() {
		return nil, 0, "meta.extension is not an array"
	}
	var entry []byte
	if src.Exists() {
		entry = append(append([]byte(`{"url":"`+SourceLastUpdatedURL+`","valueInstant":`), src.Raw...), '}')
	}

	out = make([]byte, 0, len(body)+len(entry)+len(placeholder)+32)
	out = append(out, body[:meta.Index]...)
	out = append(out, '{')
	n := 0
	key := func(raw string) {
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(append(out, raw...), ':')
	}
	lastUpdated := func(raw string) {
		key(raw)
		out = append(out, '"')
		off = len(out)
		out = append(append(out, placeholder...), '"')
	}
	if entry != nil && !ext.Exists() {
		// Extensions come first in FHIR's element order.
		key(`"extension"`)
		out = append(append(append(out, '['), entry...), ']')
	}
	var doneLU, doneExt bool
	meta.ForEach(func(k, v gjson.Result) bool {
		switch {
		case k.Str == "lastUpdated":
			if !doneLU { // a repeated key is dropped
				lastUpdated(k.Raw)
			}
			doneLU = true
		case k.Str == "extension" && entry != nil:
			if doneExt {
				return true
			}
			doneExt = true
			key(k.Raw)
			out = append(out, '[')
			v.ForEach(func(_, e gjson.Result) bool {
				if e.Get("url").Str != SourceLastUpdatedURL {
					out = append(append(out, e.Raw...), ',')
				}
				return true
			})
			out = append(append(out, entry...), ']')
		default:
			key(k.Raw)
			out = append(out, v.Raw...)
		}
		return true
	})
	if !doneLU {
		lastUpdated(`"lastUpdated"`)
	}
	out = append(out, '}')
	return append(out, body[end:]...), off, ""
}

// setLastUpdated writes the stamp text into body's meta.lastUpdated: in
// place at off (the placeholder stampMeta left) or, when off is -1, where
// it finds the value, else with sjson.
func setLastUpdated(body []byte, off int, text string) ([]byte, error) {
	if off < 0 {
		if v := gjson.GetBytes(body, "meta.lastUpdated"); v.Type == gjson.String && v.Index > 0 && len(v.Str) == len(text) && len(v.Raw) == len(text)+2 {
			off = v.Index + 1
		}
	}
	if off > 0 && off+len(text) < len(body) && body[off-1] == '"' && body[off+len(text)] == '"' {
		copy(body[off:], text)
		return body, nil
	}
	return sjson.SetBytes(body, "meta.lastUpdated", text)
}
