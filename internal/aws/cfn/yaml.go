// Package cfn reads template.yaml: the YAML subset it is written in, and
// the CloudFormation intrinsics (Ref, GetAtt, Sub, If) its policies use, so
// tests can check the template against what the code does without a YAML
// module or the SAM CLI.
//
// The subset: block mappings and sequences, one-line flow sequences and
// mappings ([a, b], {k: v}), quoted and plain scalars, comments, and
// CloudFormation's short-form tags kept as part of the scalar ("!Ref X", or
// a list whose first element is "!If"). Anything else is an error, so the
// template cannot silently leave the subset.
package cfn

import (
	"fmt"
	"strings"
)

type yline struct {
	indent int
	text   string
	no     int
}

// Parse reads a document of the subset: maps are map[string]any, sequences
// []any, scalars string.
func Parse(src string) (any, error) {
	var lines []yline
	for i, raw := range strings.Split(src, "\n") {
		t := stripComment(raw)
		if strings.TrimSpace(t) == "" {
			continue
		}
		ind := len(t) - len(strings.TrimLeft(t, " "))
		lines = append(lines, yline{indent: ind, text: strings.TrimSpace(t), no: i + 1})
	}
	p := &yparser{lines: lines}
	v, err := p.block(0)
	if err != nil {
		return nil, err
	}
	if p.i != len(p.lines) {
		return nil, fmt.Errorf("line %d: unexpected %q", p.lines[p.i].no, p.lines[p.i].text)
	}
	return v, nil
}

// stripComment removes a # comment that is outside quotes.
func stripComment(s string) string {
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		case c == '#' && (i == 0 || s[i-1] == ' '):
			return strings.TrimRight(s[:i], " ")
		}
	}
	return strings.TrimRight(s, " ")
}

type yparser struct {
	lines []yline
	i     int
}

func (p *yparser) block(indent int) (any, error) {
	if p.i >= len(p.lines) {
		return nil, nil
	}
	if strings.HasPrefix(p.lines[p.i].text, "- ") || p.lines[p.i].text == "-" {
		return p.seq(p.lines[p.i].indent)
	}
	return p.mapping(p.lines[p.i].indent)
}

func (p *yparser) mapping(indent int) (map[string]any, error) {
	m := map[string]any{}
	for p.i < len(p.lines) && p.lines[p.i].indent == indent && !strings.HasPrefix(p.lines[p.i].text, "- ") {
		l := p.lines[p.i]
		k, v, ok := splitKey(l.text)
		if !ok {
			return nil, fmt.Errorf("line %d: want key: value, got %q", l.no, l.text)
		}
		p.i++
		if v == "" {
			if p.i < len(p.lines) && (p.lines[p.i].indent > indent || (p.lines[p.i].indent == indent && strings.HasPrefix(p.lines[p.i].text, "- "))) {
				child, err := p.block(p.lines[p.i].indent)
				if err != nil {
					return nil, err
				}
				m[k] = child
			} else {
				m[k] = nil
			}
			continue
		}
		val, err := scalarOrFlow(v)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", l.no, err)
		}
		m[k] = val
	}
	return m, nil
}

func (p *yparser) seq(indent int) ([]any, error) {
	var out []any
	for p.i < len(p.lines) && p.lines[p.i].indent == indent && strings.HasPrefix(p.lines[p.i].text+" ", "- ") {
		l := p.lines[p.i]
		rest := strings.TrimSpace(strings.TrimPrefix(l.text, "-"))
		if rest == "" {
			p.i++
			child, err := p.block(p.lines[p.i].indent)
			if err != nil {
				return nil, err
			}
			out = append(out, child)
			continue
		}
		if k, _, ok := splitKey(rest); ok && !strings.HasPrefix(rest, "{") && !strings.HasPrefix(rest, "!") && !strings.HasPrefix(rest, "\"") {
			_ = k
			// A mapping that starts on the dash line: re-read it as a
			// block indented past the dash.
			p.lines[p.i] = yline{indent: indent + 2, text: rest, no: l.no}
			child, err := p.mapping(indent + 2)
			if err != nil {
				return nil, err
			}
			out = append(out, child)
			continue
		}
		p.i++
		v, err := scalarOrFlow(rest)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", l.no, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// splitKey splits "key: value" (the key may be quoted).
func splitKey(s string) (string, string, bool) {
	if strings.HasPrefix(s, "\"") {
		end := strings.Index(s[1:], "\"")
		if end < 0 {
			return "", "", false
		}
		k, rest := s[1:end+1], s[end+2:]
		if !strings.HasPrefix(rest, ":") {
			return "", "", false
		}
		return k, strings.TrimSpace(rest[1:]), true
	}
	i := strings.Index(s, ": ")
	if i < 0 {
		if strings.HasSuffix(s, ":") {
			return s[:len(s)-1], "", true
		}
		return "", "", false
	}
	return s[:i], strings.TrimSpace(s[i+2:]), true
}

// scalarOrFlow reads a scalar, a flow sequence or a flow mapping, with an
// optional leading tag.
func scalarOrFlow(s string) (any, error) {
	s = strings.TrimSpace(s)
	if s != "" && !strings.ContainsRune("[{!\"'", rune(s[0])) {
		return s, nil // a plain scalar in block context may hold commas
	}
	v, rest, err := flowValue(s)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(rest) != "" {
		return nil, fmt.Errorf("trailing %q", rest)
	}
	return v, nil
}

func flowValue(s string) (any, string, error) {
	s = strings.TrimLeft(s, " ")
	tag := ""
	if strings.HasPrefix(s, "!") {
		end := strings.IndexAny(s, " ")
		if end < 0 {
			return s, "", nil
		}
		tag, s = s[:end], strings.TrimLeft(s[end:], " ")
		if !strings.HasPrefix(s, "[") && !strings.HasPrefix(s, "{") {
			v, rest, err := flowScalar(s)
			return tag + " " + fmt.Sprint(v), rest, err
		}
	}
	var v any
	var rest string
	var err error
	switch {
	case strings.HasPrefix(s, "["):
		v, rest, err = flowSeq(s)
	case strings.HasPrefix(s, "{"):
		v, rest, err = flowMap(s)
	default:
		v, rest, err = flowScalar(s)
	}
	if err == nil && tag != "" {
		v = []any{tag, v}
	}
	return v, rest, err
}

func flowSeq(s string) ([]any, string, error) {
	s = strings.TrimLeft(s[1:], " ")
	out := []any{}
	for {
		if strings.HasPrefix(s, "]") {
			return out, s[1:], nil
		}
		v, rest, err := flowValue(s)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
		s = strings.TrimLeft(rest, " ")
		if strings.HasPrefix(s, ",") {
			s = strings.TrimLeft(s[1:], " ")
		} else if !strings.HasPrefix(s, "]") {
			return nil, "", fmt.Errorf("bad flow sequence at %q", s)
		}
	}
}

func flowMap(s string) (map[string]any, string, error) {
	s = strings.TrimLeft(s[1:], " ")
	out := map[string]any{}
	for {
		if strings.HasPrefix(s, "}") {
			return out, s[1:], nil
		}
		i := strings.Index(s, ":")
		if i < 0 {
			return nil, "", fmt.Errorf("bad flow mapping at %q", s)
		}
		k := strings.Trim(strings.TrimSpace(s[:i]), `"`)
		v, rest, err := flowValue(s[i+1:])
		if err != nil {
			return nil, "", err
		}
		out[k] = v
		s = strings.TrimLeft(rest, " ")
		if strings.HasPrefix(s, ",") {
			s = strings.TrimLeft(s[1:], " ")
		} else if !strings.HasPrefix(s, "}") {
			return nil, "", fmt.Errorf("bad flow mapping at %q", s)
		}
	}
}

// flowScalar reads a quoted or plain scalar up to a flow delimiter.
func flowScalar(s string) (any, string, error) {
	if strings.HasPrefix(s, "\"") || strings.HasPrefix(s, "'") {
		q := s[0]
		end := strings.IndexByte(s[1:], q)
		if end < 0 {
			return nil, "", fmt.Errorf("unterminated string %q", s)
		}
		return s[1 : end+1], s[end+2:], nil
	}
	end := strings.IndexAny(s, ",]}")
	if end < 0 {
		end = len(s)
	}
	return strings.TrimSpace(s[:end]), s[end:], nil
}
