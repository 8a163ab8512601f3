package search

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tranchehq/tranche/internal/fhir"
)

// definitionBase is the canonical base of R4 SearchParameter definitions.
const definitionBase = "http://hl7.org/fhir/SearchParameter/"

// param is a search parameter compiled for one resource type.
type param struct {
	Param
	paths []path
}

// registry maps type → parameter name → compiled parameter. Every R4
// resource type has the common (Resource.*) parameters; supportedTypes also
// have theirs.
var registry = mustBuildRegistry()

func mustBuildRegistry() map[string]map[string]*param {
	r, err := buildRegistry()
	if err != nil {
		// The table is Go source: an error here is a programming error that
		// TestRegistry reports with context.
		panic(err)
	}
	return r
}

func buildRegistry() (map[string]map[string]*param, error) {
	r := make(map[string]map[string]*param, len(fhir.ResourceTypes))
	for _, typ := range fhir.ResourceTypes {
		r[typ] = make(map[string]*param)
	}
	for _, d := range definitions {
		switch d.typ {
		case "token", "date", "reference", "string", "uri", "quantity":
		default:
			return nil, fmt.Errorf("definition %s: unsupported type %q", d.id, d.typ)
		}
		var types []string
		for _, root := range exprRoots(d.expr) {
			switch {
			case root == "Resource":
				types = fhir.ResourceTypes
			case slices.Contains(supportedTypes, root):
				types = append(types, root)
			case !fhir.IsResourceType(root):
				return nil, fmt.Errorf("definition %s: %q is not a resource type", d.id, root)
			}
		}
		for _, typ := range types {
			paths, err := compileExpr(d.expr, typ)
			if err != nil {
				return nil, fmt.Errorf("definition %s: %w", d.id, err)
			}
			if len(paths) == 0 {
				continue
			}
			if _, dup := r[typ][d.code]; dup {
				return nil, fmt.Errorf("definition %s: %s already has a parameter %q", d.id, typ, d.code)
			}
			r[typ][d.code] = &param{
				Param: Param{Name: d.code, Type: d.typ, Definition: definitionBase + d.id},
				paths: paths,
			}
		}
	}
	return r, nil
}

// lookup returns the parameter name of typ, or nil.
func lookup(typ, name string) *param {
	return registry[typ][name]
}

// Supported lists, per resource type, the search parameters that _typeFilter
// supports, sorted by name, for the CapabilityStatement's
// rest.resource.searchParam (requirements 1.4.7, R120). Every R4 type has the
// common parameters _id, _lastUpdated, _profile, _security, _source and _tag.
// The result is a fresh copy.
func Supported() map[string][]Param {
	out := make(map[string][]Param, len(registry))
	for typ, params := range registry {
		list := make([]Param, 0, len(params))
		for _, p := range params {
			list = append(list, p.Param)
		}
		slices.SortFunc(list, func(a, b Param) int { return strings.Compare(a.Name, b.Name) })
		out[typ] = list
	}
	return out
}
