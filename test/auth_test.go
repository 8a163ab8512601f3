package test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/client"
)

// authServer starts an authenticated server over a small generated dataset.
func authServer(t *testing.T, opts ...app.LocalOption) *server {
	t.Helper()
	dir := generated(t, 12)
	cfg := testConfig(t)
	cfg.Auth.AllowLoopbackJWKS = true
	importInto(t, cfg, importTime, dir)
	return startServer(t, cfg, opts...)
}

// as returns a copy of s whose requests carry ts's tokens.
func (s *server) as(ts client.TokenSource) *server {
	c := *s
	c.tokens = ts
	return &c
}

// TestDiscovery: .well-known/smart-configuration (R95–R99).
func TestDiscovery(t *testing.T) {
	s := authServer(t)
	res := s.do("GET", "/.well-known/smart-configuration", nil, "Accept", "text/html", "Authorization", "none")
	if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("discovery = %d %s, want 200 application/json whatever Accept says (R95)", res.Status, res.Header.Get("Content-Type"))
	}
	var d map[string]any
	if err := json.Unmarshal(res.Body, &d); err != nil {
		t.Fatal(err)
	}
	has := func(field, want string) {
		t.Helper()
		list, _ := d[field].([]any)
		for _, v := range list {
			if v == want {
				return
			}
		}
		t.Errorf("%s = %v, want it to include %q", field, d[field], want)
	}
	has("grant_types_supported", "client_credentials")                      // R96
	has("capabilities", "client-confidential-asymmetric")                   // R96
	has("token_endpoint_auth_methods_supported", "private_key_jwt")         // R97
	has("token_endpoint_auth_signing_alg_values_supported", "RS384")        // R97
	has("token_endpoint_auth_signing_alg_values_supported", "ES384")        // R97
	has("code_challenge_methods_supported", "S256")                         // R99
	for _, f := range []string{"token_endpoint", "registration_endpoint"} { // R98
		if u, _ := d[f].(string); !strings.HasPrefix(u, s.URL+"/") {
			t.Errorf("%s = %q, want an absolute URL on this server", f, u)
		}
	}
}

// TestTokenEndpointErrors: RFC 6749 errors as JSON with no-store (R111,
// R115), and the response shape (R102, R104, R105).
func TestTokenEndpointErrors(t *testing.T) {
	s := authServer(t)
	post := func(form url.Values) (int, map[string]any, http.Header) {
		res := s.do("POST", "/token", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded", "Authorization", "none")
		var body map[string]any
		_ = json.Unmarshal(res.Body, &body)
		return res.Status, body, res.Header
	}
	for _, tc := range []struct {
		name string
		form url.Values
		want string
	}{
		{"bad grant type", url.Values{"grant_type": {"not_a_grant_type"}}, "unsupported_grant_type"},
		{"bad assertion type", url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"not_an_assertion_type"}, "client_assertion": {"x.y.z"}, "scope": {"system/*.read"}}, "invalid_request"},
		{"garbage assertion", url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {auth.ClientAssertionType}, "client_assertion": {"x.y.z"}, "scope": {"system/*.read"}}, "invalid_client"},
	} {
		status, body, h := post(tc.form)
		if status != http.StatusBadRequest && status != http.StatusUnauthorized || body["error"] != tc.want {
			t.Errorf("%s: %d %v, want 400/401 %s", tc.name, status, body, tc.want)
		}
		if body["error_description"] == "" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: error_description %q, Cache-Control %q (R115, RFC 6749 5.2)", tc.name, body["error_description"], h.Get("Cache-Control"))
		}
	}

	// A good request through the real client.
	ts := s.newClient("system/*.read", []string{"*"})
	tok, err := ts.Token(context.Background())
	if err != nil || tok == "" {
		t.Fatalf("token: %v", err)
	}
}

// TestAuthorizedExport: tokens are required on every FHIR route, files need
// them when requiresAccessToken is true, and one client never reaches
// another's jobs or files (R41, R43, R44, R57, R73).
func TestAuthorizedExport(t *testing.T) {
	s := authServer(t)
	for _, path := range []string{"/$export", "/Patient/$export", "/Group/group-10/$export"} {
		res := s.do("GET", path, nil, "Authorization", "none")
		if res.Status != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("GET %s without a token = %d %q, want 401 with WWW-Authenticate (R41)", path, res.Status, res.Header.Get("WWW-Authenticate"))
		}
		checkOutcome(t, res)
		res = s.do("GET", path, nil, "Authorization", "Bearer forged.token.value")
		if res.Status != http.StatusUnauthorized {
			t.Errorf("GET %s with a forged token = %d, want 401", path, res.Status)
		}
	}
	statusURL := s.kickoff("GET", "/$export?_type=Patient", nil)
	m := s.wait(statusURL)
	if m.RequiresAccessToken == nil || !*m.RequiresAccessToken {
		t.Errorf("requiresAccessToken = %v, want true (R57)", m.RequiresAccessToken)
	}
	file := m.Output[0].URL
	if res := s.do("GET", file, nil, "Authorization", "none"); res.Status != http.StatusUnauthorized {
		t.Errorf("file without a token = %d, want 401 (R73)", res.Status)
	}
	if res := s.do("GET", statusURL, nil, "Authorization", "none"); res.Status != http.StatusUnauthorized {
		t.Errorf("status without a token = %d, want 401 (R43)", res.Status)
	}

	other := s.as(s.newClient("system/*.read", []string{"*"}))
	for _, req := range []struct{ method, url string }{{"GET", statusURL}, {"GET", file}, {"DELETE", statusURL}} {
		if res := other.do(req.method, req.url, nil); res.Status != http.StatusNotFound {
			t.Errorf("another client's %s %s = %d, want 404 (R44)", req.method, req.url, res.Status)
		}
	}
	if res := s.do("GET", file, nil); res.Status != http.StatusOK {
		t.Errorf("owner's download = %d, want 200", res.Status)
	}
}

// TestScopesAndContracts: scopes bound the types (R15, R42), the contract
// bounds the Groups (R37), and quotas answer 429 with Retry-After (R39,
// R48).
func TestScopesAndContracts(t *testing.T) {
	s := authServer(t)

	// Every Group: a contract limited to some would refuse the system
	// export (TestContractGroups).
	obs := s.as(s.newClient("system/Observation.rs", []string{"*"}))
	if res := obs.do("GET", "/$export?_type=Patient", nil); res.Status != http.StatusForbidden {
		t.Errorf("_type outside the scopes = %d, want 403 (R42)", res.Status)
	} else {
		checkOutcome(t, res)
	}
	m := obs.wait(obs.kickoff("GET", "/$export", nil))
	for _, f := range m.Output {
		if f.Type != "Observation" {
			t.Errorf("export without _type returned %s with scope system/Observation.rs (R15)", f.Type)
		}
	}
	if len(m.Output) == 0 {
		t.Error("no Observations exported")
	}
	if res := obs.do("GET", "/Group/group-10/$export", nil); res.Status != http.StatusForbidden {
		t.Errorf("Group export without Group scope = %d, want 403", res.Status)
	}

	contract := s.as(s.newClient("system/*.rs", []string{"group-10"}))
	if res := contract.do("GET", "/Group/group-all/$export", nil); res.Status != http.StatusForbidden {
		t.Errorf("Group outside the contract = %d, want 403 (R37)", res.Status)
	}
	contract.wait(contract.kickoff("GET", "/Group/group-10/$export", nil))

	limited := s.newClientWith("system/*.rs", auth.RegistrationDefaults{Groups: []string{"*"}, MaxConcurrentExports: 1, MaxPollsPerMinute: 3})
	ls := s.as(limited)
	// A running export of this client, held in the store without a
	// workflow, so the quota is reached deterministically.
	now := time.Now()
	if err := s.app.DB.Jobs().CreateJob(context.Background(), &bulk.Job{ID: "held", ClientID: limited.ClientID,
		Status: bulk.StatusInProgress, CreatedAt: now, TransactionTime: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	res := ls.do("GET", "/$export", nil)
	if res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Errorf("kick-off over the concurrency quota = %d Retry-After %q, want 429 with Retry-After (R39)", res.Status, res.Header.Get("Retry-After"))
	}
	checkOutcome(t, res)
	for i := 1; i <= 4; i++ {
		res := ls.do("GET", s.URL+"/jobs/held", nil)
		if i <= 3 && res.Status != http.StatusAccepted {
			t.Errorf("poll %d = %d, want 202", i, res.Status)
		}
		if i == 4 && (res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "") {
			t.Errorf("poll %d over 3/min = %d Retry-After %q, want 429 (R48)", i, res.Status, res.Header.Get("Retry-After"))
		}
	}
}

func (s *server) newClientWith(scope string, d auth.RegistrationDefaults) *client.BackendServices {
	s.t.Helper()
	key, err := client.GenerateES384()
	if err != nil {
		s.t.Fatal(err)
	}
	md, _ := json.Marshal(map[string]any{"client_name": "test", "scope": scope,
		"jwks": map[string]any{"keys": []client.JWK{key.PublicJWK()}}})
	c, _, err := s.app.API.Authz.Authority.Register(context.Background(), md, d)
	if err != nil {
		s.t.Fatalf("Register: %v", err)
	}
	return &client.BackendServices{ClientID: c.ID, Key: key, TokenURL: s.URL + "/token", FHIRBase: s.URL, Scope: scope}
}

// TestRegistration: RFC 7591 over HTTP, with a jwks_uri served by the test
// and key rotation at that URL without re-registering (R100, R101, R110).
func TestRegistration(t *testing.T) {
	clk := &clock{}
	s := authServer(t, app.WithClock(clk.Now))
	regToken := s.app.API.Authz.RegistrationToken

	key1, _ := client.GenerateES384()
	keys := []client.JWK{key1.PublicJWK()}
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=0")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	defer jwksSrv.Close()

	register := func(auth string, md any) response {
		b, _ := json.Marshal(md)
		return s.do("POST", "/register", b, "Content-Type", "application/json", "Authorization", auth)
	}
	if res := register("none", map[string]any{"jwks_uri": jwksSrv.URL}); res.Status != http.StatusUnauthorized {
		t.Errorf("register without the initial token = %d, want 401", res.Status)
	}
	res := register("Bearer "+regToken, map[string]any{"jwks_uri": jwksSrv.URL, "jwks": map[string]any{"keys": keys}})
	var e map[string]string
	_ = json.Unmarshal(res.Body, &e)
	if res.Status != http.StatusBadRequest || e["error"] != "invalid_client_metadata" {
		t.Errorf("jwks and jwks_uri together = %d %v, want 400 invalid_client_metadata (R101)", res.Status, e)
	}
	res = register("Bearer "+regToken, map[string]any{"client_name": "payer", "jwks_uri": jwksSrv.URL, "scope": "system/*.read",
		"token_endpoint_auth_method": "private_key_jwt", "grant_types": []string{"client_credentials"}})
	var reg map[string]any
	_ = json.Unmarshal(res.Body, &reg)
	id, _ := reg["client_id"].(string)
	if res.Status != http.StatusCreated || id == "" || reg["jwks_uri"] != jwksSrv.URL {
		t.Fatalf("register = %d %s, want 201 with client_id and the metadata (R101)", res.Status, res.Body)
	}

	ts := &client.BackendServices{ClientID: id, Key: key1, FHIRBase: s.URL, Scope: "system/*.read"}
	c := s.as(ts)
	c.wait(c.kickoff("GET", "/$export?_type=Patient", nil))

	// Rotation: the URL now serves a new key; the client signs with it.
	// A jwks_uri is fetched at most once per RefreshInterval (10 s), even
	// when it says max-age=0; the test moves the server's clock past it
	// rather than wait.
	clk.Advance(auth.DefaultRefreshInterval)
	key2, _ := client.GenerateES384()
	keys = []client.JWK{key2.PublicJWK()}
	c2 := s.as(&client.BackendServices{ClientID: id, Key: key2, FHIRBase: s.URL, Scope: "system/*.read"})
	c2.wait(c2.kickoff("GET", "/$export?_type=Patient", nil))
}
