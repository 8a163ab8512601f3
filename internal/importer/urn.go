package importer

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
)

// urnRefPrefix starts a `urn:uuid:` Reference.reference in compact JSON. In
// valid compact JSON these bytes can only be a "reference" key and the start
// of its string value: inside a string the quotes would be escaped.
var urnRefPrefix = []byte(`"reference":"urn:uuid:`)

// rewriteURNRefs replaces each `urn:uuid:` reference in the compact JSON
// body for which resolve returns a Type/id reference. It returns the new body,
// or nil when nothing changed, and the number of references resolve left
// alone (returned "" for).
func rewriteURNRefs(body []byte, resolve func(uuid string) (string, error)) (out []byte, unresolved int, err error) {
	last := 0 // body[:last] is in out already
	for i := 0; ; {
		j := bytes.Index(body[i:], urnRefPrefix)
		if j < 0 {
			break
		}
		start := i + j + len(`"reference":"`) // the value, urn:uuid:…
		end := bytes.IndexByte(body[start:], '"')
		if end < 0 {
			break
		}
		end += start
		i = end
		val := body[start:end]
		if bytes.IndexByte(val, '\\') >= 0 {
			unresolved++ // escapes: not a uuid anyone wrote on purpose
			continue
		}
		ref, err := resolve(string(val[len("urn:uuid:"):]))
		if err != nil {
			return nil, 0, err
		}
		if ref == "" {
			unresolved++
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(body))
		}
		out = append(out, body[last:start]...)
		out = append(out, ref...)
		last = end
	}
	if out == nil {
		return nil, unresolved, nil
	}
	return append(out, body[last:]...), unresolved, nil
}

// maxResolveCache bounds the cache of uuid → reference of the last pass.
const maxResolveCache = 1 << 16

// resolveDeferred resolves, once everything is stored, the `urn:uuid:`
// references that were left in resources, by the ids of stored resources
// (store.TypeOf), and stores the resources again. synthea-100's Groups, for
// one, name their Patients as urn:uuid:<patient id> and come first.
func (im *importer) resolveDeferred() error {
	// A copy: the marks of the writes (Commit.Deferred) share the list.
	refs := slices.Clone(im.deferred)
	im.deferred = nil
	slices.SortFunc(refs, func(a, b bulk.Ref) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.ID, b.ID))
	})
	refs = slices.Compact(refs)

	cache := map[string]string{}
	resolve := func(uuid string) (string, error) {
		if ref, ok := cache[uuid]; ok {
			return ref, nil
		}
		ref := ""
		if fhir.IsID(uuid) {
			types, err := im.store.TypeOf(im.ctx, uuid)
			if err != nil {
				return "", err
			}
			// An id stored under two types is ambiguous: leave it.
			if len(types) == 1 {
				ref = types[0] + "/" + uuid
			}
		}
		if len(cache) >= maxResolveCache {
			clear(cache)
		}
		cache[uuid] = ref
		return ref, nil
	}

	im.restoring = true // these resources were counted when first stored
	defer func() { im.restoring = false }()
	for _, ref := range refs {
		r, err := im.store.Get(im.ctx, ref.Type, ref.ID)
		if bulk.ErrorCode(err) == bulk.ENOTFOUND {
			continue // deleted later in the run
		} else if err != nil {
			return err
		}
		body, unresolved, err := rewriteURNRefs(r.Body, resolve)
		if err != nil {
			return err
		}
		im.report.Unresolved += int64(unresolved)
		if body == nil {
			continue // nothing resolved
		}
		// Stored again: a new version, which the clock stamps anew (or,
		// with KeepLastUpdated, keeps r's lastUpdated).
		if err := im.add(newResource(im.model, r.Type, r.ID, r.LastUpdated, body), -1); err != nil {
			return err
		}
	}
	return im.flush()
}
