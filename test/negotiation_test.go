package test

import (
	"net/http"
	"strings"
	"testing"
)

// TestContentNegotiation: a client that asks for application/json (which
// FHIR treats as a synonym of application/fhir+json) gets every FHIR
// answer, errors included, labelled application/json; any other Accept
// gets application/fhir+json (issue 15 item 6; FHIR R4 http.html#mime-type).
func TestContentNegotiation(t *testing.T) {
	cfg := testConfig(t)
	importInto(t, cfg, importTime, generated(t, 2))
	s := startServer(t, cfg)
	status := s.kickoff("GET", "/$export?_type=Patient", nil)
	s.wait(status)
	for _, tc := range []struct {
		name, method, path, accept, want string
		code                             int
	}{
		{"metadata json", "GET", "/metadata", "application/json", "application/json", 200},
		{"metadata fhir", "GET", "/metadata", "application/fhir+json", "application/fhir+json", 200},
		{"metadata none", "GET", "/metadata", "", "application/fhir+json", 200},
		{"metadata both", "GET", "/metadata", "application/json, application/fhir+json", "application/fhir+json", 200},
		{"kick-off json", "GET", "/$export?_type=Patient", "application/json", "application/json", 202},
		{"bad kick-off json", "GET", "/$export?_type=Bogus", "application/json", "application/json", 400},
		{"delete json", "DELETE", status, "application/json", "application/json", 202},
		{"after delete json", "DELETE", status, "application/json", "application/json", 404},
		{"after delete fhir", "GET", status, "application/fhir+json", "application/fhir+json", 404},
		{"no route json", "GET", "/nope", "application/json", "application/json", 404},
		{"group json", "GET", "/Group/group-all", "application/json", "application/json", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := []string{"Prefer", "respond-async"}
			if tc.accept != "" {
				hdr = append(hdr, "Accept", tc.accept)
			}
			res := s.do(tc.method, tc.path, nil, hdr...)
			if ct := res.Header.Get("Content-Type"); res.Status != tc.code || !strings.HasPrefix(ct, tc.want) {
				t.Errorf("%s %s (Accept %q) = %d %q, want %d %s", tc.method, tc.path, tc.accept, res.Status, ct, tc.code, tc.want)
			}
		})
	}
	_ = http.StatusOK
}
