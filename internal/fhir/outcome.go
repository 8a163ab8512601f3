// Package fhir holds the FHIR-specific pure logic: resource types, the Patient
// compartment, references, $export parameter parsing and OperationOutcome.
// It imports only the standard library and small JSON helpers.
package fhir

import "encoding/json"

// OperationOutcome is the FHIR error body (requirements 2, R6).
type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

// Issue is one OperationOutcome.issue.
type Issue struct {
	Severity    string        `json:"severity"`
	Code        string        `json:"code"`
	Details     *CodeableText `json:"details,omitempty"`
	Diagnostics string        `json:"diagnostics,omitempty"`
}

// CodeableText is a CodeableConcept carrying only text.
type CodeableText struct {
	Text string `json:"text"`
}

// Outcome returns an OperationOutcome with one issue.
func Outcome(severity, code, text string) *OperationOutcome {
	return &OperationOutcome{
		ResourceType: "OperationOutcome",
		Issue:        []Issue{{Severity: severity, Code: code, Details: &CodeableText{Text: text}}},
	}
}

// JSON encodes the outcome on one line (it is also written into NDJSON error
// files).
func (o *OperationOutcome) JSON() []byte {
	b, _ := json.Marshal(o) // cannot fail: plain strings
	return b
}
