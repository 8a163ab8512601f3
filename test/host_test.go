package test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/client"
)

// TestHostHeaderIsNotTheAudience: with the base URL configured (as serve
// always has it), an assertion signed for another server's token URL and
// sent with that server's Host gets no token, and --trust-proxy's
// X-Forwarded-Host does not rewrite the discovery document (issue 14 item
// 3; SMART Backend Services: aud is this server's token URL).
func TestHostHeaderIsNotTheAudience(t *testing.T) {
	s := startServer(t, testConfig(t))
	s.app.API.BaseURL, s.app.API.TrustProxy = s.URL, true // as serve --base-url URL --trust-proxy
	good := s.newClient("system/*.rs", []string{"*"})
	if _, err := good.Token(context.Background()); err != nil {
		t.Fatalf("token for this server's audience: %v", err)
	}

	// The same client, signing for http://other-fhir.example/token and
	// reaching this server with Host: other-fhir.example.
	addr := strings.TrimPrefix(s.URL, "http://")
	toThisServer := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	forged := &client.BackendServices{ClientID: good.ClientID, Key: good.Key, Scope: good.Scope,
		TokenURL: "http://other-fhir.example/token", FHIRBase: "http://other-fhir.example", HTTP: toThisServer}
	_, err := forged.Token(context.Background())
	var te *client.TokenError
	if err == nil {
		t.Fatal("an assertion for another server's token URL, sent with its Host, got a token")
	} else if !errors.As(err, &te) || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("forged audience = %v (%T), want an invalid_client token error", err, err)
	}

	res := s.do("GET", "/.well-known/smart-configuration", nil, "X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https")
	var doc struct {
		TokenEndpoint string `json:"token_endpoint"`
		Issuer        string `json:"issuer"`
	}
	if err := json.Unmarshal(res.Body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.TokenEndpoint != s.URL+"/token" {
		t.Errorf("token_endpoint with X-Forwarded-Host = %q, want %q", doc.TokenEndpoint, s.URL+"/token")
	}

	// Derived from the request (no base URL), the document is not for
	// shared caches.
	s.app.API.BaseURL = ""
	res = s.do("GET", "/.well-known/smart-configuration", nil)
	if cc, v := res.Header.Get("Cache-Control"), res.Header.Get("Vary"); strings.Contains(cc, "public") || !strings.Contains(v, "X-Forwarded-Host") {
		t.Errorf("derived discovery: Cache-Control %q, Vary %q; want private with Vary on the host headers", cc, v)
	}
}
