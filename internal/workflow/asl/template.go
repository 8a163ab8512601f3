package asl

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// contextObject is what "$$" paths read. Only the fields below exist here;
// Parse refuses context paths to anything else (Execution.StartTime, Task.Token
// ...) because this runner cannot give them the values Step Functions would.
type contextObject struct {
	execName  string
	execInput any
	stateName string
	// The Map item is only visible in a Map's ItemSelector (as on AWS).
	inMap    bool
	mapIndex int
	mapValue any
}

func (c *contextObject) value() any {
	v := map[string]any{
		"Execution": map[string]any{"Name": c.execName, "Input": c.execInput},
		"State":     map[string]any{"Name": c.stateName},
	}
	if c.inMap {
		v["Map"] = map[string]any{"Item": map[string]any{
			"Index": json.Number(fmt.Sprint(c.mapIndex)),
			"Value": c.mapValue,
		}}
	}
	return v
}

// resolve looks p up in the state's data or, for "$$" paths, in c.
func resolve(p *path, data any, c *contextObject) (any, bool) {
	if p.context {
		return p.lookup(c.value())
	}
	return p.lookup(data)
}

// checkContextPath accepts the context paths this runner can answer:
// $$.Execution.Name, $$.Execution.Input..., $$.State.Name and, when inMap,
// $$.Map.Item.Index and $$.Map.Item.Value....
func checkContextPath(p *path, inMap bool) error {
	name := func(i int) string {
		if i < len(p.steps) && p.steps[i].index < 0 {
			return p.steps[i].name
		}
		return ""
	}
	ok := false
	switch name(0) {
	case "Execution":
		ok = name(1) == "Name" && len(p.steps) == 2 || name(1) == "Input"
	case "State":
		ok = name(1) == "Name" && len(p.steps) == 2
	case "Map":
		if !inMap {
			return fmt.Errorf("context path %q: $$.Map is only available in a Map state's ItemSelector", p)
		}
		ok = name(1) == "Item" && (name(2) == "Index" && len(p.steps) == 3 || name(2) == "Value")
	}
	if !ok {
		return fmt.Errorf("context path %q is not supported (only $$.Execution.Name, $$.Execution.Input, $$.State.Name, $$.Map.Item.Index and $$.Map.Item.Value)", p)
	}
	return nil
}

// template is a compiled Payload Template: Parameters (also an ItemReader's
// and ResultWriter's) or ItemSelector. Fields whose names end in ".$" take
// the value at a path; everything else is copied literally. As on AWS this
// applies at any depth, including objects inside arrays.
type template struct {
	literal any // used when fields and elems are both nil
	fields  []templateField
	elems   []*template
	isArray bool
}

type templateField struct {
	key  string
	path *path     // the key ended in ".$"
	val  *template // otherwise
}

func (t *template) dynamic() bool { return t.fields != nil || t.elems != nil }

// compileTemplate compiles the template v, which must be an object.
// inMap allows $$.Map paths (ItemSelector only).
func compileTemplate(v any, inMap bool) (*template, error) {
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("must be a JSON object")
	}
	return compileNode(v, inMap)
}

func compileNode(v any, inMap bool) (*template, error) {
	switch v := v.(type) {
	case map[string]any:
		t := &template{literal: v}
		dyn := false
		for _, k := range slices.Sorted(maps.Keys(v)) {
			f := templateField{key: k}
			if name, ok := strings.CutSuffix(k, ".$"); ok {
				if _, dup := v[name]; dup {
					return nil, fmt.Errorf("fields %q and %q conflict", name, k)
				}
				s, ok := v[k].(string)
				if !ok {
					return nil, fmt.Errorf("field %q: value must be a path string", k)
				}
				if strings.HasPrefix(s, "States.") {
					return nil, fmt.Errorf("field %q: intrinsic functions such as %q are not supported", k, s)
				}
				p, err := parsePath(s)
				if err != nil {
					return nil, fmt.Errorf("field %q: %w", k, err)
				}
				if p.context {
					if err := checkContextPath(p, inMap); err != nil {
						return nil, fmt.Errorf("field %q: %w", k, err)
					}
				}
				f.key, f.path, dyn = name, p, true
			} else {
				sub, err := compileNode(v[k], inMap)
				if err != nil {
					return nil, fmt.Errorf("field %q: %w", k, err)
				}
				f.val = sub
				dyn = dyn || sub.dynamic()
			}
			t.fields = append(t.fields, f)
		}
		if !dyn {
			t.fields = nil
		}
		return t, nil
	case []any:
		t := &template{literal: v, isArray: true}
		dyn := false
		for i, e := range v {
			sub, err := compileNode(e, inMap)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			t.elems = append(t.elems, sub)
			dyn = dyn || sub.dynamic()
		}
		if !dyn {
			t.elems = nil
		}
		return t, nil
	}
	return &template{literal: v}, nil
}

// eval builds the payload from data ("$") and c ("$$"). A path that does not
// resolve is a States.Runtime error, as on AWS.
func (t *template) eval(data any, c *contextObject) (any, error) {
	switch {
	case t.fields != nil:
		out := make(map[string]any, len(t.fields))
		for _, f := range t.fields {
			if f.path == nil {
				v, err := f.val.eval(data, c)
				if err != nil {
					return nil, err
				}
				out[f.key] = v
				continue
			}
			v, ok := resolve(f.path, data, c)
			if !ok {
				return nil, runtimeError(c.stateName, "The JSONPath '%s' specified for the field '%s.$' could not be found in the input", f.path, f.key)
			}
			out[f.key] = v
		}
		return out, nil
	case t.elems != nil:
		out := make([]any, len(t.elems))
		for i, e := range t.elems {
			v, err := e.eval(data, c)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	return t.literal, nil
}
