package asl

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"unicode/utf8"
)

// path is an ASL Reference Path: "$" (the state's data) or "$$" (the context
// object) followed by .name, ['name'] and [index] steps. It names exactly one
// node; wildcards, filters, slices, negative indexes and recursive descent
// are rejected at Parse time rather than half-supported.
type path struct {
	text    string
	context bool
	steps   []pathStep
}

type pathStep struct {
	name  string
	index int // >= 0 for [index], -1 for a field
}

// rootPath is "$", the default of InputPath, OutputPath, ResultPath and ItemsPath.
var rootPath = &path{text: "$"}

func parsePath(s string) (*path, error) {
	p := &path{text: s}
	i := 0
	switch {
	case strings.HasPrefix(s, "$$"):
		p.context, i = true, 2
	case strings.HasPrefix(s, "$"):
		i = 1
	default:
		return nil, fmt.Errorf("path %q must start with $", s)
	}
	for i < len(s) {
		switch s[i] {
		case '.':
			if strings.HasPrefix(s[i:], ".['") {
				i++ // AWS documents $.abc.['def ghi'] as a form of $.abc['def ghi'].
				continue
			}
			j := i + 1
			for j < len(s) && s[j] != '.' && s[j] != '[' {
				j++
			}
			name := s[i+1 : j]
			if !isShorthandName(name) {
				return nil, fmt.Errorf("path %q: %q is not a plain field name (use ['...'] for other characters; wildcards and '..' are not supported)", s, name)
			}
			p.steps = append(p.steps, pathStep{name: name, index: -1})
			i = j
		case '[':
			if strings.HasPrefix(s[i:], "['") {
				k := strings.IndexByte(s[i+2:], '\'')
				if k < 0 || !strings.HasPrefix(s[i+2+k:], "']") {
					return nil, fmt.Errorf("path %q: unterminated ['...']", s)
				}
				name := s[i+2 : i+2+k]
				if name == "" || strings.ContainsRune(name, '\\') {
					return nil, fmt.Errorf("path %q: unsupported field name %q", s, name)
				}
				p.steps = append(p.steps, pathStep{name: name, index: -1})
				i += 2 + k + 2
				continue
			}
			k := strings.IndexByte(s[i:], ']')
			if k < 0 {
				return nil, fmt.Errorf("path %q: unterminated [", s)
			}
			digits := s[i+1 : i+k]
			n, err := strconv.Atoi(digits)
			if err != nil || n < 0 || strings.TrimLeft(digits, "0123456789") != "" {
				return nil, fmt.Errorf("path %q: [%s] is not a non-negative index (slices, wildcards and filters are not supported)", s, digits)
			}
			p.steps = append(p.steps, pathStep{index: n})
			i += k + 1
		default:
			return nil, fmt.Errorf("path %q: unexpected %q at offset %d", s, s[i], i)
		}
	}
	return p, nil
}

// isShorthandName reports whether name may follow a dot. AWS follows the
// JSONPath ABNF member-name-shorthand: any other character (punctuation
// other than _, spaces) needs bracket notation, so we refuse it too.
func isShorthandName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', r >= 0x80 && r != utf8.RuneError:
		case ('0' <= r && r <= '9' || r == '-') && i > 0:
			// A '-' after the first character: the Developer Guide's own
			// paths use one ($.error-info, $.delivery-partner).
		default:
			return false
		}
	}
	return true
}

func (p *path) String() string { return p.text }

// hasIndex reports whether p has an [index] step.
func (p *path) hasIndex() bool {
	for _, s := range p.steps {
		if s.index >= 0 {
			return true
		}
	}
	return false
}

// lookup returns the node p names in v, if there is one.
func (p *path) lookup(v any) (any, bool) {
	for _, s := range p.steps {
		if s.index < 0 {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[s.name]; !ok {
				return nil, false
			}
			continue
		}
		a, ok := v.([]any)
		if !ok || s.index >= len(a) {
			return nil, false
		}
		v = a[s.index]
	}
	return v, true
}

// set returns a copy of root with v stored where p points, creating missing
// objects on the way as ResultPath does. root itself is never modified: values
// are shared between Map iterations, so every object on the path is copied.
// It fails when a node on the way exists but is not an object. p must have
// field steps only (ResultPath indexes are refused at Parse time).
func (p *path) set(root, v any) (any, bool) {
	return setSteps(root, p.steps, v)
}

func setSteps(node any, steps []pathStep, v any) (any, bool) {
	if len(steps) == 0 {
		return v, true
	}
	m, ok := node.(map[string]any)
	if !ok {
		return nil, false
	}
	child, ok := m[steps[0].name]
	if !ok {
		child = map[string]any{}
	}
	nv, ok := setSteps(child, steps[1:], v)
	if !ok {
		return nil, false
	}
	cp := make(map[string]any, len(m)+1)
	maps.Copy(cp, m)
	cp[steps[0].name] = nv
	return cp, true
}
