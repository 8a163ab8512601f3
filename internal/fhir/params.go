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
func ParseKickoff(in KickoffInput) (bulk.ExportRequest, error) {
	req := bulk.ExportRequest{Level: in.Level, GroupID: in.GroupID, OutputFormat: NDJSON, RequestURL: in.RequestURL, BaseURL: in.BaseURL, Lenient: in.Lenient}
	m := in.Model
	if m == nil {
		m = R4Model()
	}
	params := make(map[string][]string) // name → values in order
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
			return req, bulk.Errorf(bulk.EINVALID, "The patient parameter is only accepted in a POST Parameters body.")
		}
		for _, v := range in.Query[name] {
			add(name, v)
		}
	}
	if in.Method == "POST" && len(strings.TrimSpace(string(in.Body))) > 0 {
		if err := parseParametersBody(in.Body, add); err != nil {
			return req, err
		}
	}

	for _, name := range names {
		if n := len(params[name]); n > MaxParamValues && name != "patient" { // patient: MaxPatients
			return req, bulk.Errorf(bulk.EINVALID, "%s is given %d times; at most %d values of one parameter are accepted.", clip(name), n, MaxParamValues)
		}
	}
	// Sets for linear de-duplication (a list's Contains would make a long
	// request quadratic).
	seenTypes, seenPatients, seenFilters, seenElements := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}

	// ignorable fails the request, or under lenient handling records the
	// problem and lets parsing go on (requirements 1.5).
	ignorable := func(err *bulk.Error) error {
		if !in.Lenient {
			return err
		}
		msg := err.Message
		if len(msg) > 500 {
			msg = msg[:500] + "…"
		}
		req.Ignored = append(req.Ignored, msg+" It was ignored (Prefer: handling=lenient).")
		return nil
	}
	typeGiven := false
	organize := ""
	for _, name := range names {
		vals := params[name]
		switch name {
		case "_outputFormat":
			if len(vals) > 1 {
				return req, bulk.Errorf(bulk.EINVALID, "_outputFormat may be given once.")
			}
			if !outputFormats[vals[0]] {
				if err := ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "_outputFormat %q is not supported; use application/fhir+ndjson, application/ndjson or ndjson.", clip(vals[0]))); err != nil {
					return req, err
				}
			}
		case "_since", "_until":
			if len(vals) > 1 {
				return req, bulk.Errorf(bulk.EINVALID, "%s may be given once.", name)
			}
			t, err := ParseInstant(vals[0])
			if err != nil {
				return req, bulk.Errorf(bulk.EINVALID, "%s %q is not a FHIR instant such as 2024-01-31T12:00:00Z.", name, clip(vals[0]))
			}
			if name == "_since" {
				if !in.Now.IsZero() && t.After(in.Now) {
					// Nothing can have changed after a time still to come:
					// the client's clock or arithmetic is wrong (IG
					// kick-off _since; what the Bulk Data test suites
					// expect).
					if err := ignorable(bulk.Errorf(bulk.EINVALID, "_since %s is after the server's current time %s.", vals[0], in.Now.UTC().Format(time.RFC3339))); err != nil {
						return req, err
					}
					continue
				}
				req.Since = t
			} else {
				req.Until = t
			}
		case "_type":
			typeGiven = true
			for _, v := range vals {
				if strings.Count(v, ",") >= MaxTypes {
					return req, bulk.Errorf(bulk.EINVALID, "_type lists more than %d types.", MaxTypes)
				}
				for _, t := range strings.Split(v, ",") {
					t = strings.TrimSpace(t)
					switch {
					case t == "" || seenTypes[t]:
						continue
					case !m.IsResourceType(t):
						if err := ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "_type %q is not a FHIR %s resource type.", clip(t), m.Name)); err != nil {
							return req, err
						}
						continue
					case in.Level != bulk.LevelSystem && t == "Group":
						if err := ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "_type Group is not exported at Patient or Group level: a Group lists other patients.")); err != nil {
							return req, err
						}
						continue
					}
					seenTypes[t] = true
					req.Types = append(req.Types, t)
					if len(req.Types) > MaxTypes {
						return req, bulk.Errorf(bulk.EINVALID, "_type lists more than %d types.", MaxTypes)
					}
				}
			}
		case "patient":
			if in.Level == bulk.LevelSystem {
				return req, bulk.Errorf(bulk.EINVALID, "The patient parameter applies to Patient and Group exports only.")
			}
			if len(vals) > MaxPatients {
				return req, bulk.Errorf(bulk.EINVALID, "patient names %d patients; at most %d are accepted in one export (use a Group for more).", len(vals), MaxPatients)
			}
			for _, v := range vals {
				typ, id, ok := ParseReference(v)
				if !ok || typ != "Patient" {
					return req, bulk.Errorf(bulk.EINVALID, "patient %q is not a Patient reference such as Patient/123.", clip(v))
				}
				if !seenPatients[id] {
					seenPatients[id] = true
					req.Patients = append(req.Patients, id)
				}
			}
		case "_typeFilter":
			filterBytes := 0
			for _, v := range vals {
				if in.TypeFilter == nil {
					if err := ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "The _typeFilter parameter is not supported by this server.")); err != nil {
						return req, err
					}
					break
				}
				if filterBytes += len(v); filterBytes > MaxTypeFilterBytes {
					return req, bulk.Errorf(bulk.EINVALID, "_typeFilter values are more than %d bytes together; at most %d are accepted.", filterBytes, MaxTypeFilterBytes)
				}
				qs, err := in.TypeFilter(v)
				if err != nil {
					if err := ignorable(asError(err, "_typeFilter")); err != nil {
						return req, err
					}
					continue
				}
				for _, q := range qs {
					if !seenFilters[q] {
						seenFilters[q] = true
						req.TypeFilters = append(req.TypeFilters, q)
					}
				}
				if len(req.TypeFilters) > MaxTypeFilters {
					return req, bulk.Errorf(bulk.EINVALID, "_typeFilter has more than %d queries.", MaxTypeFilters)
				}
			}
		case "_elements":
			for _, v := range vals {
				if strings.Count(v, ",") >= MaxElements {
					return req, bulk.Errorf(bulk.EINVALID, "_elements lists more than %d elements.", MaxElements)
				}
				for _, e := range strings.Split(v, ",") {
					e = strings.TrimSpace(e)
					if e == "" || seenElements[e] {
						continue
					}
					seenElements[e] = true
					if len(seenElements) > MaxElements {
						return req, bulk.Errorf(bulk.EINVALID, "_elements lists more than %d elements.", MaxElements)
					}
					var err error
					if in.Element == nil {
						err = bulk.Errorf(bulk.EUNSUPPORTED, "The _elements parameter is not supported by this server.")
					} else {
						err = in.Element(e)
					}
					if err != nil {
						if err := ignorable(asError(err, "_elements")); err != nil {
							return req, err
						}
						continue
					}
					req.Elements = append(req.Elements, e)
				}
			}
		case "includeAssociatedData":
			for _, v := range vals {
				for _, c := range strings.Split(v, ",") {
					c = strings.TrimSpace(c)
					switch {
					case c == "":
					case associatedCodes[c]:
						// Conflicting values: the least restrictive, the
						// largest data set, wins (R32).
						if req.Associated == "" || c == bulk.RelevantProvenance {
							req.Associated = c
						}
					default:
						// R34: custom (_…) and unknown values.
						if err := ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "includeAssociatedData %q is not supported; this server supports LatestProvenanceResources and RelevantProvenanceResources.", clip(c))); err != nil {
							return req, err
						}
					}
				}
			}
		case "organizeOutputBy":
			if len(vals) > 1 {
				if err := ignorable(bulk.Errorf(bulk.EINVALID, "organizeOutputBy may be given once.")); err != nil {
					return req, err
				}
				break
			}
			switch v := strings.TrimSpace(vals[0]); {
			case v == "Patient":
				organize = v
			case m.IsResourceType(v):
				if err := ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "organizeOutputBy %s is not supported; this server organizes output by Patient only.", v)); err != nil {
					return req, err
				}
			default:
				if err := ignorable(bulk.Errorf(bulk.EINVALID, "organizeOutputBy %q is not a FHIR resource type; use Patient.", clip(v))); err != nil {
					return req, err
				}
			}
		case "allowPartialManifests":
			if len(vals) > 1 {
				if err := ignorable(bulk.Errorf(bulk.EINVALID, "allowPartialManifests may be given once.")); err != nil {
					return req, err
				}
				break
			}
			switch vals[0] {
			case "true":
				req.AllowPartial = true
			case "false":
			default:
				if err := ignorable(bulk.Errorf(bulk.EINVALID, "allowPartialManifests %q is not a boolean; use true or false.", clip(vals[0]))); err != nil {
					return req, err
				}
			}
		default:
			var err *bulk.Error
			if unsupportedParams[name] {
				err = bulk.Errorf(bulk.EUNSUPPORTED, "The %s parameter is not supported by this server.", name)
			} else {
				err = bulk.Errorf(bulk.EINVALID, "Unknown parameter %q.", clip(name))
			}
			if err := ignorable(err); err != nil {
				return req, err
			}
		}
	}
	if !req.Since.IsZero() && !req.Until.IsZero() && !req.Until.After(req.Since) {
		return req, bulk.Errorf(bulk.EINVALID, "_until must be later than _since.")
	}
	if organize != "" {
		// Patient blocks hold Patient-compartment resources only: other
		// types asked for at system level cannot be organized (R91).
		kept := req.Types[:0:0]
		for _, t := range req.Types {
			if m.IsPatientExportType(t) {
				kept = append(kept, t)
			} else if err := ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "_type %s is not in the Patient compartment, so it cannot be exported with organizeOutputBy=Patient.", t)); err != nil {
				return req, err
			}
		}
		req.Types = kept
		req.OrganizeBy = organize
	}
	if in.Level != bulk.LevelSystem && organize == "" && len(req.Types) > 0 &&
		!slices.ContainsFunc(req.Types, m.IsPatientExportType) {
		// Types outside the Patient compartment are exported as the
		// resources the compartment's resources reference (issue 15 item
		// 3): alone they reference nothing (1.4.4: SHOULD reject).
		if err := ignorable(bulk.Errorf(bulk.EUNSUPPORTED, "_type names only types outside the Patient compartment (%s); Patient and Group exports add those as the resources that exported compartment resources reference, so name at least one compartment type too (such as Patient or Encounter).", strings.Join(req.Types, ","))); err != nil {
			return req, err
		}
		req.Types = nil
	}
	if typeGiven && len(req.Types) == 0 {
		// Lenient handling ignored every value: exporting everything instead
		// would not be what the client asked for.
		return req, bulk.Errorf(bulk.EUNSUPPORTED, "None of the _type values can be exported by this request.")
	}
	return req, nil
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
