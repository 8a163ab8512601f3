package asl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tranchehq/tranche/internal/workflow/asl"
	"github.com/tranchehq/tranche/statemachines"
)

// An oracle that is not the interpreter: testdata/aws_examples holds the
// worked examples of the AWS Step Functions Developer Guide (definition,
// input, task results, and the output or error the page gives), one file
// per page, each case citing its page. The expected values are the
// documentation's; a case the interpreter disagrees with says so in
// "disagreement" and is skipped, so the gap stays visible.

// exampleFile is one page's examples.
type exampleFile struct {
	URL string `json:"url"` // the page
	// Archived is the page's source in the archived Developer Guide
	// repository, for text the current page no longer shows or that could
	// not be read from it.
	Archived string        `json:"archived,omitempty"`
	Cases    []exampleCase `json:"cases"`
}

type exampleCase struct {
	Name string `json:"name"`
	URL  string `json:"url,omitempty"` // the page, if not the file's; may end in #anchor
	// Doc is what the page says the example does, in its words.
	Doc string `json:"doc"`
	// Adapted says how the example differs from the page's, if it does:
	// a fragment completed into a definition, a removed feature replaced
	// by its documented equivalent.
	Adapted string `json:"adapted,omitempty"`
	// Disagreement, if set, is how the interpreter differs from the page:
	// the case is skipped with it.
	Disagreement string `json:"disagreement,omitempty"`

	// Definition is the state machine. A Task Resource that is an ARN
	// (arn:aws:lambda:...:function:Name, arn:aws:states:...:task:Name)
	// is bound to Steps[Name].
	Definition json.RawMessage     `json:"definition"`
	Input      json.RawMessage     `json:"input"`
	Steps      map[string]stepSpec `json:"steps,omitempty"`
	Want       exampleWant         `json:"want"`
}

// stepSpec is a stand-in for a Lambda function: it returns its input
// (echo), or answers call i with Outcomes[i] (the last one repeating).
type stepSpec struct {
	Echo     bool      `json:"echo,omitempty"`
	Outcomes []outcome `json:"outcomes,omitempty"`
}

type outcome struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"` // fail with this error name
	Cause  string          `json:"cause,omitempty"`
}

type exampleWant struct {
	Output     json.RawMessage              `json:"output,omitempty"`
	Error      string                       `json:"error,omitempty"` // the execution fails with this name
	Cause      *string                      `json:"cause,omitempty"` // ... and this cause
	AnyError   bool                         `json:"anyError,omitempty"`
	ParseError string                       `json:"parseError,omitempty"` // Parse refuses, with this in the message
	Match      map[string]json.RawMessage   `json:"match,omitempty"`      // "a.b" → the value at that field of the output
	Calls      map[string]int               `json:"calls,omitempty"`      // how many times each step ran
	StepInputs map[string][]json.RawMessage `json:"stepInputs,omitempty"` // inputs each step got (among others)
	Sleeps     []float64                    `json:"sleeps,omitempty"`     // the retry waits, in seconds
}

// docError is a step failure with a given error name and cause.
type docError struct{ name, cause string }

func (e *docError) Error() string     { return e.cause }
func (e *docError) ErrorName() string { return e.name }

// stepRecorder runs stepSpecs and records their calls.
type stepRecorder struct {
	mu     sync.Mutex
	calls  map[string]int
	inputs map[string][]any
}

func (r *stepRecorder) step(name string, spec stepSpec) asl.Step {
	return func(_ context.Context, in json.RawMessage) (json.RawMessage, error) {
		r.mu.Lock()
		i := r.calls[name]
		r.calls[name]++
		r.inputs[name] = append(r.inputs[name], normalize(in))
		r.mu.Unlock()
		if spec.Echo {
			return in, nil
		}
		if len(spec.Outcomes) == 0 {
			return nil, fmt.Errorf("step %s has no outcome", name)
		}
		o := spec.Outcomes[min(i, len(spec.Outcomes)-1)]
		if o.Error != "" {
			return nil, &docError{o.Error, o.Cause}
		}
		return o.Result, nil
	}
}

func normalize(raw json.RawMessage) any {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Sprintf("invalid JSON %q: %v", raw, err)
	}
	return v
}

var (
	arnName = regexp.MustCompile(`^arn:[^:]*:(lambda|states):[^:]*:[^:]*:(function|task):(.+)$`)
	nonWord = regexp.MustCompile(`\W`)
)

// bindResources replaces each Task's ARN Resource by a "${Name}"
// placeholder (non-word characters of Name as _), and returns the
// placeholder name of each step name.
func bindResources(t *testing.T, def json.RawMessage) (json.RawMessage, map[string]string) {
	t.Helper()
	var v any
	if err := json.Unmarshal(def, &v); err != nil {
		t.Fatalf("definition: %v", err)
	}
	names := map[string]string{}
	var walk func(any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			if res, ok := n["Resource"].(string); ok && n["Type"] == "Task" {
				name := res
				if m := arnName.FindStringSubmatch(res); m != nil {
					name = m[3]
				} else if p, ok := strings.CutPrefix(res, "${"); ok {
					name = strings.TrimSuffix(p, "}")
				}
				key := nonWord.ReplaceAllString(name, "_")
				names[name] = key
				n["Resource"] = "${" + key + "}"
			}
			for _, c := range n {
				walk(c)
			}
		case []any:
			for _, c := range n {
				walk(c)
			}
		}
	}
	walk(v)
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out, names
}

func loadExamples(t *testing.T) map[string]exampleFile {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "aws_examples", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no examples in testdata/aws_examples: %v", err)
	}
	files := map[string]exampleFile{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var f exampleFile
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if !strings.HasPrefix(f.URL, "https://docs.aws.amazon.com/step-functions/") || len(f.Cases) == 0 {
			t.Fatalf("%s: needs the url of its Step Functions documentation page and cases", p)
		}
		files[strings.TrimSuffix(filepath.Base(p), ".json")] = f
	}
	return files
}

func TestAWSExamples(t *testing.T) {
	files := loadExamples(t)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		f := files[name]
		t.Run(name, func(t *testing.T) {
			for _, c := range f.Cases {
				t.Run(c.Name, func(t *testing.T) {
					url := f.URL
					if c.URL != "" {
						url = c.URL
					}
					if c.Doc == "" || len(c.Definition) == 0 {
						t.Fatal("a case needs doc (what the page says) and a definition")
					}
					if c.Disagreement != "" {
						t.Skipf("the interpreter disagrees with %s: %s", url, c.Disagreement)
					}
					runExample(t, url, c)
				})
			}
		})
	}
}

func runExample(t *testing.T, url string, c exampleCase) {
	def, names := bindResources(t, c.Definition)
	rec := &stepRecorder{calls: map[string]int{}, inputs: map[string][]any{}}
	steps := map[string]asl.Step{}
	for name, spec := range c.Steps {
		key, ok := names[name]
		if !ok {
			t.Fatalf("step %q is not a Task Resource of the definition", name)
		}
		steps[key] = rec.step(name, spec)
	}
	m, err := asl.Parse(def, steps)
	if c.Want.ParseError != "" {
		if err == nil || !strings.Contains(err.Error(), c.Want.ParseError) {
			t.Fatalf("Parse() = %v, want an error containing %q (%s)", err, c.Want.ParseError, url)
		}
		return
	}
	if err != nil {
		t.Fatalf("Parse() = %v (%s)", err, url)
	}
	var sleeps []float64
	var mu sync.Mutex
	m.Sleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		sleeps = append(sleeps, d.Seconds())
		return nil
	}
	input := c.Input
	if len(input) == 0 {
		input = json.RawMessage(`{}`)
	}
	out, err := m.Run(context.Background(), "example", input)
	w := c.Want
	switch {
	case w.Error != "" || w.Cause != nil:
		var ee *asl.ExecutionError
		if !errors.As(err, &ee) || w.Error != "" && ee.Name != w.Error || w.Cause != nil && ee.Cause != *w.Cause {
			t.Errorf("Run() = %s, %v; want error %q (cause %v) per %s", out, err, w.Error, w.Cause, url)
		}
	case w.AnyError:
		if err == nil {
			t.Errorf("Run() = %s; want the execution to fail per %s", out, url)
		}
	case err != nil:
		t.Fatalf("Run() = %v; want success per %s", err, url)
	}
	if len(w.Output) > 0 {
		if diff := cmp.Diff(normalize(w.Output), normalize(out)); diff != "" {
			t.Errorf("Run() output mismatch (-%s +got):\n%s", url, diff)
		}
	}
	for _, field := range slices.Sorted(maps.Keys(w.Match)) {
		got, ok := lookupField(normalize(out), field)
		if want := normalize(w.Match[field]); !ok || !cmp.Equal(got, want) {
			t.Errorf("output %s = %v (present %v), want %v per %s", field, got, ok, want, url)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(w.Calls)) {
		if got := rec.calls[name]; got != w.Calls[name] {
			t.Errorf("step %s ran %d times, want %d per %s", name, got, w.Calls[name], url)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(w.StepInputs)) {
		for _, in := range w.StepInputs[name] {
			want := normalize(in)
			if !slices.ContainsFunc(rec.inputs[name], func(got any) bool { return cmp.Equal(got, want) }) {
				t.Errorf("step %s got inputs %v, want among them %s per %s", name, rec.inputs[name], in, url)
			}
		}
	}
	if w.Sleeps != nil || len(sleeps) > 0 {
		if diff := cmp.Diff(w.Sleeps, sleeps); diff != "" {
			t.Errorf("retry waits in seconds mismatch (-%s +got):\n%s", url, diff)
		}
	}
}

// lookupField returns the value at the dotted field path in v.
func lookupField(v any, path string) (any, bool) {
	for _, f := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[f]; !ok {
			return nil, false
		}
	}
	return v, true
}

// TestAWSExamples_CoverDefinitions: every field, state type and States.*
// error name that statemachines/*.asl.json use appears in a golden case
// that runs, unless listed here with where else it is tested.
func TestAWSExamples_CoverDefinitions(t *testing.T) {
	elsewhere := map[string]string{
		"Comment":            "no behaviour",
		"ItemReader":         "no worked input/output example found; distributed_test.go",
		"ReaderConfig":       "with ItemReader",
		"InputType":          "with ItemReader",
		"ResultWriter":       "no worked input/output example found; distributed_test.go (the manifest layout cites input-output-resultwriter.html)",
		"WriterConfig":       "with ResultWriter",
		"OutputType":         "with ResultWriter",
		"Transformation":     "with ResultWriter",
		"MaxConcurrencyPath": "no worked example found; export_test.go",
		"MaxDelaySeconds":    "no worked example found; TestRun_Retry and TestRun_RetryJitter",
		"JitterStrategy":     "no worked example found; TestRun_RetryJitter",
		"Error":              "a Fail state's Error: TestRun_ChoiceAndFail",
	}
	used := map[string]bool{}
	for name, def := range map[string][]byte{"export": statemachines.Export, "cohort": statemachines.Cohort} {
		if err := aslFeatures(def, used); err != nil {
			t.Fatalf("%s.asl.json: %v", name, err)
		}
	}
	golden := map[string]bool{}
	for _, f := range loadExamples(t) {
		for _, c := range f.Cases {
			if c.Disagreement == "" && c.Want.ParseError == "" {
				if err := aslFeatures(c.Definition, golden); err != nil {
					t.Fatalf("%s: %v", c.Name, err)
				}
			}
		}
	}
	for _, feature := range slices.Sorted(maps.Keys(used)) {
		if !golden[feature] && elsewhere[feature] == "" {
			t.Errorf("%s is used by statemachines/ but no golden case that runs has it", feature)
		}
	}
}

// aslFeatures adds to seen the fields of a definition (not state names nor
// the keys of a payload template), "Type:" and its value, and the States.*
// names in ErrorEquals.
func aslFeatures(def []byte, seen map[string]bool) error {
	var v any
	if err := json.Unmarshal(def, &v); err != nil {
		return err
	}
	var walk func(n any, names bool)
	walk = func(n any, names bool) {
		switch n := n.(type) {
		case map[string]any:
			for k, c := range n {
				if names { // the States object: its keys are state names
					walk(c, false)
					continue
				}
				seen[k] = true
				switch k {
				case "Parameters", "ItemSelector": // payload templates
				case "Type":
					seen["Type:"+fmt.Sprint(c)] = true
				case "ErrorEquals":
					for _, e := range c.([]any) {
						if s := fmt.Sprint(e); strings.HasPrefix(s, "States.") {
							seen["ErrorEquals:"+s] = true
						}
					}
				default:
					walk(c, k == "States")
				}
			}
		case []any:
			for _, c := range n {
				walk(c, false)
			}
		}
	}
	walk(v, false)
	return nil
}
