package auth_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
)

// wantOAuth fails unless err is an *OAuthError with code whose description
// contains every fragment.
func wantOAuth(t *testing.T, err error, code string, fragments ...string) {
	t.Helper()
	var oe *auth.OAuthError
	if !errors.As(err, &oe) {
		t.Fatalf("error = %v (%T), want *auth.OAuthError %s", err, err, code)
	}
	t.Logf("%s: %s", oe.Code, oe.Description)
	if oe.Code != code {
		t.Errorf("error code = %s (%s), want %s", oe.Code, oe.Description, code)
	}
	for _, f := range fragments {
		if !strings.Contains(oe.Description, f) {
			t.Errorf("error description = %q, want it to contain %q", oe.Description, f)
		}
	}
	if oe.Description == "" {
		t.Errorf("error %s has no description (R115)", oe.Code)
	}
}

func TestTokenHappy(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.addClient(t, &bulk.Client{ID: "rsa", JWKS: jwks(jwk(rsaKey, "r1"))})
	h.addClient(t, &bulk.Client{ID: "ec", JWKS: jwks(jwk(ecKey, "e1"), jwk(rsaKey2, "r2")), Scopes: []string{"system/Observation.rs", "system/Patient.read"}})

	for _, tc := range []struct {
		name, alg, kid, client string
		key                    any
		scope                  string
		wantScope              string
	}{
		{"RS384", "RS384", "r1", "rsa", rsaKey, "system/*.rs", "system/*.rs"},
		{"RS384v1", "RS384", "r1", "rsa", rsaKey, "system/*.read", "system/*.read"},
		{"ES384", "ES384", "e1", "ec", ecKey, "system/Observation.rs", "system/Observation.rs"},
		{"ES384Wildcard", "ES384", "e1", "ec", ecKey, "system/*.read", "system/Observation.read system/Patient.read"},
		{"RS384OfSecondKey", "RS384", "r2", "ec", rsaKey2, "system/Patient.rs", "system/Patient.rs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := sign(tc.alg, tc.key, header(tc.alg, tc.kid), h.claims(tc.client))
			got, err := h.a.Token(ctx, form(a, tc.scope), tokenURL)
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			if got.TokenType != "bearer" || got.ExpiresIn != 300 || got.Scope != tc.wantScope || got.AccessToken == "" {
				t.Errorf("Token = %+v, want bearer, 300 s, scope %q", got, tc.wantScope)
			}
			g, err := h.a.Verify(ctx, got.AccessToken)
			if err != nil {
				t.Fatalf("Verify(issued token): %v", err)
			}
			if g.ClientID != tc.client || !g.Expires.Equal(t0.Add(300*time.Second)) || g.Client == nil || g.Client.ID != tc.client {
				t.Errorf("Verify = %+v, want client %s expiring at %v", g, tc.client, t0.Add(300*time.Second))
			}
			if auth.FormatScopes(g.Scopes) != tc.wantScope {
				t.Errorf("Verify scopes = %q, want %q", auth.FormatScopes(g.Scopes), tc.wantScope)
			}
		})
	}

	t.Run("OptionalAlgorithm", func(t *testing.T) {
		h := newHarness(t)
		h.a.Algorithms = []string{auth.RS384, auth.ES384, auth.PS384, "HS256", "none"}
		h.addClient(t, &bulk.Client{ID: "rsa", JWKS: jwks(jwk(rsaKey, "r1"))})
		a := sign("PS384", rsaKey, header("PS384", "r1"), h.claims("rsa"))
		if _, err := h.a.Token(ctx, form(a, "system/*.rs"), tokenURL); err != nil {
			t.Errorf("Token(PS384) with PS384 enabled: %v", err)
		}
		// Listing HS256 and none in Algorithms does not enable them.
		a = sign("HS256", []byte("secret"), header("HS256", "r1"), h.claims("rsa"))
		_, err := h.a.Token(ctx, form(a, "system/*.rs"), tokenURL)
		wantOAuth(t, err, "invalid_client", "never accepted")
	})

	t.Run("Lifetime", func(t *testing.T) {
		h := newHarness(t)
		h.addClient(t, &bulk.Client{ID: "rsa", JWKS: jwks(jwk(rsaKey, "r1"))})
		for _, tc := range []struct {
			set  time.Duration
			want int
		}{{time.Minute, 60}, {time.Hour, 300}} {
			h.a.TokenLifetime = tc.set
			a := sign("RS384", rsaKey, header("RS384", "r1"), h.claims("rsa"))
			got, err := h.a.Token(ctx, form(a, "system/*.rs"), tokenURL)
			if err != nil || got.ExpiresIn != tc.want {
				t.Errorf("Token with TokenLifetime %v = %+v, %v; want expires_in %d", tc.set, got, err, tc.want)
			}
		}
	})

	t.Run("ClockSkew", func(t *testing.T) {
		h := newHarness(t)
		h.addClient(t, &bulk.Client{ID: "rsa", JWKS: jwks(jwk(rsaKey, "r1"))})
		for _, d := range []time.Duration{-59 * time.Second, 5*time.Minute + 59*time.Second} {
			c := h.claims("rsa")
			c["exp"] = t0.Add(d).Unix()
			c["iat"] = t0.Add(50 * time.Second).Unix()
			if d < 0 {
				c["iat"] = t0.Add(-2 * time.Minute).Unix()
			}
			a := sign("RS384", rsaKey, header("RS384", "r1"), c)
			if _, err := h.a.Token(ctx, form(a, "system/*.rs"), tokenURL); err != nil {
				t.Errorf("Token with exp now%+v (within the skew): %v", d, err)
			}
		}
	})
}

// TestTokenAttacks sends each bad request of the attack matrix and
// more, and checks the exact error code.
func TestTokenAttacks(t *testing.T) {
	ctx := context.Background()
	keys(t)
	// The RSA public key as an HMAC secret, in the forms an attacker would
	// try: PEM and the JWK JSON.
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	type request struct {
		alg    string
		key    any
		header map[string]any
		claims map[string]any
		scope  string
	}
	for _, tc := range []struct {
		name      string
		edit      func(h *harness, r *request)
		form      func(h *harness, assertion string) map[string][]string // replaces the form
		code      string
		fragments []string
	}{
		{name: "AlgNone", edit: func(h *harness, r *request) {
			r.alg, r.header["alg"] = "none", "none"
		}, code: "invalid_client", fragments: []string{`"none" is never accepted`}},
		{name: "AlgNoneWithSignature", edit: func(h *harness, r *request) {
			r.header["alg"] = "none"
		}, code: "invalid_client", fragments: []string{`"none" is never accepted`}},
		{name: "HS256WithPublicKeyPEM", edit: func(h *harness, r *request) {
			r.alg, r.key, r.header["alg"] = "HS256", pemKey, "HS256"
		}, code: "invalid_client", fragments: []string{`"HS256" is never accepted`}},
		{name: "HS256WithPublicKeyJWK", edit: func(h *harness, r *request) {
			j := jwks(jwk(rsaKey, "r1"))
			r.alg, r.key, r.header["alg"] = "HS256", []byte(j), "HS256"
		}, code: "invalid_client"},
		{name: "AlgAbsent", edit: func(h *harness, r *request) {
			delete(r.header, "alg")
		}, code: "invalid_client", fragments: []string{"must have an alg"}},
		{name: "RS256NotAccepted", edit: func(h *harness, r *request) {
			r.alg, r.header["alg"] = "RS256", "RS256"
		}, code: "invalid_client", fragments: []string{`"RS256" is not accepted`, "RS384 or ES384"}},
		{name: "ES384WithRSAKid", edit: func(h *harness, r *request) {
			// Signed with an EC key, naming the RSA key.
			r.alg, r.key, r.header["alg"] = "ES384", ecKey, "ES384"
		}, code: "invalid_client", fragments: []string{`no EC key with kid "r1"`}},
		{name: "ES384WithP256Key", edit: func(h *harness, r *request) {
			r.alg, r.key, r.header["alg"], r.header["kid"] = "ES384", ec256Key, "ES384", "p256"
		}, code: "invalid_client", fragments: []string{"no EC key"}},
		{name: "WrongAud", edit: func(h *harness, r *request) {
			r.claims["aud"] = "https://other.example/token"
		}, code: "invalid_client", fragments: []string{"aud", tokenURL}},
		{name: "AudAbsent", edit: func(h *harness, r *request) {
			delete(r.claims, "aud")
		}, code: "invalid_client", fragments: []string{"aud"}},
		{name: "AudArrayWithTokenURL", edit: func(h *harness, r *request) {
			r.claims["aud"] = []string{"https://other.example", tokenURL}
		}, code: ""},
		{name: "IssNotSub", edit: func(h *harness, r *request) {
			r.claims["sub"] = "someone-else"
		}, code: "invalid_client", fragments: []string{"sub must equal its iss"}},
		{name: "IssAbsent", edit: func(h *harness, r *request) {
			delete(r.claims, "iss")
			delete(r.claims, "sub")
		}, code: "invalid_client", fragments: []string{"iss"}},
		{name: "UnknownClient", edit: func(h *harness, r *request) {
			r.claims["iss"], r.claims["sub"] = "nobody", "nobody"
		}, code: "invalid_client", fragments: []string{`"nobody" is not registered`}},
		{name: "ClientIDMismatch", form: func(h *harness, a string) map[string][]string {
			f := form(a, "system/*.rs")
			f.Set("client_id", "other")
			return f
		}, code: "invalid_client", fragments: []string{"client_id"}},
		{name: "ClientIDMatch", form: func(h *harness, a string) map[string][]string {
			f := form(a, "system/*.rs")
			f.Set("client_id", "rsa")
			return f
		}, code: ""},
		{name: "ExpPast", edit: func(h *harness, r *request) {
			r.claims["exp"] = t0.Add(-2 * time.Minute).Unix()
			r.claims["iat"] = t0.Add(-5 * time.Minute).Unix()
		}, code: "invalid_client", fragments: []string{"expired"}},
		{name: "Exp10MinutesAhead", edit: func(h *harness, r *request) {
			r.claims["exp"] = t0.Add(10 * time.Minute).Unix()
		}, code: "invalid_client", fragments: []string{"more than 5 minutes"}},
		{name: "ExpAbsent", edit: func(h *harness, r *request) {
			delete(r.claims, "exp")
		}, code: "invalid_client", fragments: []string{"exp"}},
		{name: "ExpString", edit: func(h *harness, r *request) {
			r.claims["exp"] = "1709294640"
		}, code: "invalid_client", fragments: []string{"numbers"}},
		{name: "NbfFuture", edit: func(h *harness, r *request) {
			r.claims["nbf"] = t0.Add(2 * time.Minute).Unix()
		}, code: "invalid_client", fragments: []string{"not valid before"}},
		{name: "IatFuture", edit: func(h *harness, r *request) {
			r.claims["iat"] = t0.Add(2 * time.Minute).Unix()
		}, code: "invalid_client", fragments: []string{"iat"}},
		{name: "JTIAbsent", edit: func(h *harness, r *request) {
			delete(r.claims, "jti")
		}, code: "invalid_client", fragments: []string{"jti"}},
		{name: "JTITooLong", edit: func(h *harness, r *request) {
			r.claims["jti"] = strings.Repeat("j", 257)
		}, code: "invalid_client", fragments: []string{"jti"}},
		{name: "UnknownKid", edit: func(h *harness, r *request) {
			r.header["kid"] = "nope"
		}, code: "invalid_client", fragments: []string{`kid "nope"`}},
		{name: "KidAbsent", edit: func(h *harness, r *request) {
			delete(r.header, "kid")
		}, code: "invalid_client", fragments: []string{"kid"}},
		{name: "DuplicateKid", edit: func(h *harness, r *request) {
			r.claims["iss"], r.claims["sub"], r.header["kid"] = "dup", "dup", "same"
		}, code: "invalid_client", fragments: []string{"more than one"}},
		{name: "JKUNotRegistered", edit: func(h *harness, r *request) {
			r.header["jku"] = "https://attacker.example/jwks.json"
		}, code: "invalid_client", fragments: []string{"jku"}},
		{name: "TypAccessToken", edit: func(h *harness, r *request) {
			r.header["typ"] = "at+jwt"
		}, code: "invalid_client", fragments: []string{"typ"}},
		{name: "Crit", edit: func(h *harness, r *request) {
			r.header["crit"] = []string{"exp"}
		}, code: "invalid_client", fragments: []string{"crit"}},
		{name: "B64False", edit: func(h *harness, r *request) {
			r.header["b64"] = false
		}, code: "invalid_client", fragments: []string{"b64"}},
		{name: "OtherKeySameKid", edit: func(h *harness, r *request) {
			r.key = rsaKey2 // a forger's key, naming the client's kid
		}, code: "invalid_client", fragments: []string{"signature"}},
		{name: "NotAJWT", form: func(h *harness, a string) map[string][]string {
			return form("not.a.jwt", "system/*.rs")
		}, code: "invalid_client", fragments: []string{"not a valid JWT"}},
		{name: "Oversized", edit: func(h *harness, r *request) {
			r.claims["pad"] = strings.Repeat("x", auth.MaxAssertionBytes)
		}, code: "invalid_client", fragments: []string{"longer than 16384 bytes"}},
		{name: "BadGrantType", form: func(h *harness, a string) map[string][]string {
			f := form(a, "system/*.rs")
			f.Set("grant_type", "not_a_grant_type")
			return f
		}, code: "unsupported_grant_type"},
		{name: "GrantTypeAbsent", form: func(h *harness, a string) map[string][]string {
			f := form(a, "system/*.rs")
			f.Del("grant_type")
			return f
		}, code: "invalid_request", fragments: []string{"grant_type"}},
		{name: "BadAssertionType", form: func(h *harness, a string) map[string][]string {
			f := form(a, "system/*.rs")
			f.Set("client_assertion_type", "not_an_assertion_type")
			return f
		}, code: "invalid_request", fragments: []string{"client_assertion_type"}},
		{name: "AssertionAbsent", form: func(h *harness, a string) map[string][]string {
			f := form(a, "system/*.rs")
			f.Del("client_assertion")
			return f
		}, code: "invalid_request", fragments: []string{"client_assertion"}},
		{name: "ScopeAbsent", form: func(h *harness, a string) map[string][]string {
			f := form(a, "")
			return f
		}, code: "invalid_scope", fragments: []string{"scope"}}, // issue 15 item 7
		{name: "RepeatedParameter", form: func(h *harness, a string) map[string][]string {
			f := form(a, "system/*.rs")
			f.Add("client_assertion", a)
			return f
		}, code: "invalid_request", fragments: []string{"repeated"}},
		{name: "ScopeMalformed", edit: func(h *harness, r *request) {
			r.scope = "system/*.sr"
		}, code: "invalid_scope", fragments: []string{"system/*.sr"}},
		{name: "ScopePatient", edit: func(h *harness, r *request) {
			r.scope = "patient/*.rs"
		}, code: "invalid_scope", fragments: []string{"only system/"}},
		{name: "ScopeWithUnenforceableQuery", edit: func(h *harness, r *request) {
			r.scope = "system/Observation.rs?_include=Observation:subject"
		}, code: "invalid_scope", fragments: []string{"cannot enforce", "_include"}},
		{name: "ScopeNotAllowed", edit: func(h *harness, r *request) {
			r.scope = "system/Observation.cud"
		}, code: "invalid_scope", fragments: []string{"read access only"}},
		{name: "ScopeWriteOnlyV1", edit: func(h *harness, r *request) {
			r.scope = "system/*.write"
		}, code: "invalid_scope", fragments: []string{"read access only"}},
		{name: "ScopeUnknownType", edit: func(h *harness, r *request) {
			r.scope = "system/Bogus.rs"
		}, code: "invalid_scope", fragments: []string{"Bogus"}},
		{name: "GrantTypeNotRegistered", edit: func(h *harness, r *request) {
			r.claims["iss"], r.claims["sub"] = "codeonly", "codeonly"
		}, code: "unauthorized_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.addClient(t, &bulk.Client{ID: "rsa", JWKS: jwks(jwk(rsaKey, "r1"), jwk(ecKey, "e1"), jwk(ec256Key, "p256"))})
			h.addClient(t, &bulk.Client{ID: "dup", JWKS: jwks(jwk(rsaKey, "same"), jwk(rsaKey2, "same"))})
			h.addClient(t, &bulk.Client{ID: "codeonly", JWKS: jwks(jwk(rsaKey, "r1")),
				Metadata: []byte(`{"grant_types":["authorization_code"]}`)})
			r := &request{alg: "RS384", key: rsaKey, header: header("RS384", "r1"), claims: h.claims("rsa"), scope: "system/*.rs"}
			if tc.edit != nil {
				tc.edit(h, r)
			}
			a := sign(r.alg, r.key, r.header, r.claims)
			f := form(a, r.scope)
			if tc.form != nil {
				f = tc.form(h, a)
			}
			_, err := h.a.Token(ctx, f, tokenURL)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Token: %v, want success", err)
				}
				return
			}
			wantOAuth(t, err, tc.code, tc.fragments...)
		})
	}
}

func TestTokenTamperedSignature(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.addClient(t, &bulk.Client{ID: "rsa", JWKS: jwks(jwk(rsaKey, "r1"))})
	h.addClient(t, &bulk.Client{ID: "ec", JWKS: jwks(jwk(ecKey, "e1"))})
	for _, tc := range []struct {
		alg, kid, client string
		key              any
	}{{"RS384", "r1", "rsa", rsaKey}, {"ES384", "e1", "ec", ecKey}} {
		a := sign(tc.alg, tc.key, header(tc.alg, tc.kid), h.claims(tc.client))
		parts := strings.Split(a, ".")
		sig, _ := b64.DecodeString(parts[2])
		sig[len(sig)/2] ^= 1
		tampered := parts[0] + "." + parts[1] + "." + b64.EncodeToString(sig)
		_, err := h.a.Token(ctx, form(tampered, "system/*.rs"), tokenURL)
		wantOAuth(t, err, "invalid_client", "signature")

		// A changed claim under the original signature.
		claims := h.claims(tc.client)
		claims["jti"] = "original"
		a = sign(tc.alg, tc.key, header(tc.alg, tc.kid), claims)
		parts = strings.Split(a, ".")
		claims["jti"] = "changed"
		forged := sign("none", nil, header(tc.alg, tc.kid), claims)
		forged = forged[:strings.LastIndexByte(forged, '.')] + "." + parts[2]
		_, err = h.a.Token(ctx, form(forged, "system/*.rs"), tokenURL)
		wantOAuth(t, err, "invalid_client", "signature")
	}
}

func TestTokenReplay(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.addClient(t, &bulk.Client{ID: "rsa", JWKS: jwks(jwk(rsaKey, "r1"))})
	h.addClient(t, &bulk.Client{ID: "rsa2", JWKS: jwks(jwk(rsaKey, "r1"))})
	claims := h.claims("rsa")
	claims["jti"] = "once"
	a := sign("RS384", rsaKey, header("RS384", "r1"), claims)
	if _, err := h.a.Token(ctx, form(a, "system/*.rs"), tokenURL); err != nil {
		t.Fatalf("Token (first use): %v", err)
	}
	_, err := h.a.Token(ctx, form(a, "system/*.rs"), tokenURL)
	wantOAuth(t, err, "invalid_client", "jti has been used")
	// Still refused at the end of the skew window, when exp has passed
	// but the assertion would otherwise still be accepted.
	h.clock.Advance(4*time.Minute + 59*time.Second)
	_, err = h.a.Token(ctx, form(a, "system/*.rs"), tokenURL)
	wantOAuth(t, err, "invalid_client", "jti has been used")
	// The same jti from another client is another key.
	claims = h.claims("rsa2")
	claims["jti"] = "once"
	a = sign("RS384", rsaKey, header("RS384", "r1"), claims)
	if _, err := h.a.Token(ctx, form(a, "system/*.rs"), tokenURL); err != nil {
		t.Errorf("Token(rsa2, jti once): %v", err)
	}
}

// TestTokenErrorsAreClientSafe checks that store failures do not leak.
func TestTokenErrorsAreClientSafe(t *testing.T) {
	h := newHarness(t)
	h.a.Clients = failingClients{}
	a := sign("RS384", rsaKey, header("RS384", "r1"), h.claims("rsa"))
	_, err := h.a.Token(context.Background(), form(a, "system/*.rs"), tokenURL)
	wantOAuth(t, err, "server_error")
	oe := auth.AsOAuthError(err)
	if strings.Contains(oe.Description, "disk on fire") {
		t.Errorf("description %q leaks the cause", oe.Description)
	}
	body, _ := oe.MarshalJSON()
	if diff := gocmp.Diff(`{"error":"server_error","error_description":"The authorization server encountered an internal error."}`, string(body)); diff != "" {
		t.Errorf("MarshalJSON mismatch (-want +got):\n%s", diff)
	}
	if !errors.Is(err, auth.ErrServerError) || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("error %v: want errors.Is ErrServerError and the cause in Error()", err)
	}
}

type failingClients struct{ bulk.ClientStore }

func (failingClients) GetClient(context.Context, string) (*bulk.Client, error) {
	return nil, errors.New("disk on fire")
}

// TestTokenNeverGrantsWrites: this server is read-only, so a request mixing
// read and write scopes is narrowed to the reads, and no granted scope
// has c, u or d, even for a client registered with them (issue 15 item 7;
// RFC 6749 §3.3).
func TestTokenNeverGrantsWrites(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.addClient(t, &bulk.Client{ID: "rw", JWKS: jwks(jwk(ecKey, "e1")), Scopes: []string{"system/*.cruds"}})
	for _, tc := range []struct{ scope, want string }{
		{"system/Observation.cruds system/Patient.write system/Condition.read", "system/Observation.rs system/Condition.read"},
		{"system/*.*", "system/*.read"},
		{"system/*.crs", "system/*.rs"},
	} {
		res, err := h.a.Token(ctx, form(sign("ES384", ecKey, header("ES384", "e1"), h.claims("rw")), tc.scope), tokenURL)
		if err != nil {
			t.Errorf("Token(%q): %v", tc.scope, err)
			continue
		}
		if res.Scope != tc.want {
			t.Errorf("Token(%q) scope = %q, want %q", tc.scope, res.Scope, tc.want)
		}
	}
}
