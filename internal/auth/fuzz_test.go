package auth_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
)

// The auth path's fuzz targets (issue 14 item 7). `go test` runs their
// seeds; `make fuzz` runs each for a while, as CI does briefly.

// oauthCodes are the error codes a token request may answer (RFC 6749
// §5.2, SMART Backend Services).
var oauthCodes = []string{"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type", "invalid_scope", "server_error", "temporarily_unavailable"}

// FuzzTokenAssertion: whatever the assertion, Token never panics, fails
// only with an RFC 6749 error, and grants nothing but to the one correctly
// signed assertion of the seeds (mutations of it are refused: a changed
// byte breaks the signature or the claims, and the unchanged one is a
// replay after its first use).
func FuzzTokenAssertion(f *testing.F) {
	h := newHarness(f)
	h.addClient(f, &bulk.Client{ID: "ec", JWKS: jwks(jwk(ecKey, "e1"))})
	valid := sign("ES384", ecKey, header("ES384", "e1"), h.claims("ec"))
	f.Add(valid, "system/*.rs")
	f.Add(sign("ES384", ecKey2, header("ES384", "e1"), h.claims("ec")), "system/*.rs")
	f.Add(sign("none", nil, header("none", "e1"), h.claims("ec")), "system/*.rs")
	f.Add(sign("HS256", []byte("secret"), header("HS256", "e1"), h.claims("ec")), "system/Observation.read")
	f.Add("a.b.c", "")
	f.Add("....", "system/*.cruds")
	f.Add(strings.Repeat("A", 5000)+"."+strings.Repeat("B", 5000)+".", "system/*.rs")
	granted := 0
	f.Fuzz(func(t *testing.T, assertion, scope string) {
		res, err := h.a.Token(context.Background(), form(assertion, scope), tokenURL)
		if err == nil {
			granted++
			if assertion != valid || granted > 1 {
				t.Fatalf("Token granted %+v to assertion %q (grant %d)", res, assertion, granted)
			}
			return
		}
		var oe *auth.OAuthError
		if !errors.As(err, &oe) || !slices.Contains(oauthCodes, oe.Code) || oe.Status < 400 || oe.Status > 599 {
			t.Fatalf("Token error %v (%T), want an RFC 6749 error", err, err)
		}
		if strings.Contains(oe.Description, assertion) && len(assertion) > 40 {
			t.Fatalf("error description echoes the assertion: %q", oe.Description)
		}
	})
}

// FuzzVerify: any bearer string is refused unless it is a token the
// authority issued, and Verify never panics.
func FuzzVerify(f *testing.F) {
	h := newHarness(f)
	h.addClient(f, &bulk.Client{ID: "ec", JWKS: jwks(jwk(ecKey, "e1"))})
	res, err := h.a.Token(context.Background(), form(sign("ES384", ecKey, header("ES384", "e1"), h.claims("ec")), "system/Patient.rs"), tokenURL)
	if err != nil {
		f.Fatal(err)
	}
	issued := res.AccessToken
	f.Add(issued)
	f.Add(issued + "x")
	f.Add(strings.Replace(issued, ".", "..", 1))
	f.Add("")
	f.Add("Bearer " + issued)
	f.Fuzz(func(t *testing.T, bearer string) {
		g, err := h.a.Verify(context.Background(), bearer)
		if err == nil && bearer != issued {
			t.Fatalf("Verify accepted %q as %+v", bearer, g)
		}
		if err == nil && (g.ClientID != "ec" || auth.FormatScopes(g.Scopes) != "system/Patient.rs") {
			t.Fatalf("Verify(issued) = %+v", g)
		}
	})
}

// FuzzGrantScopes: a granted scope never widens the requested one nor the
// allowed ones: each is within some requested scope and within some
// allowed scope (type, permissions, and every restriction clause), and
// parsing never panics.
func FuzzGrantScopes(f *testing.F) {
	for _, seed := range [][2]string{
		{"system/*.rs", "system/Observation.rs system/Patient.read"},
		{"system/Observation.cruds", "system/*.rs"},
		{"system/*.rs", "system/Observation.rs?category=laboratory"},
		{"system/Observation.rs?code=1", "system/Observation.rs?category=laboratory"},
		{"system/*.read", "system/*.*"},
		{"system/*.*", "system/Observation.read"},
		{"user/*.rs patient/*.read", "system/*.rs"},
		{"system/Observation.rs?_tag=a&code=b", "system/*.rs?_tag=a"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, requested, allowed string) {
		req, err1 := auth.ParseScopes(requested)
		all, err2 := auth.ParseScopes(allowed)
		if err1 != nil || err2 != nil {
			return
		}
		for _, g := range auth.GrantScopes(req, all) {
			if !slices.ContainsFunc(req, func(r auth.Scope) bool { return within(g, r) }) {
				t.Fatalf("GrantScopes(%q, %q) grants %s, wider than anything requested", requested, allowed, g)
			}
			if !slices.ContainsFunc(all, func(a auth.Scope) bool { return within(g, a) }) {
				t.Fatalf("GrantScopes(%q, %q) grants %s, wider than anything allowed", requested, allowed, g)
			}
		}
	})
}

// within reports whether g grants no more than s: s's type or *, a subset
// of its permissions, and every clause of s's restriction.
func within(g, s auth.Scope) bool {
	if s.Type != "*" && s.Type != g.Type {
		return false
	}
	for _, p := range g.Perms {
		if !strings.ContainsRune(s.Perms, p) {
			return false
		}
	}
	if s.Query == "" {
		return true
	}
	clauses := strings.Split(g.Query, "&")
	for _, c := range strings.Split(s.Query, "&") {
		if !slices.Contains(clauses, c) {
			return false
		}
	}
	return true
}
