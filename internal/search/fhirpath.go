package search

import (
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// The subset of FHIRPath that R4 search parameter expressions use, compiled
// into JSON key paths:
//
//	Observation.code                          a path
//	A.b | A.c                                 alternatives
//	(Observation.value as Quantity)           a choice cast ("as" operator)
//	Condition.onset.as(dateTime)              a choice cast (as() function)
//	(Observation.value as CodeableConcept).text
//	Encounter.subject.where(resolve() is Patient)
//	Patient.telecom.where(system='email')
//
// "Resource." paths apply to every type.

// path is one compiled alternative: the JSON keys to walk from the
// resource, where each step may try several keys (the variants of a choice
// element), plus the filters a where() adds.
type path struct {
	steps []step
	// target, from where(resolve() is T): only references to a T count.
	target string
	// whereKey/whereValue, from where(key='value'): only elements whose key
	// has that string value count.
	whereKey, whereValue string
}

// step is one element of a path: the JSON keys it may appear as (several
// for a choice element), and its dotted path from the resource.
type step struct {
	keys     []string
	elem     string
	narrowed bool // a cast picked one variant of a choice element
}

// compileExpr compiles the alternatives of expr that apply to typ (rooted at
// typ or at Resource). It returns nil paths if none applies.
func compileExpr(expr, typ string) ([]path, error) {
	var paths []path
	for _, alt := range strings.Split(expr, "|") {
		alt = strings.TrimSpace(alt)
		if r := altRoot(alt); r != typ && r != "Resource" {
			continue // an alternative for another type
		}
		p, _, err := compileAlt(alt)
		if err != nil {
			return nil, fmt.Errorf("expression %q: %w", alt, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// exprRoots returns the distinct root types of expr's alternatives.
func exprRoots(expr string) []string {
	var roots []string
	for _, alt := range strings.Split(expr, "|") {
		if root := altRoot(alt); !contains(roots, root) {
			roots = append(roots, root)
		}
	}
	return roots
}

// altRoot returns the type an alternative starts from.
func altRoot(alt string) string {
	alt = strings.TrimLeft(strings.TrimSpace(alt), "(")
	root, _, _ := strings.Cut(alt, ".")
	return root
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// compileAlt compiles one alternative and returns its root type.
func compileAlt(alt string) (path, string, error) {
	var p path
	body, cast, rest := alt, "", ""
	if strings.HasPrefix(alt, "(") {
		end := strings.IndexByte(alt, ')')
		if end < 0 {
			return p, "", fmt.Errorf("unbalanced parenthesis")
		}
		var ok bool
		body, cast, ok = strings.Cut(alt[1:end], " as ")
		if !ok {
			return p, "", fmt.Errorf("parenthesis without an \"as\" cast")
		}
		cast = strings.TrimSpace(cast)
		rest = alt[end+1:]
		if rest != "" && rest[0] != '.' {
			return p, "", fmt.Errorf("unexpected %q after the cast", rest)
		}
	}
	segs := strings.Split(strings.TrimSpace(body), ".")
	if cast != "" {
		// The cast applies to the last element of body; rest follows it.
		segs = append(segs, "as("+cast+")")
		if rest != "" {
			segs = append(segs, strings.Split(rest[1:], ".")...)
		}
	}
	root := segs[0]
	if !isIdent(root) {
		return p, "", fmt.Errorf("bad root %q", root)
	}
	elem := root // dotted path of the current element, for choiceTypes
	for i := 1; i < len(segs); i++ {
		s := segs[i]
		switch {
		case strings.HasPrefix(s, "as(") && strings.HasSuffix(s, ")"):
			if err := p.cast(s[3 : len(s)-1]); err != nil {
				return p, "", err
			}
		case strings.HasPrefix(s, "where(resolve() is ") && strings.HasSuffix(s, ")"):
			if i != len(segs)-1 {
				return p, "", fmt.Errorf("where() must end the path")
			}
			p.target = strings.TrimSpace(s[len("where(resolve() is ") : len(s)-1])
		case strings.HasPrefix(s, "where(") && strings.HasSuffix(s, ")"):
			if i != len(segs)-1 {
				return p, "", fmt.Errorf("where() must end the path")
			}
			k, v, ok := strings.Cut(s[len("where("):len(s)-1], "=")
			if !ok || len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
				return p, "", fmt.Errorf("unsupported %s", s)
			}
			p.whereKey, p.whereValue = strings.TrimSpace(k), v[1:len(v)-1]
		case isIdent(s):
			elem += "." + s
			p.steps = append(p.steps, step{keys: []string{s}, elem: elem})
		default:
			return p, "", fmt.Errorf("unsupported segment %q", s)
		}
	}
	if len(p.steps) == 0 {
		return p, "", fmt.Errorf("no element")
	}
	// A choice element that no cast narrowed stands for all its variants.
	for i := range p.steps {
		st := &p.steps[i]
		if types, ok := choiceTypes[st.elem]; ok && !st.narrowed {
			base := st.keys[0]
			st.keys = nil
			for _, t := range types {
				st.keys = append(st.keys, base+upperFirst(t))
			}
		}
	}
	return p, root, nil
}

// cast narrows the last step, a choice element, to its variant typ.
func (p *path) cast(typ string) error {
	if len(p.steps) == 0 {
		return fmt.Errorf("cast without an element")
	}
	last := &p.steps[len(p.steps)-1]
	types, ok := choiceTypes[last.elem]
	if !ok {
		return fmt.Errorf("%s is not a known choice element", last.elem)
	}
	if !contains(types, typ) || last.narrowed {
		return fmt.Errorf("%s has no %s variant", last.elem, typ)
	}
	last.keys = []string{last.keys[0] + upperFirst(typ)}
	last.narrowed = true
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
