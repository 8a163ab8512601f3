package asl

import (
	"encoding/json"
	"fmt"
	"slices"
)

// rule is a Choice Rule: a comparison on Variable, or And/Or/Not of rules.
type rule struct {
	op       string
	variable *path
	operand  any // bool, string or float64, per comparisons[op]
	rules    []*rule
	next     string // top-level rules only
}

// comparisons maps each supported comparison operator to its operand type.
// Others (StringMatches, Timestamp*, *Path) are refused at Parse time.
var comparisons = map[string]string{
	"BooleanEquals":            "bool",
	"StringEquals":             "string",
	"NumericEquals":            "number",
	"NumericLessThan":          "number",
	"NumericLessThanEquals":    "number",
	"NumericGreaterThan":       "number",
	"NumericGreaterThanEquals": "number",
	"IsPresent":                "bool",
	"IsNull":                   "bool",
	"IsBoolean":                "bool",
	"IsString":                 "bool",
	"IsNumeric":                "bool",
}

// parseRule checks a Choice rule's fields in the order the ASL
// specification lists them; it is one flat sequence of checks.
func parseRule(raw json.RawMessage, top bool) (*rule, error) {
	o, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	allowed := []string{"Variable", "Comment", "And", "Or", "Not"}
	if top {
		allowed = append(allowed, "Next")
	}
	for op := range comparisons {
		allowed = append(allowed, op)
	}
	if err := o.only("choice rule", allowed...); err != nil {
		return nil, err
	}
	if _, err := o.str("Comment"); err != nil {
		return nil, err
	}
	r := &rule{}
	if top {
		if r.next, err = o.str("Next"); err != nil {
			return nil, err
		}
		if r.next == "" {
			return nil, fmt.Errorf("a top-level choice rule needs Next")
		}
	}
	var ops []string
	for k := range o {
		if _, ok := comparisons[k]; ok || k == "And" || k == "Or" || k == "Not" {
			ops = append(ops, k)
		}
	}
	slices.Sort(ops)
	if len(ops) != 1 {
		return nil, fmt.Errorf("a choice rule needs exactly one operator, has %v", ops)
	}
	r.op = ops[0]
	switch r.op {
	case "And", "Or":
		if o.has("Variable") {
			return nil, fmt.Errorf("%s takes no Variable", r.op)
		}
		var subs []json.RawMessage
		if err := decodeStrict(o[r.op], &subs); err != nil || len(subs) == 0 {
			return nil, fmt.Errorf("%s must be a non-empty array of rules", r.op)
		}
		for i, s := range subs {
			sub, err := parseRule(s, false)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", r.op, i, err)
			}
			r.rules = append(r.rules, sub)
		}
		return r, nil
	case "Not":
		if o.has("Variable") {
			return nil, fmt.Errorf("Not takes no Variable")
		}
		sub, err := parseRule(o["Not"], false)
		if err != nil {
			return nil, fmt.Errorf("Not: %w", err)
		}
		r.rules = []*rule{sub}
		return r, nil
	}
	v, err := o.str("Variable")
	if err != nil {
		return nil, err
	}
	if v == "" {
		return nil, fmt.Errorf("%s needs a Variable", r.op)
	}
	if r.variable, err = parsePath(v); err != nil {
		return nil, fmt.Errorf("Variable: %w", err)
	}
	if r.variable.context {
		if err := checkContextPath(r.variable, false); err != nil {
			return nil, fmt.Errorf("Variable: %w", err)
		}
	}
	var operand any
	if err := decodeStrict(o[r.op], &operand); err != nil {
		return nil, err
	}
	switch comparisons[r.op] {
	case "bool":
		if _, ok := operand.(bool); !ok {
			return nil, fmt.Errorf("%s must be a boolean", r.op)
		}
	case "string":
		if _, ok := operand.(string); !ok {
			return nil, fmt.Errorf("%s must be a string", r.op)
		}
	case "number":
		n, ok := operand.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s must be a number", r.op)
		}
		if operand, err = n.Float64(); err != nil {
			return nil, fmt.Errorf("%s: %w", r.op, err)
		}
	}
	r.operand = operand
	return r, nil
}

// eval applies the rule to data. A Variable that does not resolve is a
// States.Runtime error except for IsPresent; a value of the wrong type for a
// comparison simply does not match, as on AWS. And and Or short-circuit, so
// And [IsPresent, StringEquals] is safe on a missing field.
func (r *rule) eval(data any, c *contextObject) (bool, error) {
	switch r.op {
	case "And", "Or":
		want := r.op == "Or" // the value that decides early
		for _, sub := range r.rules {
			ok, err := sub.eval(data, c)
			if err != nil || ok == want {
				return ok, err
			}
		}
		return !want, nil
	case "Not":
		ok, err := r.rules[0].eval(data, c)
		return !ok, err
	}
	v, found := resolve(r.variable, data, c)
	if r.op == "IsPresent" {
		return found == r.operand.(bool), nil
	}
	if !found {
		return false, runtimeError(c.stateName, "Invalid path '%s': The choice state's condition path references an invalid value.", r.variable)
	}
	switch r.op {
	case "IsNull":
		return (v == nil) == r.operand.(bool), nil
	case "IsBoolean":
		_, is := v.(bool)
		return is == r.operand.(bool), nil
	case "IsString":
		_, is := v.(string)
		return is == r.operand.(bool), nil
	case "IsNumeric":
		_, is := v.(json.Number)
		return is == r.operand.(bool), nil
	case "BooleanEquals":
		b, is := v.(bool)
		return is && b == r.operand.(bool), nil
	case "StringEquals":
		s, is := v.(string)
		return is && s == r.operand.(string), nil
	}
	n, is := v.(json.Number)
	if !is {
		return false, nil
	}
	f, err := n.Float64()
	if err != nil {
		return false, nil
	}
	x := r.operand.(float64)
	switch r.op {
	case "NumericEquals":
		return f == x, nil
	case "NumericLessThan":
		return f < x, nil
	case "NumericLessThanEquals":
		return f <= x, nil
	case "NumericGreaterThan":
		return f > x, nil
	case "NumericGreaterThanEquals":
		return f >= x, nil
	}
	panic("asl: unknown comparison " + r.op)
}
