package cfn_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/aws/cfn"
)

// TestParse: YAML as yaml.v3 reads it, scalars as written, and each
// CloudFormation short-form tag kept with its value in the form Stack.Eval
// reads: a prefix of a scalar, a pair with a sequence or mapping.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      any
	}{
		{"Scalars", "a: 29\nb: true\nc: \"x: y\"\nd: 'it''s'\ne:\nf: ''\ng: plain, with commas\n",
			map[string]any{"a": "29", "b": "true", "c": "x: y", "d": "it's", "e": nil, "f": "", "g": "plain, with commas"}},
		{"Comments", "# head\na: 1 # tail\nb: \"# kept\"\n", map[string]any{"a": "1", "b": "# kept"}},
		{"BlockAndFlow", "a:\n  - x\n  - {k: v, n: [1, 2]}\n  - k: v\n    l: w\n", map[string]any{"a": []any{
			"x", map[string]any{"k": "v", "n": []any{"1", "2"}}, map[string]any{"k": "v", "l": "w"}}}},
		{"Ref", "a: !Ref Bucket\n", map[string]any{"a": "!Ref Bucket"}},
		{"GetAtt", "a: !GetAtt Queue.Arn\n", map[string]any{"a": "!GetAtt Queue.Arn"}},
		{"SubQuoted", "a: !Sub \"arn:${AWS::Partition}:s3:::${Bucket}/*\"\n", map[string]any{"a": "!Sub arn:${AWS::Partition}:s3:::${Bucket}/*"}},
		{"SubBlock", "a: !Sub |\n  line ${X}\n", map[string]any{"a": "!Sub line ${X}\n"}},
		{"If", "a: !If [IsProd, !Ref A, !Ref AWS::NoValue]\n", map[string]any{"a": []any{"!If", []any{"IsProd", "!Ref A", "!Ref AWS::NoValue"}}}},
		{"IfBlock", "a: !If\n  - IsProd\n  - 1\n  - 2\n", map[string]any{"a": []any{"!If", []any{"IsProd", "1", "2"}}}},
		{"SelectNested", "a: !Select [0, !GetAZs \"\"]\n", map[string]any{"a": []any{"!Select", []any{"0", "!GetAZs "}}}},
		{"Join", "a: !Join [\"\", [\"arn:\", !Ref AWS::Partition]]\n", map[string]any{"a": []any{"!Join", []any{"", []any{"arn:", "!Ref AWS::Partition"}}}}},
		{"TaggedMapping", "a: !Transform {Name: X}\n", map[string]any{"a": []any{"!Transform", map[string]any{"Name": "X"}}}},
		{"Condition", "a: !And [!Condition A, !Not [!Equals [!Ref P, \"\"]]]\n", map[string]any{"a": []any{"!And", []any{
			"!Condition A", []any{"!Not", []any{[]any{"!Equals", []any{"!Ref P", ""}}}}}}}},
		{"EmptyTagged", "a: !Ref\n", map[string]any{"a": "!Ref"}},
		{"Alias", "a: &x {k: v}\nb: *x\n", map[string]any{"a": map[string]any{"k": "v"}, "b": map[string]any{"k": "v"}}},
		{"Empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cfn.Parse(tc.src)
			if err != nil {
				t.Fatalf("Parse(%q) = %v", tc.src, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tc.src, diff)
			}
		})
	}
}

// TestParse_Errors: what CloudFormation would refuse, or this reading
// would get wrong, fails the parse with the line.
func TestParse_Errors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"Syntax", "a: [1, 2\n", "cfn: yaml:"},
		{"DuplicateKey", "a: 1\nb: 2\na: 3\n", `line 3: duplicate key "a"`},
		{"UnknownTag", "a: !Reff X\n", "line 1: !Reff is not a CloudFormation intrinsic"},
		{"MergeKey", "x: &x {k: v}\ny:\n  <<: *x\n", "line 3: a key must be a plain scalar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cfn.Parse(tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) = %v, %v; want an error with %q", tc.src, got, err, tc.want)
			}
		})
	}
}

// TestEval_Parsed: Stack.Eval resolves what Parse reads.
func TestEval_Parsed(t *testing.T) {
	doc, err := cfn.Parse("a: !Sub \"arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${Queue.QueueName}\"\n" +
		"b: !If [On, !Ref Bucket, !GetAtt Queue.Arn]\nc: [!Ref Bucket, \"${!Literal}\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	st := &cfn.Stack{
		Refs:       map[string]string{"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "1", "Bucket": "b"},
		Attrs:      map[string]string{"Queue.QueueName": "q", "Queue.Arn": "arn:q"},
		Conditions: map[string]bool{"On": false},
	}
	got, err := st.Eval(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": "arn:aws:sqs:us-east-1:1:q", "b": "arn:q", "c": []any{"b", "${!Literal}"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Eval(Parse(...)) (-want +got):\n%s", diff)
	}
}
