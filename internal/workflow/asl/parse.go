package asl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// stateMachine is a top-level definition or a Map's ItemProcessor.
type stateMachine struct {
	startAt string
	states  map[string]*state
}

// state is one parsed state; which fields matter depends on typ.
type state struct {
	name string
	typ  string
	next string // "" when the state ends its machine

	inputPath, outputPath, resultPath ioPath
	parameters                        *template

	// Task
	step  Step
	retry []*retrier // also Map
	catch []*catcher // also Map

	// Choice
	choices     []*rule
	defaultNext string

	// Fail
	errorName, cause string

	// Map
	itemsPath          *path
	itemSelector       *template
	maxConcurrency     int
	maxConcurrencyPath *path
	processor          *stateMachine
	distributed        bool          // ProcessorConfig Mode DISTRIBUTED: each item is a child execution
	reader             *itemReader   // distributed only; nil reads the items at ItemsPath
	writer             *resultWriter // distributed only; nil returns the results as the Map's result
}

// itemReader is a Distributed Map's ItemReader: a JSON array read by the
// step bound to its Resource, with Parameters resolved against the Map's
// effective input.
type itemReader struct {
	resource   string
	step       Step
	parameters *template
}

// ioPath is InputPath, OutputPath or ResultPath: a path, or JSON null.
type ioPath struct {
	p    *path
	null bool
}

// resultWriter is a Distributed Map's ResultWriter: the Map Run's results
// written to S3 by the step bound to its Resource, with Parameters (Bucket,
// Prefix) resolved against the Map's effective input.
type resultWriter struct {
	resource       string
	step           Step
	parameters     *template
	transformation string // NONE, COMPACT or FLATTEN
}

type retrier struct {
	errorEquals []string
	interval    float64 // seconds
	maxAttempts int
	backoff     float64
	maxDelay    float64 // seconds; 0 means no cap
	jitter      bool    // JitterStrategy FULL
}

type catcher struct {
	errorEquals []string
	resultPath  ioPath
	next        string
}

// Fields each state type accepts besides Type, Comment and QueryLanguage.
// Anything else (TimeoutSeconds, HeartbeatSeconds, Credentials, Assign,
// Arguments, Output, ItemBatcher, ToleratedFailureCount, ...) is refused.
var stateFields = map[string][]string{
	"Task":    {"Next", "End", "InputPath", "OutputPath", "Parameters", "ResultPath", "Resource", "Retry", "Catch"},
	"Choice":  {"Choices", "Default", "InputPath", "OutputPath"},
	"Succeed": {"InputPath", "OutputPath"},
	"Fail":    {"Error", "Cause"},
	"Map": {"Next", "End", "InputPath", "OutputPath", "ItemsPath", "ItemSelector", "MaxConcurrency",
		"MaxConcurrencyPath", "ItemProcessor", "ResultPath", "Retry", "Catch",
		"ItemReader", "ResultWriter", "ToleratedFailurePercentage"},
}

// unsupported is Parse's error for a feature of ASL this runner dropped
// (Pass, Wait, ResultSelector, the legacy Iterator and Map Parameters): no
// definition in statemachines/ uses it, so nothing would check that it
// behaves as on Step Functions.
func unsupported(what string) error {
	return fmt.Errorf("unsupported by this runner: %s", what)
}

type parser struct {
	steps map[string]Step
	used  map[string]bool
	names map[string]bool // state names are unique across the whole definition
}

func (p *parser) parse(def []byte) (*stateMachine, error) {
	o, err := decodeObject(def)
	if err != nil {
		return nil, fmt.Errorf("definition: %w", err)
	}
	if err := o.only("top level", "StartAt", "States", "Comment", "Version", "QueryLanguage"); err != nil {
		return nil, err
	}
	if v, err := o.str("Version"); err != nil || o.has("Version") && v != "1.0" {
		return nil, fmt.Errorf("Version must be \"1.0\"")
	}
	if err := o.queryLanguage(); err != nil {
		return nil, err
	}
	sm, err := p.machine(o)
	if err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(p.steps)) {
		if p.steps[name] == nil {
			return nil, fmt.Errorf("step %q is nil", name)
		}
		// A service integration (ResourceS3GetObject, ...) is what a runner
		// provides to any definition, so it may go unused.
		if !p.used[name] && !strings.HasPrefix(name, "arn:") {
			return nil, fmt.Errorf("step %q is never referenced by a Task Resource \"${%s}\"", name, name)
		}
	}
	return sm, nil
}

// machine parses StartAt and States and checks that every transition stays
// inside this machine and that every state is reachable (AWS refuses
// definitions with unreachable states).
func (p *parser) machine(o object) (*stateMachine, error) {
	sm := &stateMachine{states: map[string]*state{}}
	var err error
	if sm.startAt, err = o.str("StartAt"); err != nil {
		return nil, err
	}
	if sm.startAt == "" {
		return nil, errors.New("StartAt is required")
	}
	var raw map[string]json.RawMessage
	if err := decodeStrict(o["States"], &raw); err != nil || len(raw) == 0 {
		return nil, errors.New("States must be a non-empty object")
	}
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		st, err := p.state(name, raw[name])
		if err != nil {
			return nil, fmt.Errorf("state %q: %w", name, err)
		}
		sm.states[name] = st
	}
	if sm.states[sm.startAt] == nil {
		return nil, fmt.Errorf("StartAt %q names no state", sm.startAt)
	}
	for _, name := range slices.Sorted(maps.Keys(sm.states)) {
		for _, t := range sm.states[name].targets() {
			if sm.states[t] == nil {
				return nil, fmt.Errorf("state %q: transition to %q, which is not a state here", name, t)
			}
		}
	}
	seen := map[string]bool{sm.startAt: true}
	for queue := []string{sm.startAt}; len(queue) > 0; queue = queue[1:] {
		for _, t := range sm.states[queue[0]].targets() {
			if !seen[t] {
				seen[t] = true
				queue = append(queue, t)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(sm.states)) {
		if !seen[name] {
			return nil, fmt.Errorf("state %q is not reachable from %q", name, sm.startAt)
		}
	}
	return sm, nil
}

func (st *state) targets() []string {
	var t []string
	if st.next != "" {
		t = append(t, st.next)
	}
	for _, r := range st.choices {
		t = append(t, r.next)
	}
	if st.defaultNext != "" {
		t = append(t, st.defaultNext)
	}
	for _, c := range st.catch {
		t = append(t, c.next)
	}
	return t
}

func (p *parser) state(name string, raw json.RawMessage) (*state, error) {
	if name == "" || len(name) > 80 {
		return nil, errors.New("a state name must have 1 to 80 characters")
	}
	if p.names[name] {
		return nil, errors.New("duplicate state name (names must be unique in the whole definition)")
	}
	p.names[name] = true
	o, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	st := &state{name: name}
	if st.typ, err = o.str("Type"); err != nil {
		return nil, err
	}
	fields, ok := stateFields[st.typ]
	switch {
	case st.typ == "Pass", st.typ == "Wait":
		return nil, unsupported(st.typ + " state")
	case !ok:
		return nil, fmt.Errorf("unsupported state Type %q", st.typ)
	case o.has("ResultSelector"):
		return nil, unsupported("ResultSelector")
	case st.typ == "Map" && o.has("Iterator"):
		return nil, unsupported("Iterator (ItemProcessor replaces it)")
	case st.typ == "Map" && o.has("Parameters"):
		return nil, unsupported("Parameters in a Map (ItemSelector replaces it)")
	}
	if err := o.only(st.typ+" state", append([]string{"Type", "Comment", "QueryLanguage"}, fields...)...); err != nil {
		return nil, err
	}
	if _, err := o.str("Comment"); err != nil {
		return nil, err
	}
	if err := o.queryLanguage(); err != nil {
		return nil, err
	}
	if slices.Contains(fields, "End") {
		if err := o.transition(st); err != nil {
			return nil, err
		}
	}
	if st.inputPath, err = o.ioPath("InputPath", false); err != nil {
		return nil, err
	}
	if st.outputPath, err = o.ioPath("OutputPath", false); err != nil {
		return nil, err
	}
	if st.resultPath, err = o.ioPath("ResultPath", true); err != nil {
		return nil, err
	}
	if st.parameters, err = o.template("Parameters", false); err != nil {
		return nil, err
	}
	if o.has("Retry") {
		if st.retry, err = parseRetry(o["Retry"]); err != nil {
			return nil, err
		}
	}
	if o.has("Catch") {
		if st.catch, err = parseCatch(o["Catch"]); err != nil {
			return nil, err
		}
	}

	switch st.typ {
	case "Task":
		err = p.task(st, o)
	case "Choice":
		err = p.choice(st, o)
	case "Fail":
		if st.errorName, err = o.str("Error"); err == nil {
			st.cause, err = o.str("Cause")
		}
	case "Map":
		err = p.mapState(st, o)
	}
	return st, err
}

func (p *parser) task(st *state, o object) error {
	res, err := o.str("Resource")
	if err != nil {
		return err
	}
	name, ok := strings.CutPrefix(res, "${")
	if name, ok = strings.CutSuffix(name, "}"); !ok || !isSubstitutionName(name) {
		return fmt.Errorf("Resource %q: only \"${Name}\" placeholders bound to steps are supported", res)
	}
	if st.step = p.steps[name]; st.step == nil {
		return fmt.Errorf("Resource %q: no step %q", res, name)
	}
	p.used[name] = true
	return nil
}

func isSubstitutionName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

func (p *parser) choice(st *state, o object) error {
	var rules []json.RawMessage
	if err := decodeStrict(o["Choices"], &rules); err != nil || len(rules) == 0 {
		return errors.New("Choices must be a non-empty array")
	}
	for i, raw := range rules {
		r, err := parseRule(raw, true)
		if err != nil {
			return fmt.Errorf("Choices[%d]: %w", i, err)
		}
		st.choices = append(st.choices, r)
	}
	var err error
	st.defaultNext, err = o.str("Default")
	return err
}

func (p *parser) mapState(st *state, o object) error {
	var err error
	st.itemsPath = rootPath
	if o.has("ItemsPath") {
		if st.itemsPath, err = o.path("ItemsPath"); err != nil {
			return err
		}
	}
	if st.itemSelector, err = o.template("ItemSelector", true); err != nil {
		return err
	}
	if o.has("MaxConcurrency") && o.has("MaxConcurrencyPath") {
		return errors.New("MaxConcurrency and MaxConcurrencyPath are exclusive")
	}
	if o.has("MaxConcurrency") {
		n, err := o.integer("MaxConcurrency", 0, 1<<31-1)
		if err != nil {
			return err
		}
		st.maxConcurrency = int(n)
	}
	if o.has("MaxConcurrencyPath") {
		if st.maxConcurrencyPath, err = o.path("MaxConcurrencyPath"); err != nil {
			return err
		}
	}
	if !o.has("ItemProcessor") {
		return errors.New("ItemProcessor is required")
	}
	proc, err := decodeObject(o["ItemProcessor"])
	if err != nil {
		return fmt.Errorf("ItemProcessor: %w", err)
	}
	if err := proc.only("ItemProcessor", "StartAt", "States", "Comment", "ProcessorConfig"); err != nil {
		return err
	}
	if proc.has("ProcessorConfig") {
		if st.distributed, err = processorConfig(proc["ProcessorConfig"]); err != nil {
			return fmt.Errorf("ProcessorConfig: %w", err)
		}
	}
	if o.has("ItemReader") {
		if !st.distributed {
			return errors.New("ItemReader needs ProcessorConfig Mode DISTRIBUTED")
		}
		if o.has("ItemsPath") {
			return errors.New("ItemsPath and ItemReader are exclusive")
		}
		if st.reader, err = p.itemReader(o["ItemReader"]); err != nil {
			return fmt.Errorf("ItemReader: %w", err)
		}
	}
	if o.has("ResultWriter") {
		if !st.distributed {
			return errors.New("ResultWriter needs ProcessorConfig Mode DISTRIBUTED")
		}
		if st.writer, err = p.resultWriter(o["ResultWriter"]); err != nil {
			return fmt.Errorf("ResultWriter: %w", err)
		}
	}
	if o.has("ToleratedFailurePercentage") {
		if !st.distributed {
			return errors.New("ToleratedFailurePercentage needs ProcessorConfig Mode DISTRIBUTED")
		}
		// Any other threshold would need the partial results of failed
		// children, which this runner does not model.
		if n, err := o.integer("ToleratedFailurePercentage", 0, 0); err != nil || n != 0 {
			return errors.New("ToleratedFailurePercentage: only 0 is supported (any failed item fails the Map)")
		}
	}
	if st.processor, err = p.machine(proc); err != nil {
		return fmt.Errorf("ItemProcessor: %w", err)
	}
	return nil
}

// processorConfig reports whether an ItemProcessor's ProcessorConfig asks
// for DISTRIBUTED mode (with its required ExecutionType) rather than INLINE.
func processorConfig(raw json.RawMessage) (bool, error) {
	cfg, err := decodeObject(raw)
	if err != nil {
		return false, err
	}
	if err := cfg.only("ProcessorConfig", "Mode", "ExecutionType"); err != nil {
		return false, err
	}
	mode, err := cfg.str("Mode")
	if err != nil {
		return false, err
	}
	typ, err := cfg.str("ExecutionType")
	if err != nil {
		return false, err
	}
	switch mode {
	case "", "INLINE":
		if cfg.has("ExecutionType") {
			return false, errors.New("ExecutionType is only for Mode DISTRIBUTED")
		}
		return false, nil
	case "DISTRIBUTED":
		// The runner has no execution time limits, so both types run the
		// same here; on AWS an EXPRESS child must end within 5 minutes.
		if typ != "STANDARD" && typ != "EXPRESS" {
			return false, errors.New("Mode DISTRIBUTED needs ExecutionType STANDARD or EXPRESS")
		}
		return true, nil
	}
	return false, fmt.Errorf("Mode %q: want INLINE or DISTRIBUTED", mode)
}

// itemReader parses an ItemReader: only a JSON array read from one S3
// object (ResourceS3GetObject with InputType JSON) is supported; CSV,
// JSONL, manifests, ListObjectsV2 and MaxItems are refused.
func (p *parser) itemReader(raw json.RawMessage) (*itemReader, error) {
	o, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	if err := o.only("ItemReader", "Resource", "ReaderConfig", "Parameters"); err != nil {
		return nil, err
	}
	r := &itemReader{}
	if r.resource, err = o.str("Resource"); err != nil {
		return nil, err
	}
	r.resource = localPartition(r.resource)
	if r.resource != ResourceS3GetObject {
		return nil, fmt.Errorf("Resource %q: only %q is supported", r.resource, ResourceS3GetObject)
	}
	if r.step = p.steps[r.resource]; r.step == nil {
		return nil, fmt.Errorf("Resource %q: no step %q", r.resource, r.resource)
	}
	p.used[r.resource] = true
	cfg, err := decodeObject(o["ReaderConfig"])
	if err != nil {
		return nil, errors.New("ReaderConfig must be a JSON object with InputType JSON")
	}
	if err := cfg.only("ReaderConfig", "InputType"); err != nil {
		return nil, err
	}
	if typ, err := cfg.str("InputType"); err != nil || typ != "JSON" {
		return nil, errors.New("ReaderConfig.InputType: only JSON is supported")
	}
	var params map[string]any
	if err := decodeStrict(o["Parameters"], &params); err != nil || params == nil {
		return nil, errors.New("Parameters must be a JSON object with Bucket and Key")
	}
	for _, k := range []string{"Bucket", "Key"} {
		_, lit := params[k]
		_, dyn := params[k+".$"]
		if !lit && !dyn {
			return nil, fmt.Errorf("Parameters needs %s (or %s.$)", k, k)
		}
	}
	for k := range params {
		if name := strings.TrimSuffix(k, ".$"); name != "Bucket" && name != "Key" {
			return nil, fmt.Errorf("unsupported field %q in Parameters (only Bucket and Key)", k)
		}
	}
	if r.parameters, err = o.template("Parameters", false); err != nil {
		return nil, err
	}
	return r, nil
}

// resultWriter parses a ResultWriter that exports the results to S3
// (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html):
// Resource ResourceS3PutObject, Parameters with Bucket and an optional
// Prefix, and an optional WriterConfig with OutputType JSON and a
// Transformation. A WriterConfig alone (results in the state output) and
// OutputType JSONL are refused.
func (p *parser) resultWriter(raw json.RawMessage) (*resultWriter, error) {
	o, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	if err := o.only("ResultWriter", "Resource", "Parameters", "WriterConfig"); err != nil {
		return nil, err
	}
	w := &resultWriter{transformation: "NONE"} // the default when exporting to S3
	if w.resource, err = o.str("Resource"); err != nil {
		return nil, err
	}
	w.resource = localPartition(w.resource)
	if w.resource != ResourceS3PutObject {
		return nil, fmt.Errorf("Resource %q: only %q is supported (with Parameters)", w.resource, ResourceS3PutObject)
	}
	if w.step = p.steps[w.resource]; w.step == nil {
		return nil, fmt.Errorf("Resource %q: no step %q", w.resource, w.resource)
	}
	p.used[w.resource] = true
	var params map[string]any
	if err := decodeStrict(o["Parameters"], &params); err != nil || params == nil {
		return nil, errors.New("Parameters must be a JSON object with Bucket and optionally Prefix")
	}
	if _, lit := params["Bucket"]; !lit {
		if _, dyn := params["Bucket.$"]; !dyn {
			return nil, errors.New("Parameters needs Bucket (or Bucket.$)")
		}
	}
	for k := range params {
		if name := strings.TrimSuffix(k, ".$"); name != "Bucket" && name != "Prefix" {
			return nil, fmt.Errorf("unsupported field %q in Parameters (only Bucket and Prefix)", k)
		}
	}
	if w.parameters, err = o.template("Parameters", false); err != nil {
		return nil, err
	}
	if o.has("WriterConfig") {
		cfg, err := decodeObject(o["WriterConfig"])
		if err != nil {
			return nil, fmt.Errorf("WriterConfig: %w", err)
		}
		if err := cfg.only("WriterConfig", "OutputType", "Transformation"); err != nil {
			return nil, err
		}
		if typ, err := cfg.str("OutputType"); err != nil || cfg.has("OutputType") && typ != "JSON" {
			return nil, errors.New("WriterConfig.OutputType: only JSON is supported")
		}
		if cfg.has("Transformation") {
			switch w.transformation, _ = cfg.str("Transformation"); w.transformation {
			case "NONE", "COMPACT", "FLATTEN":
			default:
				return nil, errors.New("WriterConfig.Transformation must be NONE, COMPACT or FLATTEN")
			}
		}
	}
	return w, nil
}

func parseRetry(raw json.RawMessage) ([]*retrier, error) {
	var list []json.RawMessage
	if err := decodeStrict(raw, &list); err != nil {
		return nil, errors.New("Retry must be an array")
	}
	var rs []*retrier
	for i, item := range list {
		r, err := parseRetrier(item, i == len(list)-1)
		if err != nil {
			return nil, fmt.Errorf("Retry[%d]: %w", i, err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func parseRetrier(raw json.RawMessage, last bool) (*retrier, error) {
	o, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	if err := o.only("retrier", "ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy", "Comment"); err != nil {
		return nil, err
	}
	r := &retrier{interval: 1, maxAttempts: 3, backoff: 2} // ASL defaults
	if r.errorEquals, err = o.errorEquals(last); err != nil {
		return nil, err
	}
	if o.has("IntervalSeconds") {
		n, err := o.integer("IntervalSeconds", 1, 99999999)
		if err != nil {
			return nil, err
		}
		r.interval = float64(n)
	}
	if o.has("MaxAttempts") {
		n, err := o.integer("MaxAttempts", 0, 99999999)
		if err != nil {
			return nil, err
		}
		r.maxAttempts = int(n)
	}
	if o.has("BackoffRate") {
		var n json.Number
		if err := decodeNumber(o["BackoffRate"], &n); err != nil {
			return nil, errors.New("BackoffRate must be a number")
		}
		if r.backoff, err = n.Float64(); err != nil || r.backoff < 1 {
			return nil, errors.New("BackoffRate must be a number >= 1.0")
		}
	}
	// MaxDelaySeconds: "greater than 0 and less than 31622401"; JitterStrategy
	// FULL or NONE (the default), per
	// https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html.
	if o.has("MaxDelaySeconds") {
		n, err := o.integer("MaxDelaySeconds", 1, 31622400)
		if err != nil {
			return nil, err
		}
		r.maxDelay = float64(n)
	}
	if o.has("JitterStrategy") {
		switch j, _ := o.str("JitterStrategy"); j {
		case "FULL":
			r.jitter = true
		case "NONE":
		default:
			return nil, errors.New("JitterStrategy must be FULL or NONE")
		}
	}
	return r, nil
}

func parseCatch(raw json.RawMessage) ([]*catcher, error) {
	var list []json.RawMessage
	if err := decodeStrict(raw, &list); err != nil {
		return nil, errors.New("Catch must be an array")
	}
	var cs []*catcher
	for i, item := range list {
		c, err := parseCatcher(item, i == len(list)-1)
		if err != nil {
			return nil, fmt.Errorf("Catch[%d]: %w", i, err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func parseCatcher(raw json.RawMessage, last bool) (*catcher, error) {
	o, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	if err := o.only("catcher", "ErrorEquals", "ResultPath", "Next", "Comment"); err != nil {
		return nil, err
	}
	c := &catcher{}
	if c.errorEquals, err = o.errorEquals(last); err != nil {
		return nil, err
	}
	if c.resultPath, err = o.ioPath("ResultPath", true); err != nil {
		return nil, err
	}
	if c.next, err = o.str("Next"); err != nil {
		return nil, err
	}
	if c.next == "" {
		return nil, errors.New("Next is required")
	}
	return c, nil
}

// object is a JSON object whose fields are decoded on demand.
type object map[string]json.RawMessage

func decodeObject(raw []byte) (object, error) {
	var o object
	if err := decodeStrict(raw, &o); err != nil || o == nil {
		return nil, errors.New("must be a JSON object")
	}
	return o, nil
}

func (o object) has(k string) bool {
	_, ok := o[k]
	return ok
}

// only fails on the first field (in sorted order) not in allowed.
func (o object) only(what string, allowed ...string) error {
	for _, k := range slices.Sorted(maps.Keys(o)) {
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("unsupported field %q in %s", k, what)
		}
	}
	return nil
}

// str returns a string field, "" if absent.
func (o object) str(k string) (string, error) {
	var s string
	if raw, ok := o[k]; ok {
		if err := decodeStrict(raw, &s); err != nil {
			return "", fmt.Errorf("%s must be a string", k)
		}
	}
	return s, nil
}

func (o object) integer(k string, min, max int64) (int64, error) {
	var n json.Number
	if err := decodeNumber(o[k], &n); err == nil {
		if i, err := n.Int64(); err == nil && i >= min && i <= max {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%s must be an integer from %d to %d", k, min, max)
}

// decodeNumber decodes a JSON number; unlike decoding into json.Number
// alone, it refuses a string such as "10".
func decodeNumber(raw json.RawMessage, n *json.Number) error {
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '"' {
		return errors.New("a string, not a number")
	}
	return decodeStrict(raw, n)
}

func (o object) queryLanguage() error {
	if q, err := o.str("QueryLanguage"); err != nil || o.has("QueryLanguage") && q != "JSONPath" {
		return errors.New("QueryLanguage: only JSONPath is supported")
	}
	return nil
}

func (o object) transition(st *state) error {
	switch {
	case o.has("Next") == o.has("End"):
		return errors.New("needs exactly one of Next and End")
	case o.has("End"):
		var end bool
		if err := decodeStrict(o["End"], &end); err != nil || !end {
			return errors.New("End must be true")
		}
		return nil
	}
	var err error
	if st.next, err = o.str("Next"); err == nil && st.next == "" {
		err = errors.New("Next must name a state")
	}
	return err
}

// path parses a field holding a reference path into the state's data.
func (o object) path(k string) (*path, error) {
	s, err := o.str(k)
	if err != nil {
		return nil, err
	}
	p, err := parsePath(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	if p.context {
		return nil, fmt.Errorf("%s: context paths ($$) are not supported here", k)
	}
	return p, nil
}

// ioPath parses InputPath, OutputPath or ResultPath: "$" when absent, and
// JSON null is kept apart from absence. A ResultPath may only name fields.
func (o object) ioPath(k string, result bool) (ioPath, error) {
	raw, ok := o[k]
	if !ok {
		return ioPath{p: rootPath}, nil
	}
	if string(raw) == "null" {
		return ioPath{null: true}, nil
	}
	p, err := o.path(k)
	if err != nil {
		return ioPath{}, err
	}
	if result && p.hasIndex() {
		return ioPath{}, fmt.Errorf("%s: array indexes are not supported in a ResultPath", k)
	}
	return ioPath{p: p}, nil
}

func (o object) template(k string, inMap bool) (*template, error) {
	raw, ok := o[k]
	if !ok {
		return nil, nil
	}
	var v any
	if err := decodeStrict(raw, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	t, err := compileTemplate(v, inMap)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	return t, nil
}

// errorEquals parses a Retrier's or Catcher's ErrorEquals. As ASL requires,
// States.ALL must be alone and in the last Retrier or Catcher.
func (o object) errorEquals(last bool) ([]string, error) {
	var names []string
	if err := decodeStrict(o["ErrorEquals"], &names); err != nil || len(names) == 0 {
		return nil, errors.New("ErrorEquals must be a non-empty array of strings")
	}
	if slices.Contains(names, ErrAll) && (len(names) > 1 || !last) {
		return nil, errors.New("States.ALL must appear alone in ErrorEquals, in the last retrier or catcher")
	}
	return names, nil
}

// PartitionPlaceholder is the definition's placeholder for the AWS
// partition in service integration ARNs (arn:${Partition}:states:::...):
// template.yaml substitutes AWS::Partition, so the definition also runs in
// aws-cn and aws-us-gov. The local runner reads it as aws.
const PartitionPlaceholder = "${Partition}"

func localPartition(resource string) string {
	return strings.Replace(resource, "arn:"+PartitionPlaceholder+":", "arn:aws:", 1)
}
