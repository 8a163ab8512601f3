package test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/client"
)

// TestKickoffHeaders: a kick-off without Accept or Prefer: respond-async is
// 400 naming the header, at every level and with GET and POST (IG kick-off
// request headers, requirements 1.3: the client SHOULD send them, a server
// MAY refuse; the reference server and the Bulk Data test suites do);
// application/json is accepted, other types are 406. serve
// --lenient-headers restores the old reading, and the project's client
// exports either way (issue 15 item 1).
func TestKickoffHeaders(t *testing.T) {
	cfg := testConfig(t)
	importInto(t, cfg, importTime, generated(t, 3))
	s := startServer(t, cfg)
	s.tokens = s.newClientWith("system/*.rs", auth.RegistrationDefaults{Groups: []string{"*"}, MaxConcurrentExports: 100})
	body := `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient"}]}`
	for _, path := range []string{"/$export", "/Patient/$export", "/Group/group-all/$export"} {
		for _, method := range []string{"GET", "POST"} {
			for _, tc := range []struct {
				name           string
				accept, prefer string
				want           int
				says           string
			}{
				{"no Prefer", "application/fhir+json", "", 400, "Prefer: respond-async"},
				{"Prefer without respond-async", "application/fhir+json", "handling=lenient", 400, "Prefer: respond-async"},
				{"no Accept", "", "respond-async", 400, "Accept: application/fhir+json"},
				{"Accept application/json", "application/json", "respond-async", 202, ""},
				{"Accept xml", "application/fhir+xml", "respond-async", 406, ""},
			} {
				res := s.do(method, path, []byte(body), "Accept", tc.accept, "Prefer", tc.prefer, "Content-Type", "application/fhir+json")
				if res.Status != tc.want || !strings.Contains(string(res.Body), tc.says) {
					t.Errorf("%s %s %s = %d %s, want %d naming %q", method, path, tc.name, res.Status, res.Body, tc.want, tc.says)
				}
				if res.Status != 202 {
					checkOutcome(t, res)
				}
			}
		}
	}

	exp := &client.Export{Client: s.bulkClient(), Request: client.Request{Types: []string{"Patient"}}, Out: t.TempDir(), Parallel: 2}
	if _, err := exp.Run(context.Background()); err != nil {
		t.Errorf("tranche's client against the strict server: %v", err)
	}

	s.app.API.LenientHeaders = true // serve --lenient-headers
	res := s.do("GET", "/$export?_type=Patient", nil, "Accept", "", "Prefer", "")
	if res.Status != http.StatusAccepted {
		t.Errorf("kick-off without Accept and Prefer under --lenient-headers = %d %s, want 202", res.Status, res.Body)
	}
	exp = &client.Export{Client: s.bulkClient(), Request: client.Request{Types: []string{"Patient"}}, Out: t.TempDir(), Parallel: 2}
	if _, err := exp.Run(context.Background()); err != nil {
		t.Errorf("tranche's client against --lenient-headers: %v", err)
	}
}
