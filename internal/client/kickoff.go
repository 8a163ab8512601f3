package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Level is the export level: the server, all patients, or one Group.
type Level string

// Export levels (Bulk Data IG, kick-off endpoints).
const (
	LevelSystem  Level = "system"
	LevelPatient Level = "patient"
	LevelGroup   Level = "group"
)

// Request is a $export kick-off.
type Request struct {
	Level   Level
	GroupID string // LevelGroup only
	// Types is _type; empty exports every type the server offers.
	Types []string
	// Since and Until are FHIR instants (_since, _until), passed as given.
	Since, Until string
	// TypeFilters are _typeFilter values, each "Type?query".
	TypeFilters []string
	// Patients are Patient ids for the `patient` parameter (POST only).
	Patients []string
	// OutputFormat is _outputFormat (default: the server's,
	// application/fhir+ndjson).
	OutputFormat string
	// Post sends a POST with a Parameters body instead of a GET.
	Post bool
}

// URL returns the kick-off URL for base: [base]/$export,
// [base]/Patient/$export or [base]/Group/{id}/$export, with the query of a
// GET kick-off.
func (r Request) URL(base string) (string, error) {
	base = strings.TrimRight(base, "/")
	var path string
	switch r.Level {
	case LevelSystem, "":
		path = "/$export"
	case LevelPatient:
		path = "/Patient/$export"
	case LevelGroup:
		if r.GroupID == "" {
			return "", errors.New("a Group export needs a Group id")
		}
		path = "/Group/" + url.PathEscape(r.GroupID) + "/$export"
	default:
		return "", fmt.Errorf("unknown export level %q", r.Level)
	}
	if r.Post {
		return base + path, nil
	}
	if len(r.Patients) > 0 {
		return "", errors.New("the patient parameter needs a POST kick-off")
	}
	q := url.Values{}
	if r.OutputFormat != "" {
		q.Set("_outputFormat", r.OutputFormat)
	}
	if len(r.Types) > 0 {
		q.Set("_type", strings.Join(r.Types, ","))
	}
	if r.Since != "" {
		q.Set("_since", r.Since)
	}
	if r.Until != "" {
		q.Set("_until", r.Until)
	}
	for _, f := range r.TypeFilters {
		q.Add("_typeFilter", f)
	}
	if len(q) == 0 {
		return base + path, nil
	}
	return base + path + "?" + q.Encode(), nil
}

// Parameters returns the FHIR Parameters body of a POST kick-off.
func (r Request) Parameters() []byte {
	type param struct {
		Name           string            `json:"name"`
		ValueString    string            `json:"valueString,omitempty"`
		ValueInstant   string            `json:"valueInstant,omitempty"`
		ValueReference map[string]string `json:"valueReference,omitempty"`
	}
	var ps []param
	if r.OutputFormat != "" {
		ps = append(ps, param{Name: "_outputFormat", ValueString: r.OutputFormat})
	}
	if len(r.Types) > 0 {
		ps = append(ps, param{Name: "_type", ValueString: strings.Join(r.Types, ",")})
	}
	if r.Since != "" {
		ps = append(ps, param{Name: "_since", ValueInstant: r.Since})
	}
	if r.Until != "" {
		ps = append(ps, param{Name: "_until", ValueInstant: r.Until})
	}
	for _, f := range r.TypeFilters {
		ps = append(ps, param{Name: "_typeFilter", ValueString: f})
	}
	for _, p := range r.Patients {
		ref := p
		if !strings.Contains(ref, "/") {
			ref = "Patient/" + p
		}
		ps = append(ps, param{Name: "patient", ValueReference: map[string]string{"reference": ref}})
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": ps}) // plain strings: cannot fail
	return b
}

// Kickoff starts an export and returns the absolute status URL from
// Content-Location (Bulk Data IG, kick-off response: 202 Accepted). 429 and
// transient failures are retried; any other error is an *Error with the
// server's OperationOutcome text.
func (c *Client) Kickoff(ctx context.Context, r Request) (string, error) {
	u, err := r.URL(c.Base)
	if err != nil {
		return "", err
	}
	var body []byte
	method := http.MethodGet
	if r.Post {
		method, body = http.MethodPost, r.Parameters()
	}
	res, err := c.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/fhir+json")
		req.Header.Set("Prefer", "respond-async")
		if body != nil {
			req.Header.Set("Content-Type", "application/fhir+json")
		}
		return req, nil
	}, true, false, func(s int) bool { return s == http.StatusAccepted || s/100 == 2 })
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("%s %s: %d, want 202 Accepted (the server did not start an asynchronous export)", method, u, res.StatusCode)
	}
	loc := res.Header.Get("Content-Location")
	if loc == "" {
		return "", fmt.Errorf("%s %s: 202 without a Content-Location status URL", method, u)
	}
	// The IG requires an absolute URL; resolve a relative one anyway.
	ref, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("%s %s: bad Content-Location %q: %w", method, u, loc, err)
	}
	return res.Request.URL.ResolveReference(ref).String(), nil
}

// Cancel sends DELETE to the status URL: it cancels a running export, or
// tells the server a finished one's files may be removed (Bulk Data IG,
// delete request: 202 Accepted).
func (c *Client) Cancel(ctx context.Context, statusURL string) error {
	res, err := c.do(ctx, func() (*http.Request, error) {
		return http.NewRequest(http.MethodDelete, statusURL, nil)
	}, true, true, func(s int) bool { return s/100 == 2 })
	if err != nil {
		return err
	}
	res.Body.Close()
	return nil
}
