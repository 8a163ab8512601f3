package search

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tranchehq/tranche/internal/fhir/defs"
)

// path is one element path a search parameter selects, compiled from a
// defs.Path: the JSON keys to walk from the resource, where each step may
// try several keys (the variants of a choice element), plus the filters of
// the parameter's expression.
type path struct {
	steps []step
	// target, from where(resolve() is T): only references to a T count.
	target string
	// whereKey/whereValue, from where(key='value') (DSTU2 xpath:
	// [key/@value='value']): of the elements the steps reach, only those
	// whose key has that string value count.
	whereKey, whereValue string
	// rest, when the path goes on below a where filter
	// (relatedArtifact.where(type='composed-of').resource): the steps to
	// walk from each element that passes it. Keeping the filter at the end
	// of a path leaves the walk of paths without one as cheap as it was.
	rest *path
}

// step is one element of a path: the JSON keys it may appear as, several
// for a choice element that the expression does not narrow
// (effective[x]: effectiveDateTime, effectivePeriod, …).
type step struct {
	keys []string
}

// compilePath compiles p, a path of a search parameter of t, into JSON
// keys: an un-narrowed choice step ("effective[x]", "component.value[x]")
// becomes its variants, in definition order (t.Choices).
func compilePath(t *defs.Type, p defs.Path) (path, error) {
	out := path{target: p.Target, whereKey: p.WhereKey, whereValue: p.WhereValue}
	segs := strings.Split(p.Path, ".")
	for i, s := range segs {
		base, isChoice := strings.CutSuffix(s, "[x]")
		if !isIdent(base) {
			return path{}, fmt.Errorf("path %q: bad element %q", p.Path, s)
		}
		if !isChoice {
			out.steps = append(out.steps, step{keys: []string{s}})
			continue
		}
		elem := strings.Join(segs[:i+1], ".")
		types := choiceTypes(t, elem)
		if len(types) == 0 {
			return path{}, fmt.Errorf("path %q: %s is not a choice element of %s", p.Path, elem, t.Name)
		}
		var keys []string
		for _, ty := range types {
			k := base + upperFirst(ty)
			if !isIdent(k) {
				return path{}, fmt.Errorf("path %q: %s has a variant %q that is not a JSON key", p.Path, elem, ty)
			}
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		out.steps = append(out.steps, step{keys: keys})
	}
	switch {
	case p.WhereKey == "" && p.WhereAt == "":
	case p.WhereKey == "" || p.WhereAt == "":
		return path{}, fmt.Errorf("path %q: incomplete where filter %s=%q at %q", p.Path, p.WhereKey, p.WhereValue, p.WhereAt)
	case p.WhereAt == p.Path:
	case strings.HasPrefix(p.Path, p.WhereAt+"."):
		n := strings.Count(p.WhereAt, ".") + 1
		out.rest = &path{steps: out.steps[n:]}
		out.steps = out.steps[:n:n]
	default:
		return path{}, fmt.Errorf("path %q: where filter at %q, which is not a prefix of the path", p.Path, p.WhereAt)
	}
	return out, nil
}

// flat returns all the steps of p and the number of them after which its
// where filter applies (0 if it has none).
func (p *path) flat() (steps []step, whereAt int) {
	steps = p.steps
	if p.whereKey != "" {
		whereAt = len(steps)
	}
	if p.rest != nil {
		steps = append(slices.Clip(steps), p.rest.steps...)
	}
	return steps, whereAt
}

// choiceTypes returns the types of the choice element elem ("value[x]",
// "component.value[x]") of t, or nil.
func choiceTypes(t *defs.Type, elem string) []string {
	for _, c := range t.Choices {
		if c.Path == elem {
			return c.Types
		}
	}
	return nil
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' && i > 0) {
			return false
		}
	}
	return true
}

// each calls fn with every value the path selects in the resource root,
// descending into every array on the way, until fn returns true. It reports
// whether fn did.
func (p *path) each(root gjson.Result, fn func(v gjson.Result) bool) bool {
	return p.walk(root, 0, fn)
}

func (p *path) walk(v gjson.Result, i int, fn func(gjson.Result) bool) bool {
	if v.IsArray() {
		// FHIR JSON has no arrays of arrays: nested ones are skipped, which
		// also bounds the recursion on hostile input.
		stop := false
		v.ForEach(func(_, e gjson.Result) bool {
			if !e.IsArray() {
				stop = p.walk(e, i, fn)
			}
			return !stop
		})
		return stop
	}
	if i == len(p.steps) {
		if !v.Exists() || v.Type == gjson.Null {
			return false
		}
		if p.whereKey != "" {
			if !v.IsObject() || v.Get(p.whereKey).String() != p.whereValue {
				return false
			}
		}
		if p.rest != nil {
			return p.rest.walk(v, 0, fn)
		}
		return fn(v)
	}
	if !v.IsObject() {
		return false
	}
	for _, k := range p.steps[i].keys {
		if c := v.Get(k); c.Exists() && p.walk(c, i+1, fn) {
			return true
		}
	}
	return false
}
