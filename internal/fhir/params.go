package fhir

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/tranchehq/tranche/internal/bulk"
)

// NDJSON is the one output format; the three spellings the IG requires are
// accepted (R9) and normalized to it.
const NDJSON = "application/fhir+ndjson"

var outputFormats = map[string]bool{"application/fhir+ndjson": true, "application/ndjson": true, "ndjson": true}

// Parameters the IG defines that this server does not implement. They are
// rejected by name rather than as unknown, so the client can retry without
// them (requirements 1.5, R19).
var unsupportedParams = map[string]bool{
	"_minimumFileSize": true, "_maximumFileSize": true,
}

// The most a kick-off may ask for, so that the worst accepted request
// parses in well under 50 ms (bench: BenchmarkParseKickoffWorst). Beyond
// them the request is 400 naming the limit, under lenient handling too:
// ignoring part of a filter would widen the export.
const (
	MaxTypes           = 300    // _type entries (R4 has 146 resource types)
	MaxTypeFilters     = 100    // _typeFilter queries, after splitting v2 lists
	MaxTypeFilterBytes = 65_536 // all _typeFilter values together
	MaxElements        = 500    // _elements entries
	MaxPatients        = 10_000 // patient references (POST Parameters)
	MaxParamValues     = 1_000  // values of any other one parameter
)

// Associated data codes of `includeAssociatedData` (requirements 1.4.8).
var associatedCodes = map[string]bool{
	bulk.LatestProvenance: true, bulk.RelevantProvenance: true,
}

// KickoffInput is an $export request as HTTP delivered it.
type KickoffInput struct {
	Method     string // GET or POST
	Level      bulk.Level
	GroupID    string
	Query      url.Values
	Body       []byte // POST Parameters resource, if any
	RequestURL string // absolute kick-off URL, for the manifest's `request`
	BaseURL    string // the server's base URL, for attachment URLs
	// Model is the store's FHIR release (nil: R4): which types exist and
	// which are in the Patient compartment.
	Model *Model
	// Lenient is `Prefer: handling=lenient`: unsupported or invalid
	// parameters and values are ignored and listed in
	// ExportRequest.Ignored instead of failing the request (requirements
	// 1.5, R17, R20). Problems whose omission would widen or misdate the
	// export (`patient`, `_since`, `_until`, a malformed body) still fail.
	Lenient bool
	// TypeFilter compiles one `_typeFilter` value, a single-type search
	// query or a v2 comma-separated list of them, into canonical
	// single-type queries; its errors name the parameter. The search
	// package provides it (it builds on this one, so it cannot be called
	// from here). Nil makes `_typeFilter` unsupported.
	TypeFilter func(value string) ([]string, error)
	// Element checks one `_elements` entry ("Type.element" or "element").
	// Nil makes `_elements` unsupported.
	Element func(entry string) error
	// Now is the server's time; a `_since` after it is refused (ignored
	// under lenient handling). Zero skips the check.
	Now time.Time
}

// ParseKickoff validates an $export request and normalizes GET query and POST
// Parameters into one ExportRequest (requirements 1.2). Every problem is an
// EINVALID or EUNSUPPORTED error naming the parameter; under in.Lenient the
// ones that may be ignored are recorded in ExportRequest.Ignored instead.
//
// Each parameter has its own parser (kickoff.param); the checks that span
// parameters run after them all (kickoff.finish).
func ParseKickoff(in KickoffInput) (bulk.ExportRequest, error) {
	k := newKickoff(in)
	params, names, err := collectParams(in)
	if err != nil {
		return k.req, err
	}
	if err := checkValueCounts(params, names); err != nil {
		return k.req, err
	}
	for _, name := range names {
		if err := k.param(name, params[name]); err != nil {
			return k.req, err
		}
	}
	if err := k.finish(); err != nil {
		return k.req, err
	}
	return k.req, nil
}

// kickoff is one ParseKickoff call: its input and the request it builds.
type kickoff struct {
	in        KickoffInput
	m         *Model // in.Model, or R4
	req       bulk.ExportRequest
	typeGiven bool   // _type was given, even if every value was ignored
	organize  string // organizeOutputBy's accepted value
}

func newKickoff(in KickoffInput) *kickoff {
	m := in.Model
	if m == nil {
		m = R4Model()
	}
	return &kickoff{in: in, m: m, req: bulk.ExportRequest{Level: in.Level, GroupID: in.GroupID, OutputFormat: NDJSON, RequestURL: in.RequestURL, BaseURL: in.BaseURL, Lenient: in.Lenient}}
}

// collectParams gathers the query's and the POST body's parameters:
// name → values in order, and the names in the order first seen (query
// names sorted, then the body's).
func collectParams(in KickoffInput) (map[string][]string, []string, error) {
	params := make(map[string][]string)
	var names []string
	add := func(name, v string) {
		if _, ok := params[name]; !ok {
			names = append(names, name)
		}
		params[name] = append(params[name], v)
	}
	// Query parameters are honoured on POST too: FHIR lets either carry
	// primitive operation parameters.
	qnames := make([]string, 0, len(in.Query))
	for name := range in.Query {
		qnames = append(qnames, name)
	}
	slices.Sort(qnames)
	for _, name := range qnames {
		if name == "patient" {
			// `patient` is a Reference: defined for POST Parameters only (1.2).
			return nil, nil, bulk.Errorf(bulk.EINVALID, "The patient parameter is only accepted in a POST Parameters body.")
		}
		for _, v := range in.Query[name] {
			add(name, v)
		}
	}
	if in.Method == "POST" && len(strings.TrimSpace(string(in.Body))) > 0 {
		if err := parseParametersBody(in.Body, add); err != nil {
			return nil, nil, err
		}
	}
	return params, names, nil
}

// checkValueCounts refuses a parameter given more than MaxParamValues
// times (patient has its own limit, MaxPatients).
func checkValueCounts(params map[string][]string, names []string) error {
	for _, name := range names {
		if n := len(params[name]); n > MaxParamValues && name != "patient" {
			return bulk.Errorf(bulk.EINVALID, "%s is given %d times; at most %d values of one parameter are accepted.", clip(name), n, MaxParamValues)
		}
	}
	return nil
}

// ignorable fails the request, or under lenient handling records the
// problem and lets parsing go on (requirements 1.5).
func (k *kickoff) ignorable(err *bulk.Error) error {
	if !k.in.Lenient {
		return err
	}
	msg := err.Message
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	k.req.Ignored = append(k.req.Ignored, msg+" It was ignored (Prefer: handling=lenient).")
	return nil
}

// param parses one parameter's values into k.req. Each name comes once,
// with all its values.
func (k *kickoff) param(name string, vals []string) error {
	switch name {
	case "_outputFormat":
		return k.parseOutputFormat(vals)
	case "_since":
		return k.parseSince(vals)
	case "_until":
		return k.parseUntil(vals)
	case "_type":
		return k.parseTypes(vals)
	case "patient":
		return k.parsePatients(vals)
	case "_typeFilter":
		return k.parseTypeFilters(vals)
	case "_elements":
		return k.parseElements(vals)
	case "includeAssociatedData":
		return k.parseAssociated(vals)
	case "organizeOutputBy":
		return k.parseOrganizeBy(vals)
	case "allowPartialManifests":
		return k.parseAllowPartial(vals)
	default:
		return k.unknownParam(name)
	}
}

// parseOutputFormat checks _outputFormat: NDJSON is the only format (R9).
func (k *kickoff) parseOutputFormat(vals []string) error {
	if len(vals) > 1 {
		return bulk.Errorf(bulk.EINVALID, "_outputFormat may be given once.")
	}
	if !outputFormats[vals[0]] {
		return k.ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "_outputFormat %q is not supported; use application/fhir+ndjson, application/ndjson or ndjson.", clip(vals[0])))
	}
	return nil
}

// parseSince sets req.Since. A _since after the server's time is refused:
// nothing can have changed after a time still to come, so the client's
// clock or arithmetic is wrong (IG kick-off _since; what the Bulk Data test
// suites expect).
func (k *kickoff) parseSince(vals []string) error {
	t, err := parseInstantParam("_since", vals)
	if err != nil {
		return err
	}
	if !k.in.Now.IsZero() && t.After(k.in.Now) {
		return k.ignorable(bulk.Errorf(bulk.EINVALID, "_since %s is after the server's current time %s.", vals[0], k.in.Now.UTC().Format(time.RFC3339)))
	}
	k.req.Since = t
	return nil
}

// parseUntil sets req.Until.
func (k *kickoff) parseUntil(vals []string) error {
	t, err := parseInstantParam("_until", vals)
	if err != nil {
		return err
	}
	k.req.Until = t
	return nil
}

// parseInstantParam reads the one FHIR instant of _since or _until. Its
// errors are never ignorable: ignoring them would misdate the export.
func parseInstantParam(name string, vals []string) (time.Time, error) {
	if len(vals) > 1 {
		return time.Time{}, bulk.Errorf(bulk.EINVALID, "%s may be given once.", name)
	}
	t, err := ParseInstant(vals[0])
	if err != nil {
		return time.Time{}, bulk.Errorf(bulk.EINVALID, "%s %q is not a FHIR instant such as 2024-01-31T12:00:00Z.", name, clip(vals[0]))
	}
	return t, nil
}

// parseTypes sets req.Types from _type's comma-separated lists, without
// duplicates, at most MaxTypes.
func (k *kickoff) parseTypes(vals []string) error {
	k.typeGiven = true
	seen := map[string]bool{} // a list's Contains would make a long request quadratic
	for _, v := range vals {
		if strings.Count(v, ",") >= MaxTypes {
			return bulk.Errorf(bulk.EINVALID, "_type lists more than %d types.", MaxTypes)
		}
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			switch {
			case t == "" || seen[t]:
				continue
			case !k.m.IsResourceType(t):
				if err := k.ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "_type %q is not a FHIR %s resource type.", clip(t), k.m.Name)); err != nil {
					return err
				}
				continue
			case k.in.Level != bulk.LevelSystem && t == "Group":
				if err := k.ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "_type Group is not exported at Patient or Group level: a Group lists other patients.")); err != nil {
					return err
				}
				continue
			}
			seen[t] = true
			k.req.Types = append(k.req.Types, t)
			if len(k.req.Types) > MaxTypes {
				return bulk.Errorf(bulk.EINVALID, "_type lists more than %d types.", MaxTypes)
			}
		}
	}
	return nil
}

// parsePatients sets req.Patients from the body's patient references,
// without duplicates. Its errors are never ignorable: ignoring a patient
// would widen the export.
func (k *kickoff) parsePatients(vals []string) error {
	if k.in.Level == bulk.LevelSystem {
		return bulk.Errorf(bulk.EINVALID, "The patient parameter applies to Patient and Group exports only.")
	}
	if len(vals) > MaxPatients {
		return bulk.Errorf(bulk.EINVALID, "patient names %d patients; at most %d are accepted in one export (use a Group for more).", len(vals), MaxPatients)
	}
	seen := map[string]bool{}
	for _, v := range vals {
		typ, id, ok := ParseReference(v)
		if !ok || typ != "Patient" {
			return bulk.Errorf(bulk.EINVALID, "patient %q is not a Patient reference such as Patient/123.", clip(v))
		}
		if !seen[id] {
			seen[id] = true
			k.req.Patients = append(k.req.Patients, id)
		}
	}
	return nil
}

// parseTypeFilters sets req.TypeFilters: each value compiled by
// in.TypeFilter into canonical queries, without duplicates, within
// MaxTypeFilterBytes and MaxTypeFilters.
func (k *kickoff) parseTypeFilters(vals []string) error {
	if k.in.TypeFilter == nil {
		return k.ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "The _typeFilter parameter is not supported by this server."))
	}
	seen := map[string]bool{}
	filterBytes := 0
	for _, v := range vals {
		if filterBytes += len(v); filterBytes > MaxTypeFilterBytes {
			return bulk.Errorf(bulk.EINVALID, "_typeFilter values are more than %d bytes together; at most %d are accepted.", filterBytes, MaxTypeFilterBytes)
		}
		qs, err := k.in.TypeFilter(v)
		if err != nil {
			if err := k.ignorable(asError(err, "_typeFilter")); err != nil {
				return err
			}
			continue
		}
		for _, q := range qs {
			if !seen[q] {
				seen[q] = true
				k.req.TypeFilters = append(k.req.TypeFilters, q)
			}
		}
		if len(k.req.TypeFilters) > MaxTypeFilters {
			return bulk.Errorf(bulk.EINVALID, "_typeFilter has more than %d queries.", MaxTypeFilters)
		}
	}
	return nil
}

// parseElements sets req.Elements from _elements' comma-separated lists,
// each entry checked by in.Element, without duplicates, at most
// MaxElements.
func (k *kickoff) parseElements(vals []string) error {
	seen := map[string]bool{}
	for _, v := range vals {
		if strings.Count(v, ",") >= MaxElements {
			return bulk.Errorf(bulk.EINVALID, "_elements lists more than %d elements.", MaxElements)
		}
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			if e == "" || seen[e] {
				continue
			}
			seen[e] = true
			if len(seen) > MaxElements {
				return bulk.Errorf(bulk.EINVALID, "_elements lists more than %d elements.", MaxElements)
			}
			var err error
			if k.in.Element == nil {
				err = bulk.Errorf(bulk.EUNSUPPORTED, "The _elements parameter is not supported by this server.")
			} else {
				err = k.in.Element(e)
			}
			if err != nil {
				if err := k.ignorable(asError(err, "_elements")); err != nil {
					return err
				}
				continue
			}
			k.req.Elements = append(k.req.Elements, e)
		}
	}
	return nil
}

// parseAssociated sets req.Associated from includeAssociatedData's codes.
func (k *kickoff) parseAssociated(vals []string) error {
	for _, v := range vals {
		for _, c := range strings.Split(v, ",") {
			c = strings.TrimSpace(c)
			switch {
			case c == "":
			case associatedCodes[c]:
				// Conflicting values: the least restrictive, the
				// largest data set, wins (R32).
				if k.req.Associated == "" || c == bulk.RelevantProvenance {
					k.req.Associated = c
				}
			default:
				// R34: custom (_…) and unknown values.
				if err := k.ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "includeAssociatedData %q is not supported; this server supports LatestProvenanceResources and RelevantProvenanceResources.", clip(c))); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// parseOrganizeBy sets k.organize from organizeOutputBy; finish applies it.
func (k *kickoff) parseOrganizeBy(vals []string) error {
	if len(vals) > 1 {
		return k.ignorable(bulk.Errorf(bulk.EINVALID, "organizeOutputBy may be given once."))
	}
	switch v := strings.TrimSpace(vals[0]); {
	case v == "Patient":
		k.organize = v
		return nil
	case k.m.IsResourceType(v):
		return k.ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "organizeOutputBy %s is not supported; this server organizes output by Patient only.", v))
	default:
		return k.ignorable(bulk.Errorf(bulk.EINVALID, "organizeOutputBy %q is not a FHIR resource type; use Patient.", clip(v)))
	}
}

// parseAllowPartial sets req.AllowPartial from allowPartialManifests.
func (k *kickoff) parseAllowPartial(vals []string) error {
	if len(vals) > 1 {
		return k.ignorable(bulk.Errorf(bulk.EINVALID, "allowPartialManifests may be given once."))
	}
	switch vals[0] {
	case "true":
		k.req.AllowPartial = true
	case "false":
	default:
		return k.ignorable(bulk.Errorf(bulk.EINVALID, "allowPartialManifests %q is not a boolean; use true or false.", clip(vals[0])))
	}
	return nil
}

// unknownParam refuses a parameter this server does not read: by name if
// the IG defines it (unsupportedParams), else as unknown.
func (k *kickoff) unknownParam(name string) error {
	if unsupportedParams[name] {
		return k.ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "The %s parameter is not supported by this server.", name))
	}
	return k.ignorable(bulk.Errorf(bulk.EINVALID, "Unknown parameter %q.", clip(name)))
}

// finish runs the checks that span parameters, once every one is parsed.
func (k *kickoff) finish() error {
	if !k.req.Since.IsZero() && !k.req.Until.IsZero() && !k.req.Until.After(k.req.Since) {
		return bulk.Errorf(bulk.EINVALID, "_until must be later than _since.")
	}
	if err := k.applyOrganizeBy(); err != nil {
		return err
	}
	if err := k.checkCompartmentTypes(); err != nil {
		return err
	}
	if k.typeGiven && len(k.req.Types) == 0 {
		// Lenient handling ignored every value: exporting everything instead
		// would not be what the client asked for.
		return bulk.Errorf(bulk.EUNSUPPORTED, "None of the _type values can be exported by this request.")
	}
	return nil
}

// applyOrganizeBy sets req.OrganizeBy, keeping only the types that can be
// organized by Patient: Patient blocks hold Patient-compartment resources
// only, so other types asked for at system level cannot be (R91).
func (k *kickoff) applyOrganizeBy() error {
	if k.organize == "" {
		return nil
	}
	kept := k.req.Types[:0:0]
	for _, t := range k.req.Types {
		if k.m.IsPatientExportType(t) {
			kept = append(kept, t)
		} else if err := k.ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "_type %s is not in the Patient compartment, so it cannot be exported with organizeOutputBy=Patient.", t)); err != nil {
			return err
		}
	}
	k.req.Types = kept
	k.req.OrganizeBy = k.organize
	return nil
}

// checkCompartmentTypes refuses, at Patient and Group level, a _type of
// types outside the Patient compartment only. Those are exported as the
// resources the compartment's resources reference (issue 15 item 3):
// alone they reference nothing (1.4.4: SHOULD reject).
func (k *kickoff) checkCompartmentTypes() error {
	if k.in.Level == bulk.LevelSystem || k.organize != "" || len(k.req.Types) == 0 ||
		slices.ContainsFunc(k.req.Types, k.m.IsPatientExportType) {
		return nil
	}
	if err := k.ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "_type names only types outside the Patient compartment (%s); Patient and Group exports add those as the resources that exported compartment resources reference, so name at least one compartment type too (such as Patient or Encounter).", strings.Join(k.req.Types, ","))); err != nil {
		return err
	}
	k.req.Types = nil
	return nil
}

// asError returns err as an application error naming param, for messages
// from a parser that may not name it.
func asError(err error, param string) *bulk.Error {
	code := bulk.ErrorCode(err)
	if code != bulk.EUNSUPPORTED {
		code = bulk.EINVALID
	}
	msg := bulk.ErrorMessage(err)
	if !strings.Contains(msg, param) {
		msg = param + ": " + msg
	}
	return &bulk.Error{Code: code, Message: msg, Err: err}
}

// clip shortens a client value quoted in a message.
func clip(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut-- // do not split a UTF-8 sequence
	}
	return s[:cut] + "…"
}

// parseParametersBody reads a FHIR Parameters resource and passes each
// parameter as its string form.
// numericValue are the Parameters value[x] types whose JSON is a number.
var numericValue = map[string]bool{
	"valueInteger": true, "valuePositiveInt": true, "valueUnsignedInt": true,
	"valueDecimal": true, "valueInteger64": true,
}

func parseParametersBody(body []byte, add func(name, v string)) error {
	// gjson walks the body once without building maps: a 1 MiB body of
	// 10,000 patients parses in a few milliseconds.
	if !gjson.ValidBytes(body) {
		return bulk.Errorf(bulk.EINVALID, "The request body is not valid JSON.")
	}
	root := gjson.ParseBytes(body)
	if rt := root.Get("resourceType"); rt.Type != gjson.String || rt.Str != "Parameters" {
		return bulk.Errorf(bulk.EINVALID, "The request body must be a FHIR Parameters resource.")
	}
	list := root.Get("parameter")
	if list.Exists() && !list.IsArray() {
		return bulk.Errorf(bulk.EINVALID, "Parameters.parameter must be a list.")
	}
	var err error
	i := -1
	list.ForEach(func(_, param gjson.Result) bool {
		i++
		name := param.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			err = bulk.Errorf(bulk.EINVALID, "Parameters.parameter[%d] has no name.", i)
			return false
		}
		var value string
		switch name.Str {
		case "patient":
			ref := param.Get("valueReference.reference")
			if ref.Type != gjson.String || ref.Str == "" {
				err = bulk.Errorf(bulk.EINVALID, "Parameters.parameter[%d] (patient) needs a valueReference with a reference.", i)
				return false
			}
			value = ref.Str
		default:
			found := false
			param.ForEach(func(k, raw gjson.Result) bool {
				if !strings.HasPrefix(k.Str, "value") {
					return true
				}
				switch {
				case raw.Type == gjson.String:
					value = raw.Str
				case raw.Type == gjson.True || raw.Type == gjson.False:
					value = raw.Raw
				case raw.Type == gjson.Number && numericValue[k.Str]:
					// As a query gives it: _maximumFileSize is a positiveInt,
					// and a value of the parameter's own type must be refused
					// or ignored (lenient) by name, like its GET form.
					value = raw.Raw
				case k.Str == "valueCoding" && raw.Get("code").Type == gjson.String && raw.Get("code").Str != "":
					// The draft types includeAssociatedData as a Coding.
					value = raw.Get("code").Str
				default:
					err = bulk.Errorf(bulk.EINVALID, "Parameters.parameter[%d] (%s) has an unsupported %s.", i, clip(name.Str), clip(k.Str))
					return false
				}
				found = true
				return true
			})
			if err != nil {
				return false
			}
			if !found {
				err = bulk.Errorf(bulk.EINVALID, "Parameters.parameter[%d] (%s) has no value.", i, clip(name.Str))
				return false
			}
		}
		add(name.Str, value)
		return true
	})
	return err
}

var instantRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$`)

// ParseInstant parses a FHIR instant. A space where the zone offset's '+'
// belongs is read as '+': clients often forget to percent-encode it in a query
// string, and a decoded '+' becomes a space.
func ParseInstant(s string) (time.Time, error) {
	if i := strings.LastIndexByte(s, ' '); i > 0 && len(s)-i == 6 {
		s = s[:i] + "+" + s[i+1:]
	}
	if !instantRE.MatchString(s) {
		return time.Time{}, bulk.Errorf(bulk.EINVALID, "not a FHIR instant")
	}
	return time.Parse(time.RFC3339Nano, s)
}

// Prefer is the parsed Prefer request header (RFC 7240).
type Prefer struct {
	RespondAsync         bool
	Lenient              bool
	SeparateExportStatus bool
}

// ParsePrefer reads every Prefer header value; tokens are comma-separated and
// case-insensitive (requirements 1.3).
func ParsePrefer(values []string) Prefer {
	var p Prefer
	for _, v := range values {
		for _, tok := range strings.Split(v, ",") {
			tok = strings.ToLower(strings.TrimSpace(tok))
			if i := strings.IndexByte(tok, ';'); i >= 0 {
				tok = strings.TrimSpace(tok[:i])
			}
			switch strings.ReplaceAll(tok, " ", "") {
			case "respond-async":
				p.RespondAsync = true
			case "handling=lenient":
				p.Lenient = true
			case "separate-export-status":
				p.SeparateExportStatus = true
			}
		}
	}
	return p
}

// AcceptsFHIRJSON reports whether an Accept header allows an
// application/fhir+json OperationOutcome. A missing header does (R7).
func AcceptsFHIRJSON(accept string) bool {
	if strings.TrimSpace(accept) == "" {
		return true
	}
	for _, part := range strings.Split(accept, ",") {
		mt := strings.ToLower(strings.TrimSpace(part))
		if i := strings.IndexByte(mt, ';'); i >= 0 {
			mt = strings.TrimSpace(mt[:i])
		}
		switch mt {
		case "application/fhir+json", "application/json", "application/*", "*/*", "application/json+fhir":
			return true
		}
	}
	return false
}

// IsPatientExportType reports whether Patient- and Group-level exports
// return resources of typ: the Patient compartment's types except Group. A
// Group is in the compartment of each member (Group.member), but exporting
// one would hand a client the ids of every other member, including patients
// outside what it may see, and make a 10-patient export read each large
// Group's member list.
func IsPatientExportType(typ string) bool { return R4Model().IsPatientExportType(typ) }

// IsPatientCompartmentType reports whether typ is in the Patient compartment.
func IsPatientCompartmentType(typ string) bool { return R4Model().IsPatientCompartmentType(typ) }
