package export

import (
	"sync"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/search"
)

// spec is a job's request compiled for its work items: which resources pass
// (`_typeFilter` and the scopes' search restrictions) and how they are
// written (`_elements`). It is immutable once built, apart from its cache of
// compiled restrictions, and shared by the job's items.
type spec struct {
	filters  search.Set
	restrict map[string][]string
	elements search.Elements

	mu       sync.Mutex
	compiled map[string][]*search.Filter // type → restriction filters; absent: not compiled yet
	eng      *search.Engine              // the store's release's
}

// unrestricted is the compiled restriction of a type that has none.
var unrestricted []*search.Filter

// newSpec compiles a job's request. The queries were validated at kick-off,
// so an error here means the stored job is corrupt.
func newSpec(req *bulk.ExportRequest, eng *search.Engine) (*spec, error) {
	sp := &spec{eng: eng, restrict: req.Restrictions, compiled: map[string][]*search.Filter{}}
	sp.filters = search.Set{}
	for _, q := range req.TypeFilters {
		f, err := eng.Parse(q)
		if err != nil {
			return nil, err
		}
		sp.filters[f.Type()] = append(sp.filters[f.Type()], f)
	}
	var err error
	if sp.elements, err = eng.ParseElements(req.Elements); err != nil {
		return nil, err
	}
	return sp, nil
}

// match reports whether a resource passes the export's filters: one of its
// type's `_typeFilter` queries, if it has any (R26–R28), and one of the
// search restrictions the client's scopes put on the type, if any (R114).
func (sp *spec) match(typ string, body []byte) bool {
	if !sp.filters.Match(typ, body) {
		return false
	}
	rs := sp.restriction(typ)
	if rs == nil {
		return true
	}
	for _, f := range rs {
		if f != nil && f.Match(body) {
			return true
		}
	}
	return false
}

// restricted reports whether the client's scopes restrict typ by search
// parameters: then deletions of typ are not listed, since a tombstone
// cannot be matched against them.
func (sp *spec) restricted(typ string) bool { return sp.restriction(typ) != nil }

// restriction returns typ's compiled scope restrictions: nil when the type
// is unrestricted, otherwise a non-empty list whose nil entries are queries
// that do not apply to the type (a "*" restriction naming a parameter the
// type lacks), which nothing matches.
func (sp *spec) restriction(typ string) []*search.Filter {
	if sp.restrict == nil {
		return unrestricted
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if fs, ok := sp.compiled[typ]; ok {
		return fs
	}
	qs, ok := sp.restrict[typ]
	if !ok {
		qs = sp.restrict["*"]
	}
	var fs []*search.Filter
	if len(qs) > 0 {
		fs = make([]*search.Filter, len(qs))
		for i, q := range qs {
			fs[i], _ = sp.eng.Parse(typ + "?" + q)
		}
	}
	sp.compiled[typ] = fs
	return fs
}

// body returns what is written for a resource: its stored bytes, or for a
// type `_elements` subsets, the subset tagged SUBSETTED (R21, R22). Only
// subsetted resources are re-encoded.
func (sp *spec) body(typ string, body []byte) []byte {
	out, _ := sp.elements.Subset(typ, body)
	return out
}
