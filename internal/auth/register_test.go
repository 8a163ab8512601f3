package auth_test

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
)

func metadata(m map[string]any) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func TestRegisterInline(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	defaults := auth.RegistrationDefaults{
		MaxScopes:            []string{"system/*.rs"},
		Groups:               []string{"g1"},
		MaxConcurrentExports: 2,
	}
	c, body, err := h.a.Register(ctx, metadata(map[string]any{
		"client_name": "Acme Analytics",
		"jwks":        jwks(jwk(ecKey, "e1"), jwk(rsaKey, "r1")),
		"scope":       "system/Observation.cruds system/Patient.read",
		"contacts":    []string{"ops@acme.example"},
		"unknown":     "dropped",
	}), defaults)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if len(c.ID) != 32 {
		t.Errorf("client_id %q: want 32 hex digits (128 bits)", c.ID)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"client_id":                  c.ID,
		"client_id_issued_at":        float64(t0.Unix()),
		"client_name":                "Acme Analytics",
		"contacts":                   []any{"ops@acme.example"},
		"token_endpoint_auth_method": "private_key_jwt",
		"grant_types":                []any{"client_credentials"},
		"scope":                      "system/Observation.rs system/Patient.read",
	}
	gotKeys := got["jwks"]
	delete(got, "jwks")
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("Register response mismatch (-want +got):\n%s", diff)
	}
	if gotKeys == nil {
		t.Errorf("Register response has no jwks")
	}
	stored, err := h.clients.GetClient(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantClient := &bulk.Client{
		ID: c.ID, Name: "Acme Analytics", JWKS: c.JWKS,
		Scopes: []string{"system/Observation.rs", "system/Patient.read"}, Groups: []string{"g1"},
		MaxConcurrentExports: 2, Metadata: body, CreatedAt: t0,
	}
	if diff := gocmp.Diff(wantClient, stored); diff != "" {
		t.Errorf("stored client mismatch (-want +got):\n%s", diff)
	}

	// The registered client can get a token, within its scopes.
	a := sign("ES384", ecKey, header("ES384", "e1"), h.claims(c.ID))
	tok, err := h.a.Token(ctx, form(a, "system/*.rs"), tokenURL)
	if err != nil || tok.Scope != "system/Observation.rs system/Patient.rs" {
		t.Errorf("Token for the registered client = %+v, %v; want its registered scopes", tok, err)
	}
}

func TestRegisterJWKSURI(t *testing.T) {
	ctx := context.Background()
	keys(t)
	ks := newKeyServer(t, jwks(jwk(ecKey, "e1")), "max-age=60")
	h := uriHarness(t, ks)
	c, body, err := h.a.Register(ctx, metadata(map[string]any{
		"jwks_uri":                   ks.jwksURL(),
		"token_endpoint_auth_method": "private_key_jwt",
		"grant_types":                []string{"client_credentials"},
	}), auth.RegistrationDefaults{})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if c.JWKSURI != ks.jwksURL() || len(c.JWKS) != 0 {
		t.Errorf("client keys = %q, %s; want the jwks_uri only", c.JWKSURI, c.JWKS)
	}
	if diff := gocmp.Diff(auth.DefaultMaxScopes, c.Scopes); diff != "" {
		t.Errorf("scopes without a requested scope (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(body), `"jwks_uri":"`+ks.jwksURL()+`"`) {
		t.Errorf("response %s does not echo the jwks_uri", body)
	}
	if err := h.token(t, "ES384", ecKey, "e1", c.ID); err != nil {
		t.Errorf("Token for the jwks_uri client: %v", err)
	}
	// The registration's fetch is cached like any other.
	if n := ks.hits.Load(); n != 1 {
		t.Errorf("fetches for registration and one token = %d, want 1", n)
	}
}

func TestRegisterInvalid(t *testing.T) {
	keys(t)
	ks := newKeyServer(t, jwks(jwk(ecKey, "e1")), "")
	dupServer := newKeyServer(t, jwks(jwk(ecKey, "same"), jwk(ecKey2, "same")), "")
	ec := jwk(ecKey, "e1")
	with := func(k map[string]any, edits map[string]any) map[string]any {
		c := maps.Clone(k)
		for name, v := range edits {
			if v == nil {
				delete(c, name)
			} else {
				c[name] = v
			}
		}
		return c
	}
	inline := func(keys ...map[string]any) map[string]any { return map[string]any{"jwks": jwks(keys...)} }
	for _, tc := range []struct {
		name     string
		metadata []byte
		want     string
	}{
		{"NotJSON", []byte("client_name=x"), "JSON object"},
		{"Array", []byte("[]"), "JSON object"},
		{"TooLarge", []byte(`{"client_name":"` + strings.Repeat("x", auth.MaxMetadataBytes) + `"}`), "larger than"},
		{"BothKeyForms", metadata(map[string]any{"jwks": jwks(ec), "jwks_uri": ks.jwksURL()}), "must not both be present"},
		{"NoKeys", metadata(map[string]any{"client_name": "x"}), "jwks_uri (preferred) or jwks"},
		{"EmptySet", metadata(inline()), "no keys"},
		{"NotASet", metadata(map[string]any{"jwks": ec}), `"keys" array`},
		{"NoKid", metadata(inline(with(ec, map[string]any{"kid": nil}))), "kid is required"},
		{"NoKty", metadata(inline(with(ec, map[string]any{"kty": nil}))), "kty is required"},
		{"PrivateEC", metadata(inline(with(ec, map[string]any{"d": "AAAA"}))), `private key member "d"`},
		{"PrivateRSA", metadata(inline(with(jwk(rsaKey, "r1"), map[string]any{"p": "AAAA"}))), `private key member "p"`},
		{"Symmetric", metadata(inline(map[string]any{"kty": "oct", "kid": "h", "k": "c2VjcmV0"})), `private key member "k"`},
		{"OKP", metadata(inline(map[string]any{"kty": "OKP", "kid": "o", "crv": "Ed25519", "x": "AAAA"})), `kty "OKP" is not supported`},
		{"RSAMissingE", metadata(inline(with(jwk(rsaKey, "r1"), map[string]any{"e": nil}))), `needs "e"`},
		{"ECMissingY", metadata(inline(with(ec, map[string]any{"y": nil}))), `needs "y"`},
		{"RSA1024", metadata(inline(jwk(rsaKey1024, "small"))), "2048 to 8192 bits, not 1024"},
		{"ECBadCurve", metadata(inline(with(ec, map[string]any{"crv": "P-192"}))), `crv "P-192" is not supported`},
		{"ECPointOffCurve", metadata(inline(with(ec, map[string]any{"y": b64.EncodeToString(make([]byte, 48))}))), "invalid"}, // jwx or the curve check
		{"UseEnc", metadata(inline(with(ec, map[string]any{"use": "enc"}))), `use must be "sig"`},
		{"AlgMismatch", metadata(inline(with(ec, map[string]any{"alg": "RS384"}))), `alg "RS384"`},
		{"DuplicateKid", metadata(inline(jwk(ecKey, "same"), jwk(rsaKey, "same"))), `kid "same" is used by another key`},
		{"JWKSURIHTTP", metadata(map[string]any{"jwks_uri": "http://keys.example/jwks.json"}), "must use https"},
		{"JWKSURIPrivate", metadata(map[string]any{"jwks_uri": "https://10.1.2.3/jwks.json"}), "non-public address"},
		{"JWKSURIMetadataService", metadata(map[string]any{"jwks_uri": "https://169.254.169.254/latest/meta-data/"}), "non-public address"},
		{"JWKSURIFragment", metadata(map[string]any{"jwks_uri": ks.jwksURL() + "#x"}), "fragment"},
		{"JWKSURIUnfetchable", metadata(map[string]any{"jwks_uri": ks.URL + "/404"}), "HTTP 404"},
		{"JWKSURIDuplicateKid", metadata(map[string]any{"jwks_uri": dupServer.jwksURL()}), `kid "same" is used by another key`},
		{"AuthMethodSecret", metadata(map[string]any{"jwks": jwks(ec), "token_endpoint_auth_method": "client_secret_basic"}), "use private_key_jwt"},
		{"GrantTypesWithoutClientCredentials", metadata(map[string]any{"jwks": jwks(ec), "grant_types": []string{"authorization_code"}}), "must include client_credentials"},
		{"GrantTypesNotArray", metadata(map[string]any{"jwks": jwks(ec), "grant_types": "client_credentials"}), "grant_types member has the wrong type"},
		{"ScopeMalformed", metadata(map[string]any{"jwks": jwks(ec), "scope": "system/*.rs patient/*.read"}), `"patient/*.read" is not a valid`},
		{"ScopeWithResultParameter", metadata(map[string]any{"jwks": jwks(ec), "scope": "system/Observation.rs?_sort=date"}), "cannot enforce"},
		{"WildcardScopeWithTypeParameter", metadata(map[string]any{"jwks": jwks(ec), "scope": "system/*.rs?category=laboratory"}), "every type has"},
		{"ScopeNotAllowed", metadata(map[string]any{"jwks": jwks(ec), "scope": "system/*.cud"}), "None of the requested scopes"},
		{"ClientNameNotString", metadata(map[string]any{"jwks": jwks(ec), "client_name": 7}), "client_name member has the wrong type"},
		{"ClientURIRelative", metadata(map[string]any{"jwks": jwks(ec), "client_uri": "/about"}), "client_uri"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := uriHarness(t, ks)
			_, _, err := h.a.Register(context.Background(), tc.metadata, auth.RegistrationDefaults{})
			wantOAuth(t, err, "invalid_client_metadata", tc.want)
			n := 0
			h.clients.ListClients(context.Background(), func(*bulk.Client) error { n++; return nil })
			if n != 0 {
				t.Errorf("a failed registration stored %d clients", n)
			}
		})
	}
}

func TestRegisterLoopbackNeedsAllowLoopback(t *testing.T) {
	keys(t)
	ks := newKeyServer(t, jwks(jwk(ecKey, "e1")), "")
	h := newHarness(t)
	h.a.Fetcher = &auth.JWKSFetcher{Client: ks.Client(), Now: func() time.Time { return t0 }}
	_, _, err := h.a.Register(context.Background(), metadata(map[string]any{"jwks_uri": ks.jwksURL()}), auth.RegistrationDefaults{})
	wantOAuth(t, err, "invalid_client_metadata", "non-public address")
}
