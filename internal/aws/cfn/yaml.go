// Package cfn reads template.yaml for the tests that check it against the
// code: YAML as gopkg.in/yaml.v3 reads it, with CloudFormation's
// short-form tags (!Ref, !GetAtt, !Sub, !If, !Select, !Join, ...), and the
// intrinsics its policies use (Stack.Eval: Ref, GetAtt, Sub, If). It is
// the one reader of the template: infra/'s checks, awstest's IAM check and
// the Lambda bench (awstest.ReadTemplate) all go through Parse. It is no
// CloudFormation: it expands no transform, checks no resource type and
// resolves only the intrinsics Stack.Eval names.
package cfn

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// intrinsics are CloudFormation's short-form tags (the intrinsic and
// condition functions, with the language extensions'). Any other local
// tag is an error, so a misspelt one fails the parse rather than a check.
var intrinsics = map[string]bool{
	"!Base64": true, "!Cidr": true, "!FindInMap": true, "!GetAtt": true, "!GetAZs": true,
	"!ImportValue": true, "!Join": true, "!Length": true, "!Select": true, "!Split": true,
	"!Sub": true, "!ToJsonString": true, "!Transform": true, "!Ref": true,
	"!And": true, "!Condition": true, "!Equals": true, "!If": true, "!Not": true, "!Or": true,
}

// Parse reads a YAML document: mappings are map[string]any, sequences
// []any, and scalars the string as written (a number, a boolean or null is
// not converted), or nil for a key without a value. A short-form tag stays
// with its value: before a scalar it is a prefix ("!Ref Bucket",
// "!Sub arn:${AWS::Partition}:..."; alone, "!Ref", when the scalar is
// empty), before a sequence or mapping it makes a pair (["!If", [cond, a,
// b]]). Aliases are resolved; a duplicate key, a merge key (<<) or a tag
// CloudFormation does not define is an error.
func Parse(src string) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		return nil, fmt.Errorf("cfn: %w", err)
	}
	return value(&doc)
}

func value(n *yaml.Node) (any, error) {
	tag, err := intrinsic(n)
	if err != nil {
		return nil, err
	}
	var v any
	switch n.Kind {
	case 0: // an empty document
		return nil, nil
	case yaml.DocumentNode:
		return value(n.Content[0])
	case yaml.AliasNode:
		return value(n.Alias)
	case yaml.ScalarNode:
		plain := n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0
		switch {
		case tag != "" && n.Value == "" && plain:
			return tag, nil
		case tag != "":
			return tag + " " + n.Value, nil
		case n.Value == "" && plain:
			return nil, nil
		}
		return n.Value, nil
	case yaml.SequenceNode:
		seq := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			ev, err := value(e)
			if err != nil {
				return nil, err
			}
			seq = append(seq, ev)
		}
		v = seq
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				return nil, fmt.Errorf("cfn: line %d: a key must be a plain scalar", k.Line)
			}
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("cfn: line %d: duplicate key %q", k.Line, k.Value)
			}
			ev, err := value(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k.Value] = ev
		}
		v = m
	default:
		return nil, fmt.Errorf("cfn: line %d: unexpected YAML node kind %d", n.Line, n.Kind)
	}
	if tag != "" {
		return []any{tag, v}, nil
	}
	return v, nil
}

// intrinsic returns n's short-form tag ("" for none or a YAML core tag).
func intrinsic(n *yaml.Node) (string, error) {
	if !strings.HasPrefix(n.Tag, "!") || strings.HasPrefix(n.Tag, "!!") {
		return "", nil
	}
	if !intrinsics[n.Tag] {
		return "", fmt.Errorf("cfn: line %d: %s is not a CloudFormation intrinsic", n.Line, n.Tag)
	}
	return n.Tag, nil
}
