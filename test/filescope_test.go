package test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/client"
)

// TestDownloadsHonourScopes: a file is served only when the presenting
// token's scopes cover the type it holds, not merely when its client owns
// the job (issue 15 item 8; Bulk Data IG: the file request carries the
// access token, which is checked like any other, R42, R75).
func TestDownloadsHonourScopes(t *testing.T) {
	cfg := testConfig(t)
	importInto(t, cfg, importTime, generated(t, 3))
	s := startServer(t, cfg)
	wide := s.newClient("system/*.rs", []string{"*"})
	s.tokens = wide
	m := s.wait(s.kickoff("GET", "/$export?_type=Patient,Observation", nil))

	// The same client, with a token narrowed to Observation.
	narrow := &client.BackendServices{ClientID: wide.ClientID, Key: wide.Key, TokenURL: wide.TokenURL, FHIRBase: wide.FHIRBase, Scope: "system/Observation.rs"}
	tok, err := narrow.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range m.Output {
		res := s.do("GET", f.URL, nil, "Authorization", "Bearer "+tok)
		want := http.StatusForbidden
		if f.Type == "Observation" {
			want = http.StatusOK
		}
		if res.Status != want {
			t.Errorf("GET %s (%s) with a system/Observation.rs token = %d, want %d", f.URL, f.Type, res.Status, want)
		}
		if want == http.StatusForbidden {
			checkOutcome(t, res)
			if !strings.Contains(string(res.Body), f.Type) {
				t.Errorf("403 body %s does not name %s", res.Body, f.Type)
			}
		}
		seen[f.Type] = true
	}
	if !seen["Patient"] || !seen["Observation"] {
		t.Fatalf("manifest types %v, want Patient and Observation files", seen)
	}
}
