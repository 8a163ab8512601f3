package test

import (
	"net/http"
	"strings"
	"testing"
)

// TestKickoffQueryHardening: a kick-off query with a bad percent-escape
// is a 400 (r.URL.Query() used to drop the pair and export more than was
// asked), and a query string or _typeFilter past the limits is a 400 that
// names the limit, before any work.
func TestKickoffQueryHardening(t *testing.T) {
	s := startServer(t, testConfig(t))
	for _, tc := range []struct {
		name, query, want string
	}{
		{"bad escape in a value", "_type=Patient&_typeFilter=Patient%3Fgender%3Dfe%ZZmale", "percent-encoded"},
		{"bad escape in a name", "_type=Patient&_type%ZZFilter=x", "percent-encoded"},
		{"query over 64 KiB", "_type=Patient&_typeFilter=Observation%3Fcode%3D" + strings.Repeat("c,", 40_000), "at most 65536"},
		{"_elements over the limit", "_elements=" + strings.Repeat("id,", 600), "more than 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.do("GET", "/$export?"+tc.query, nil, "Accept", "application/fhir+json", "Prefer", "respond-async")
			if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), tc.want) {
				t.Errorf("GET /$export?%.60s… = %d %s, want 400 naming %q", tc.query, res.Status, res.Body, tc.want)
			}
			checkOutcome(t, res)
		})
	}
}
