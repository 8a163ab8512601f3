package search

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/tranchehq/tranche/internal/fhir/defs"
)

// Engine evaluates _typeFilter queries and _elements lists for the stores
// of one FHIR release (issue 17): its resource types, search parameters,
// mandatory elements and choice elements all come from that release's
// definitions (internal/fhir/defs). An Engine is immutable and safe for
// concurrent use.
type Engine struct {
	defs *defs.Defs
	name string // "R4", as error messages name the release

	// params maps type → parameter name → compiled parameter.
	params map[string]map[string]*param
	// supported holds, per type, the parameters sorted by name.
	supported map[string][]Param
	// choices holds, per type, the base names of its top-level choice
	// elements ("effective" for effective[x]); absent: none.
	choices map[string][]string
	// problems lists the parameters left out because their paths do not
	// compile; TestEngine requires it to be empty.
	problems []string
}

// Param describes one search parameter usable in _typeFilter, in the shape
// of CapabilityStatement.rest.resource.searchParam.
type Param struct {
	Name       string // the code used in queries, e.g. "clinical-status"
	Type       string // token, date, reference, string, uri or quantity
	Definition string // canonical URL of the release's SearchParameter
}

// param is a search parameter compiled for one resource type.
type param struct {
	Param
	paths []path
}

// unservable are the parameters whose definitions select element paths but
// whose meaning is not a comparison with those elements' values; asking for
// one is EUNSUPPORTED, as for the parameters without paths (composite,
// special and number parameters, and those whose expression the generator
// does not compile: Patient.deceased, extensions, …).
var unservable = map[string]string{
	"phonetic":      "phonetic matching of names",
	"near":          "geographic proximity (DSTU2 and STU3 type it token)",
	"near-distance": "a distance for near",
	"_in":           "membership of a List, Group or CareTeam (R5)",
}

var engines = func() map[defs.Version]func() *Engine {
	m := make(map[defs.Version]func() *Engine)
	for _, v := range defs.Versions() {
		m[v] = sync.OnceValue(func() *Engine { return newEngine(defs.For(v)) })
	}
	return m
}()

// For returns the engine of release v, built on first use and shared, or
// nil if v is not a supported release.
func For(v defs.Version) *Engine {
	if f := engines[v]; f != nil {
		return f()
	}
	return nil
}

// r4 is the engine of the package-level functions.
func r4() *Engine { return For(defs.R4) }

// Version returns the engine's release.
func (e *Engine) Version() defs.Version { return e.defs.Version }

// newEngine compiles d. Every type gets every parameter of its own and the
// common ones (_id, _lastUpdated, …) whose type is token, date, reference,
// string, uri or quantity and that has element paths, except the
// unservable ones.
func newEngine(d *defs.Defs) *Engine {
	e := &Engine{
		defs:      d,
		name:      strings.ToUpper(string(d.Version)),
		params:    make(map[string]map[string]*param, len(d.Types)),
		supported: make(map[string][]Param, len(d.Types)),
		choices:   make(map[string][]string),
	}
	for _, t := range d.Types {
		params := make(map[string]*param)
		list := []Param{}
	next:
		for _, sp := range t.SearchParams {
			switch sp.Type {
			case "token", "date", "reference", "string", "uri", "quantity":
			default:
				continue
			}
			if len(sp.Paths) == 0 || unservable[sp.Name] != "" {
				continue
			}
			p := &param{Param: Param{Name: sp.Name, Type: sp.Type, Definition: sp.URL()}}
			for _, dp := range sp.Paths {
				cp, err := compilePath(t, dp)
				if err != nil {
					e.problems = append(e.problems, fmt.Sprintf("%s %s (%s): %v", t.Name, sp.Name, sp.ID, err))
					continue next
				}
				p.paths = append(p.paths, cp)
			}
			if params[sp.Name] != nil {
				e.problems = append(e.problems, fmt.Sprintf("%s %s (%s): a second parameter of that name", t.Name, sp.Name, sp.ID))
				continue
			}
			params[sp.Name] = p
			list = append(list, p.Param)
		}
		slices.SortFunc(list, func(a, b Param) int { return strings.Compare(a.Name, b.Name) })
		e.params[t.Name] = params
		e.supported[t.Name] = list
		for _, c := range t.Choices {
			if base, ok := strings.CutSuffix(c.Path, "[x]"); ok && !strings.Contains(base, ".") {
				e.choices[t.Name] = append(e.choices[t.Name], base)
			}
		}
	}
	return e
}

// lookup returns the parameter name of typ, or nil.
func (e *Engine) lookup(typ, name string) *param {
	return e.params[typ][name]
}

// Supported lists, per resource type of the release, the search parameters
// that _typeFilter supports, sorted by name, for the CapabilityStatement's
// rest.resource.searchParam (requirements 1.4.7, R120). Every type has the
// common parameters (_id, _lastUpdated, _profile, _security, _tag; _source
// from R4 on) and those of its own that the engine serves. The result is
// a fresh copy.
func (e *Engine) Supported() map[string][]Param {
	out := make(map[string][]Param, len(e.supported))
	for typ, list := range e.supported {
		out[typ] = slices.Clone(list)
	}
	return out
}

// Supported is Supported of the R4 engine.
func Supported() map[string][]Param { return r4().Supported() }
