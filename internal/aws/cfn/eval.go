package cfn

import (
	"fmt"
	"strings"
)

// Stack is what a template's intrinsics resolve to in one deployment: the
// parameter values, each resource's Ref and attributes, and the conditions.
// The pseudo parameters (AWS::Region, ...) are in Refs too.
type Stack struct {
	// Refs maps a parameter, pseudo parameter or logical id to its Ref
	// value (a table's name, a function's name, a state machine's ARN).
	Refs map[string]string
	// Attrs maps "LogicalId.Attribute" to its GetAtt value.
	Attrs map[string]string
	// Conditions are the template's conditions, evaluated.
	Conditions map[string]bool
}

// Eval resolves the intrinsics of v as the parser gives them: "!Ref X",
// "!GetAtt X.Attr", "!Sub text" (${X} and ${X.Attr}; ${!Literal} stays
// ${Literal}), and ["!If", [cond, a, b]]. Maps and sequences are resolved
// element by element. A name the stack does not know is an error, so a
// test cannot pass on a reference it did not resolve.
func (s *Stack) Eval(v any) (any, error) {
	switch v := v.(type) {
	case string:
		return s.scalar(v)
	case []any:
		if len(v) == 2 {
			if tag, ok := v[0].(string); ok && strings.HasPrefix(tag, "!") && !strings.Contains(tag, " ") {
				return s.tagged(tag, v[1])
			}
		}
		out := make([]any, 0, len(v))
		for _, e := range v {
			r, err := s.Eval(e)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			r, err := s.Eval(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("cfn: cannot evaluate %T", v)
}

func (s *Stack) scalar(v string) (any, error) {
	tag, arg, ok := strings.Cut(v, " ")
	if !strings.HasPrefix(v, "!") || !ok {
		if strings.HasPrefix(v, "!") {
			return nil, fmt.Errorf("cfn: tag %q without an argument", v)
		}
		return v, nil
	}
	arg = strings.Trim(strings.TrimSpace(arg), `"'`)
	switch tag {
	case "!Ref":
		return s.ref(arg)
	case "!GetAtt":
		return s.attr(arg)
	case "!Sub":
		return s.sub(arg)
	}
	return nil, fmt.Errorf("cfn: unsupported intrinsic %s", tag)
}

func (s *Stack) tagged(tag string, arg any) (any, error) {
	switch tag {
	case "!If":
		args, ok := arg.([]any)
		if !ok || len(args) != 3 {
			return nil, fmt.Errorf("cfn: !If wants [condition, then, else], got %v", arg)
		}
		name, _ := args[0].(string)
		cond, ok := s.Conditions[name]
		if !ok {
			return nil, fmt.Errorf("cfn: unknown condition %q", name)
		}
		if cond {
			return s.Eval(args[1])
		}
		return s.Eval(args[2])
	}
	return nil, fmt.Errorf("cfn: unsupported intrinsic %s with a list", tag)
}

func (s *Stack) ref(name string) (string, error) {
	if v, ok := s.Refs[name]; ok {
		return v, nil
	}
	return "", fmt.Errorf("cfn: !Ref %s: not in the stack", name)
}

func (s *Stack) attr(name string) (string, error) {
	if v, ok := s.Attrs[name]; ok {
		return v, nil
	}
	return "", fmt.Errorf("cfn: !GetAtt %s: not in the stack", name)
}

// sub resolves !Sub's ${Name} and ${Name.Attr}; ${!Text} is the literal
// ${Text}.
func (s *Stack) sub(text string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(text, "${")
		if i < 0 {
			b.WriteString(text)
			return b.String(), nil
		}
		j := strings.IndexByte(text[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("cfn: !Sub %q: unterminated ${", text)
		}
		b.WriteString(text[:i])
		name := text[i+2 : i+j]
		var v string
		var err error
		switch {
		case strings.HasPrefix(name, "!"):
			v = "${" + name[1:] + "}"
		case strings.Contains(name, ".") && !strings.HasPrefix(name, "AWS::"):
			v, err = s.attr(name)
		default:
			v, err = s.ref(name)
		}
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		text = text[i+j+1:]
	}
}
