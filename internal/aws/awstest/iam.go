package awstest

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/tranchehq/tranche/internal/aws/cfn"
)

// The emulators enforce no IAM (dynalite, gofakes3 and the Step Functions
// fake accept any credentials), so a call the template does not grant
// passes every test and fails on AWS. The IAM conformance test records
// every call each function makes, under its own identity, and checks it
// against that function's statements in template.yaml with the evaluation
// below: identity-based Allow statements, an explicit Deny wins, and what
// is not allowed is denied
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).

// Call is one authorized action a principal made: what IAM evaluates for
// a request.
type Call struct {
	// Principal is the caller: the access key id, which the bench sets to
	// the function's logical id.
	Principal string
	// Action is the IAM action, e.g. dynamodb:GetItem.
	Action string
	// Resource is the ARN the action is on.
	Resource string
	// Context holds the request's condition keys, e.g. s3:prefix.
	Context map[string]string
	// Via says what request made the call ("DynamoDB_20120810.Query").
	Via string
}

func (c Call) String() string {
	s := c.Principal + ": " + c.Action + " on " + c.Resource
	for _, k := range slices.Sorted(maps.Keys(c.Context)) {
		s += fmt.Sprintf(" (%s=%q)", k, c.Context[k])
	}
	return s
}

// Statement is one statement of an identity policy, resolved.
type Statement struct {
	Deny      bool
	Actions   []string
	Resources []string
	// Conditions maps an operator (StringLike, StringEquals) to condition
	// keys and the values any of which satisfies it.
	Conditions map[string]map[string][]string
	// Source names the statement for messages: "KickoffFunction #3".
	Source string
}

// Policy is every statement attached to one principal's role.
type Policy struct {
	Principal  string
	Statements []*Statement
}

// match reports whether the statement applies to the call.
func (st *Statement) match(c Call) bool {
	if !slices.ContainsFunc(st.Actions, func(a string) bool { return wildcard(strings.ToLower(a), strings.ToLower(c.Action)) }) {
		return false
	}
	if !slices.ContainsFunc(st.Resources, func(r string) bool { return wildcard(r, c.Resource) }) {
		return false
	}
	for op, keys := range st.Conditions {
		for key, want := range keys {
			got, ok := c.Context[key]
			if !ok {
				return false // a condition on a key the request lacks fails
			}
			var hit bool
			switch op {
			case "StringLike":
				hit = slices.ContainsFunc(want, func(w string) bool { return wildcard(w, got) })
			case "StringEquals":
				hit = slices.Contains(want, got)
			default:
				return false // an operator this check does not model never allows
			}
			if !hit {
				return false
			}
		}
	}
	return true
}

// Allows returns the Allow statement that grants the call, or nil when
// none does or a Deny applies.
func (p *Policy) Allows(c Call) *Statement {
	var allow *Statement
	for _, st := range p.Statements {
		if !st.match(c) {
			continue
		}
		if st.Deny {
			return nil
		}
		if allow == nil {
			allow = st
		}
	}
	return allow
}

// wildcard matches IAM's * (any run of characters) and ? (one character).
func wildcard(pattern, s string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for len(pattern) > 0 && pattern[0] == '*' {
				pattern = pattern[1:]
			}
			if pattern == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if wildcard(pattern, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != pattern[0] {
				return false
			}
		}
		pattern, s = pattern[1:], s[1:]
	}
	return s == ""
}

// samPolicyTemplates expands the SAM policy templates the template uses
// into their statements, as SAM's policy template list defines them
// (https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/serverless-policy-template-list.html).
// A template not listed here fails the check rather than being assumed to
// grant anything.
var samPolicyTemplates = map[string]func(st *cfn.Stack, params map[string]any) ([]*Statement, error){
	// LambdaInvokePolicy: lambda:InvokeFunction on
	// arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${FunctionName}*
	"LambdaInvokePolicy": func(st *cfn.Stack, params map[string]any) ([]*Statement, error) {
		name, err := st.Eval(params["FunctionName"])
		if err != nil {
			return nil, err
		}
		arn, err := st.Eval("!Sub arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + fmt.Sprint(name) + "*")
		if err != nil {
			return nil, err
		}
		return []*Statement{{Actions: []string{"lambda:InvokeFunction"}, Resources: []string{arn.(string)}}}, nil
	},
}

// TemplatePolicies reads template.yaml and returns, for each function and
// state machine, the statements of its role: inline Statement documents
// and expanded SAM policy templates, with the intrinsics resolved in
// stack. Managed policies by name are an error (their contents are not
// in the template).
func TemplatePolicies(src []byte, stack *cfn.Stack) (map[string]*Policy, error) {
	doc, err := cfn.Parse(string(src))
	if err != nil {
		return nil, err
	}
	top, _ := doc.(map[string]any)
	resources, _ := top["Resources"].(map[string]any)
	out := map[string]*Policy{}
	for _, id := range slices.Sorted(maps.Keys(resources)) {
		r, _ := resources[id].(map[string]any)
		switch r["Type"] {
		case "AWS::Serverless::Function", "AWS::Serverless::StateMachine":
		default:
			continue
		}
		props, _ := r["Properties"].(map[string]any)
		p := &Policy{Principal: id}
		list, _ := props["Policies"].([]any)
		for i, entry := range list {
			m, ok := entry.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: Policies[%d] = %v: managed policies by name are not checked; write the statements", id, i, entry)
			}
			for key, v := range m {
				if key == "Statement" {
					sts, err := statements(stack, id, v)
					if err != nil {
						return nil, err
					}
					p.Statements = append(p.Statements, sts...)
					continue
				}
				expand, ok := samPolicyTemplates[key]
				if !ok {
					return nil, fmt.Errorf("%s: policy template %s is not modelled by awstest", id, key)
				}
				params, _ := v.(map[string]any)
				sts, err := expand(stack, params)
				if err != nil {
					return nil, fmt.Errorf("%s: %s: %w", id, key, err)
				}
				for _, st := range sts {
					st.Source = id + " " + key
				}
				p.Statements = append(p.Statements, sts...)
			}
		}
		out[id] = p
	}
	return out, nil
}

func statements(stack *cfn.Stack, id string, v any) ([]*Statement, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: Statement is not a list", id)
	}
	var out []*Statement
	for i, raw := range list {
		resolved, err := stack.Eval(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: statement %d: %w", id, i+1, err)
		}
		m, _ := resolved.(map[string]any)
		st := &Statement{Source: fmt.Sprintf("%s statement %d", id, i+1)}
		switch m["Effect"] {
		case "Allow":
		case "Deny":
			st.Deny = true
		default:
			return nil, fmt.Errorf("%s: statement %d: Effect %v", id, i+1, m["Effect"])
		}
		st.Actions = strs(m["Action"])
		st.Resources = strs(m["Resource"])
		if len(st.Actions) == 0 || len(st.Resources) == 0 {
			return nil, fmt.Errorf("%s: statement %d needs Action and Resource", id, i+1)
		}
		if c, ok := m["Condition"].(map[string]any); ok {
			st.Conditions = map[string]map[string][]string{}
			for op, keys := range c {
				km, _ := keys.(map[string]any)
				st.Conditions[op] = map[string][]string{}
				for k, vals := range km {
					st.Conditions[op][k] = strs(vals)
				}
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// strs flattens a string or a (nested) list of strings.
func strs(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, strs(e)...)
		}
		return out
	}
	return nil
}

// Report is the outcome of checking calls against policies.
type Report struct {
	// Denied lists a call of each kind (principal and name) that no
	// statement of its principal allows.
	Denied []Call
	// Used counts the calls each statement allowed; Unused lists the
	// statements that allowed none.
	Used   map[*Statement]int
	Unused []*Statement
	// Observed maps principal → the distinct "action resource" pairs it
	// made, for the closing table.
	Observed map[string][]string
	// Unchecked lists principals that made calls but have no policy (the
	// test's own setup).
	Unchecked []string
}

// Check evaluates every call against its principal's policy. Principals
// in ignore (the test harness's own identity) are not checked. The
// Observed table lists each call as name(call) ("action resource" when
// name is nil), so that a caller can fold job ids and keys into patterns.
func Check(policies map[string]*Policy, calls []Call, name func(Call) string, ignore ...string) *Report {
	if name == nil {
		name = func(c Call) string { return c.Action + " " + c.Resource }
	}
	rep := &Report{Used: map[*Statement]int{}, Observed: map[string][]string{}}
	denied := map[string]bool{}
	seen := map[string]bool{}
	unchecked := map[string]bool{}
	for _, c := range calls {
		if slices.Contains(ignore, c.Principal) {
			continue
		}
		p, ok := policies[c.Principal]
		if !ok {
			unchecked[c.Principal] = true
			continue
		}
		key := c.Principal + " " + name(c)
		if !seen[key] {
			seen[key] = true
			rep.Observed[c.Principal] = append(rep.Observed[c.Principal], name(c))
		}
		st := p.Allows(c)
		if st == nil {
			if !denied[key] {
				denied[key] = true
				rep.Denied = append(rep.Denied, c)
			}
			continue
		}
		rep.Used[st]++
	}
	for _, id := range slices.Sorted(maps.Keys(policies)) {
		for _, st := range policies[id].Statements {
			if !st.Deny && rep.Used[st] == 0 {
				rep.Unused = append(rep.Unused, st)
			}
		}
	}
	for p := range unchecked {
		rep.Unchecked = append(rep.Unchecked, p)
	}
	sort.Strings(rep.Unchecked)
	for p := range rep.Observed {
		sort.Strings(rep.Observed[p])
	}
	return rep
}
