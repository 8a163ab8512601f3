package codegen

import (
	"fmt"
	"strings"
)

// segKind is what one step of a search parameter expression does.
type segKind int

const (
	segField   segKind = iota // an element name
	segCast                   // as(T), ofType(T), "as T": picks one variant of a choice
	segResolve                // where(resolve() is T): only references to a T
	segWhere                  // where(key='value'): only elements with that value
)

type seg struct {
	kind       segKind
	name       string // segField: element name; segCast, segResolve: type
	key, value string // segWhere
}

// alternative is one alternative of an expression ("A.b | A.c" has two):
// the type it starts from and its steps.
type alternative struct {
	text string
	root string
	segs []seg
	err  error // not in the supported subset; root may still be known
}

// splitTop splits s on sep where sep is outside parentheses, brackets and
// quotes.
func splitTop(s string, sep byte) []string {
	var parts []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
		case c == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// matchParen returns the index of the parenthesis closing the one at s[0].
func matchParen(s string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// parseFHIRPath splits a SearchParameter.expression into its alternatives
// and parses each in the subset that search parameter paths use:
//
//	Observation.code                               element paths
//	A.b | A.c                                      alternatives
//	(Observation.value as Quantity)                a choice cast ("as")
//	Condition.onset.as(dateTime), value.ofType(X)  a choice cast (function)
//	(Observation.component.value as CodeableConcept).text
//	Encounter.subject.where(resolve() is Patient)  a reference target filter
//	Patient.telecom.where(system='email')          an equality filter
//
//	Library.relatedArtifact.where(type='composed-of').resource
//
// where(resolve() is T) must end the path, and a path has at most one
// equality filter. Anything else (first(), exists(), extension(), indexers,
// is, and, !=) makes that alternative unsupported. An alternative that does
// not start with a type name ("name | alias") is relative to the resource,
// as FHIRPath evaluates it.
func parseFHIRPath(expr string) []alternative {
	var alts []alternative
	for _, text := range splitTop(expr, '|') {
		text = strings.TrimSpace(text)
		root, segs, err := parseFHIRPathAlt(text)
		alts = append(alts, alternative{text: text, root: root, segs: segs, err: err})
	}
	return alts
}

func parseFHIRPathAlt(s string) (root string, segs []seg, err error) {
	s = strings.TrimSpace(s)
	// Parentheses around the whole alternative.
	for strings.HasPrefix(s, "(") && matchParen(s) == len(s)-1 {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if strings.HasPrefix(s, "(") {
		end := matchParen(s)
		if end < 0 {
			return "", nil, fmt.Errorf("unbalanced parenthesis")
		}
		inner, rest := s[1:end], strings.TrimSpace(s[end+1:])
		if len(splitTop(inner, '|')) > 1 {
			return "", nil, fmt.Errorf("a parenthesised union without a root type")
		}
		if root, segs, err = parseFHIRPathAlt(inner); err != nil {
			return root, nil, err
		}
		if !strings.HasPrefix(rest, ".") {
			return root, nil, fmt.Errorf("unsupported %q after a parenthesis", rest)
		}
		more, err := parseSegs(rest[1:])
		if err != nil {
			return root, nil, err
		}
		return root, append(segs, more...), nil
	}
	// The "as" operator: "A.b as T".
	if parts := splitTop(s, ' '); len(parts) > 1 {
		if len(parts) == 3 && parts[1] == "as" && isIdent(parts[2]) {
			if root, segs, err = parseFHIRPathAlt(parts[0]); err != nil {
				return root, nil, err
			}
			return root, append(segs, seg{kind: segCast, name: parts[2]}), nil
		}
		root, _, _ := strings.Cut(s, ".")
		return strings.TrimLeft(root, "("), nil, fmt.Errorf("unsupported operator in %q", s)
	}
	parts := splitTop(s, '.')
	root = parts[0]
	if !isIdent(root) {
		return "", nil, fmt.Errorf("no root type")
	}
	if segs, err = parseSegs(strings.Join(parts[1:], ".")); err != nil {
		return root, nil, err
	}
	return root, segs, nil
}

// parseSegs parses the steps after the root: "a.b.as(T).where(…)".
func parseSegs(s string) ([]seg, error) {
	if s == "" {
		return nil, nil
	}
	var segs []seg
	parts := splitTop(s, '.')
	for i, p := range parts {
		p = strings.TrimSpace(p)
		last := i == len(parts)-1
		switch {
		case isIdent(p):
			segs = append(segs, seg{kind: segField, name: p})
		case fnArg(p, "as") != "" || fnArg(p, "ofType") != "":
			t := fnArg(p, "as") + fnArg(p, "ofType")
			if !isIdent(t) {
				return nil, fmt.Errorf("unsupported %s", p)
			}
			segs = append(segs, seg{kind: segCast, name: t})
		case fnArg(p, "where") != "":
			arg := strings.TrimSpace(fnArg(p, "where"))
			if t, ok := strings.CutPrefix(arg, "resolve() is "); ok && isIdent(strings.TrimSpace(t)) {
				if !last {
					return nil, fmt.Errorf("where(resolve() is …) inside the path")
				}
				segs = append(segs, seg{kind: segResolve, name: strings.TrimSpace(t)})
				continue
			}
			k, v, ok := strings.Cut(arg, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok || !isIdent(k) || len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
				return nil, fmt.Errorf("unsupported %s", p)
			}
			segs = append(segs, seg{kind: segWhere, key: k, value: v[1 : len(v)-1]})
		default:
			return nil, fmt.Errorf("unsupported %q", p)
		}
	}
	return segs, nil
}

// fnArg returns the argument of p if p is the call name(arg), else "".
func fnArg(p, name string) string {
	if strings.HasPrefix(p, name+"(") && strings.HasSuffix(p, ")") && matchParen(p[len(name):]) == len(p)-len(name)-1 {
		return p[len(name)+1 : len(p)-1]
	}
	return ""
}

// parseXPath parses a DSTU2 SearchParameter.xpath, e.g.
// "f:Observation/f:subject | f:Observation/f:valueQuantity" or
// "f:Patient/f:telecom[system/@value='email']". Only a trailing
// [key/@value='v'] predicate is supported.
func parseXPath(xpath string) []alternative {
	var alts []alternative
	for _, text := range splitTop(xpath, '|') {
		text = strings.TrimSpace(text)
		root, segs, err := parseXPathAlt(text)
		alts = append(alts, alternative{text: text, root: root, segs: segs, err: err})
	}
	return alts
}

func parseXPathAlt(s string) (string, []seg, error) {
	parts := splitTop(s, '/')
	var root string
	var segs []seg
	for i, p := range parts {
		name, pred, hasPred := strings.Cut(p, "[")
		name, ok := strings.CutPrefix(name, "f:")
		if !ok || !isIdent(name) {
			return root, nil, fmt.Errorf("unsupported step %q", p)
		}
		if i == 0 {
			root = name
		} else {
			segs = append(segs, seg{kind: segField, name: name})
		}
		if !hasPred {
			continue
		}
		if i != len(parts)-1 || !strings.HasSuffix(pred, "]") {
			return root, nil, fmt.Errorf("unsupported predicate in %q", p)
		}
		k, v, ok := strings.Cut(strings.TrimSuffix(pred, "]"), "/@value=")
		if !ok || !isIdent(k) || len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
			return root, nil, fmt.Errorf("unsupported predicate in %q", p)
		}
		segs = append(segs, seg{kind: segWhere, key: k, value: v[1 : len(v)-1]})
	}
	if root == "" {
		return "", nil, fmt.Errorf("no root type")
	}
	return root, segs, nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' && i > 0 || c == '_' && i > 0) {
			return false
		}
	}
	return true
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
