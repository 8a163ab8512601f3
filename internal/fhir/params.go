package fhir

import (
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// NDJSON is the one output format; the three spellings the IG requires are
// accepted (R9) and normalized to it.
const NDJSON = "application/fhir+ndjson"

var outputFormats = map[string]bool{"application/fhir+ndjson": true, "application/ndjson": true, "ndjson": true}

// Parameters the IG defines that this server does not implement yet. They are
// rejected by name rather than as unknown, so the client can retry without
// them (requirements 1.5, R19).
var unsupportedParams = map[string]bool{
	"_elements": true, "_typeFilter": true, "includeAssociatedData": true,
	"organizeOutputBy": true, "allowPartialManifests": true,
	"_minimumFileSize": true, "_maximumFileSize": true,
}

// KickoffInput is an $export request as HTTP delivered it.
type KickoffInput struct {
	Method     string // GET or POST
	Level      bulk.Level
	GroupID    string
	Query      url.Values
	Body       []byte // POST Parameters resource, if any
	RequestURL string // absolute kick-off URL, for the manifest's `request`
}

// ParseKickoff validates an $export request and normalizes GET query and POST
// Parameters into one ExportRequest (requirements 1.2). Every problem is an
// EINVALID or EUNSUPPORTED error naming the parameter.
func ParseKickoff(in KickoffInput) (bulk.ExportRequest, error) {
	req := bulk.ExportRequest{Level: in.Level, GroupID: in.GroupID, OutputFormat: NDJSON, RequestURL: in.RequestURL}
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
		vals := params[name]
		switch name {
		case "_outputFormat":
			if len(vals) > 1 {
				return req, bulk.Errorf(bulk.EINVALID, "_outputFormat may be given once.")
			}
			if !outputFormats[vals[0]] {
				return req, bulk.Errorf(bulk.EUNSUPPORTED, "_outputFormat %q is not supported; use application/fhir+ndjson, application/ndjson or ndjson.", vals[0])
			}
		case "_since", "_until":
			if len(vals) > 1 {
				return req, bulk.Errorf(bulk.EINVALID, "%s may be given once.", name)
			}
			t, err := ParseInstant(vals[0])
			if err != nil {
				return req, bulk.Errorf(bulk.EINVALID, "%s %q is not a FHIR instant such as 2024-01-31T12:00:00Z.", name, vals[0])
			}
			if name == "_since" {
				req.Since = t
			} else {
				req.Until = t
			}
		case "_type":
			for _, v := range vals {
				for _, t := range strings.Split(v, ",") {
					t = strings.TrimSpace(t)
					if t == "" {
						continue
					}
					if !IsResourceType(t) {
						return req, bulk.Errorf(bulk.EUNSUPPORTED, "_type %q is not a FHIR R4 resource type.", t)
					}
					if !slices.Contains(req.Types, t) {
						req.Types = append(req.Types, t)
					}
				}
			}
		case "patient":
			if in.Level == bulk.LevelSystem {
				return req, bulk.Errorf(bulk.EINVALID, "The patient parameter applies to Patient and Group exports only.")
			}
			for _, v := range vals {
				typ, id, ok := ParseReference(v)
				if !ok || typ != "Patient" {
					return req, bulk.Errorf(bulk.EINVALID, "patient %q is not a Patient reference such as Patient/123.", v)
				}
				if !slices.Contains(req.Patients, id) {
					req.Patients = append(req.Patients, id)
				}
			}
		default:
			if unsupportedParams[name] {
				return req, bulk.Errorf(bulk.EUNSUPPORTED, "The %s parameter is not supported by this server.", name)
			}
			return req, bulk.Errorf(bulk.EINVALID, "Unknown parameter %q.", name)
		}
	}
	if !req.Since.IsZero() && !req.Until.IsZero() && !req.Until.After(req.Since) {
		return req, bulk.Errorf(bulk.EINVALID, "_until must be later than _since.")
	}
	if in.Level != bulk.LevelSystem {
		// Patient and Group exports return Patient-compartment data (5.2, R18).
		for _, t := range req.Types {
			if !IsPatientCompartmentType(t) {
				return req, bulk.Errorf(bulk.EUNSUPPORTED, "_type %s is not in the Patient compartment; Patient and Group exports return compartment resources only.", t)
			}
		}
	}
	return req, nil
}

// parseParametersBody reads a FHIR Parameters resource and passes each
// parameter as its string form.
func parseParametersBody(body []byte, add func(name, v string)) error {
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []map[string]json.RawMessage
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return bulk.Errorf(bulk.EINVALID, "The request body is not valid JSON.")
	}
	if p.ResourceType != "Parameters" {
		return bulk.Errorf(bulk.EINVALID, "The request body must be a FHIR Parameters resource.")
	}
	for i, param := range p.Parameter {
		var name string
		if err := json.Unmarshal(param["name"], &name); err != nil || name == "" {
			return bulk.Errorf(bulk.EINVALID, "Parameters.parameter[%d] has no name.", i)
		}
		var value string
		switch name {
		case "patient":
			var ref struct {
				Reference string `json:"reference"`
			}
			if raw, ok := param["valueReference"]; !ok || json.Unmarshal(raw, &ref) != nil || ref.Reference == "" {
				return bulk.Errorf(bulk.EINVALID, "Parameters.parameter[%d] (patient) needs a valueReference with a reference.", i)
			}
			value = ref.Reference
		default:
			found := false
			for k, raw := range param {
				if !strings.HasPrefix(k, "value") {
					continue
				}
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					var b bool
					if json.Unmarshal(raw, &b) != nil {
						return bulk.Errorf(bulk.EINVALID, "Parameters.parameter[%d] (%s) has an unsupported %s.", i, name, k)
					}
					s = map[bool]string{true: "true", false: "false"}[b]
				}
				value, found = s, true
			}
			if !found {
				return bulk.Errorf(bulk.EINVALID, "Parameters.parameter[%d] (%s) has no value.", i, name)
			}
		}
		add(name, value)
	}
	return nil
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

// IsPatientCompartmentType reports whether typ is in the Patient compartment.
func IsPatientCompartmentType(typ string) bool {
	_, ok := slices.BinarySearch(PatientCompartmentTypes, typ)
	return ok
}
