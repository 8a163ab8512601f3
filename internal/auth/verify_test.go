package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
)

// issue returns an access token for a fresh client "c" with scope.
func (h *harness) issue(t *testing.T, scope string) string {
	t.Helper()
	if _, err := h.clients.GetClient(context.Background(), "c"); err != nil {
		h.addClient(t, &bulk.Client{ID: "c", JWKS: jwks(jwk(ecKey, "e1")), Scopes: []string{"system/*.rs"}})
	}
	a := sign("ES384", ecKey, header("ES384", "e1"), h.claims("c"))
	tok, err := h.a.Token(context.Background(), form(a, scope), tokenURL)
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func wantUnauthorized(t *testing.T, g *auth.Grant, err error, fragment string) {
	t.Helper()
	if g != nil || bulk.ErrorCode(err) != bulk.EUNAUTHORIZED || !strings.Contains(bulk.ErrorMessage(err), fragment) {
		t.Errorf("Verify = %+v, %v; want %s containing %q", g, err, bulk.EUNAUTHORIZED, fragment)
	}
}

func TestVerify(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		h := newHarness(t)
		tok := h.issue(t, "system/Observation.rs system/Patient.read")
		g, err := h.a.Verify(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if !g.Allows("Observation") || !g.Allows("Patient") || g.Allows("Condition") {
			t.Errorf("Grant %q allows Observation %v, Patient %v, Condition %v; want true, true, false",
				auth.FormatScopes(g.Scopes), g.Allows("Observation"), g.Allows("Patient"), g.Allows("Condition"))
		}
		// The claims are those of an RFC 9068 access token.
		parts := strings.Split(tok, ".")
		var hdr, claims map[string]any
		hb, _ := b64.DecodeString(parts[0])
		cb, _ := b64.DecodeString(parts[1])
		json.Unmarshal(hb, &hdr)
		json.Unmarshal(cb, &claims)
		if hdr["typ"] != "at+jwt" || hdr["alg"] != "ES256" || hdr["kid"] != h.a.Signer.KeyID() {
			t.Errorf("access token header = %v, want typ at+jwt, ES256 and the signer's kid", hdr)
		}
		for name, want := range map[string]any{"iss": "https://tranche.example", "sub": "c", "client_id": "c",
			"scope": "system/Observation.rs system/Patient.read", "iat": float64(t0.Unix()), "exp": float64(t0.Unix() + 300)} {
			if claims[name] != want {
				t.Errorf("access token claim %s = %v, want %v", name, claims[name], want)
			}
		}
		if jti, _ := claims["jti"].(string); len(jti) != 32 {
			t.Errorf("access token jti = %v, want 32 hex digits", claims["jti"])
		}
	})

	t.Run("Expired", func(t *testing.T) {
		h := newHarness(t)
		tok := h.issue(t, "system/*.rs")
		h.clock.Advance(299 * time.Second)
		if _, err := h.a.Verify(ctx, tok); err != nil {
			t.Errorf("Verify one second before expiry: %v", err)
		}
		h.clock.Advance(time.Second)
		g, err := h.a.Verify(ctx, tok)
		wantUnauthorized(t, g, err, "expired")
	})

	t.Run("Missing", func(t *testing.T) {
		g, err := newHarness(t).a.Verify(ctx, "")
		wantUnauthorized(t, g, err, "required")
	})

	t.Run("Malformed", func(t *testing.T) {
		h := newHarness(t)
		for _, tok := range []string{"x", "a.b.c", "a.b", strings.Repeat("a", 9000), "eyJ9.eyJ9.AA"} {
			g, err := h.a.Verify(ctx, tok)
			wantUnauthorized(t, g, err, "")
		}
	})

	t.Run("Forged", func(t *testing.T) {
		h := newHarness(t)
		tok := h.issue(t, "system/Observation.rs")
		parts := strings.Split(tok, ".")
		// Widen the scope under the original signature.
		cb, _ := b64.DecodeString(parts[1])
		forged := parts[0] + "." + b64.EncodeToString([]byte(strings.Replace(string(cb), "system/Observation.rs", "system/*.rs", 1))) + "." + parts[2]
		g, err := h.a.Verify(ctx, forged)
		wantUnauthorized(t, g, err, "signature")
		// A tampered signature.
		sig, _ := b64.DecodeString(parts[2])
		sig[3] ^= 1
		g, err = h.a.Verify(ctx, parts[0]+"."+parts[1]+"."+b64.EncodeToString(sig))
		wantUnauthorized(t, g, err, "signature")
	})

	t.Run("OtherKey", func(t *testing.T) {
		h := newHarness(t)
		// A key that claims the server's kid: signature fails.
		priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		k := jwk(priv, h.a.Signer.KeyID())
		k["d"] = b64.EncodeToString(priv.D.FillBytes(make([]byte, 32)))
		kb, _ := json.Marshal(k)
		other, err := auth.NewSigner(kb)
		if err != nil {
			t.Fatal(err)
		}
		h2 := newHarness(t)
		h2.a.Signer = other
		tok := h2.issue(t, "system/*.rs")
		h.addClient(t, &bulk.Client{ID: "c", JWKS: jwks(jwk(ecKey, "e1"))})
		g, err := h.a.Verify(ctx, tok)
		wantUnauthorized(t, g, err, "signature")

		// Another server's key with its own kid.
		h3 := newHarness(t)
		s3, err := auth.LoadOrCreateSigner(filepath.Join(t.TempDir(), "k.json"))
		if err != nil {
			t.Fatal(err)
		}
		h3.a.Signer = s3
		g, err = h.a.Verify(ctx, h3.issue(t, "system/*.rs"))
		wantUnauthorized(t, g, err, "not issued by this server")
	})

	t.Run("WrongAlg", func(t *testing.T) {
		h := newHarness(t)
		h.addClient(t, &bulk.Client{ID: "c", JWKS: jwks(jwk(ecKey, "e1"))})
		claims := map[string]any{"iss": "https://tranche.example", "sub": "c", "client_id": "c", "scope": "system/*.rs", "exp": t0.Add(time.Minute).Unix(), "iat": t0.Unix(), "jti": "x"}
		pub := h.a.Signer.PublicJWKS()
		for _, tok := range []string{
			sign("HS256", pub, map[string]any{"alg": "HS256", "kid": h.a.Signer.KeyID(), "typ": "at+jwt"}, claims),
			sign("none", nil, map[string]any{"alg": "none", "kid": h.a.Signer.KeyID(), "typ": "at+jwt"}, claims),
			// A client assertion is not an access token.
			sign("ES384", ecKey, header("ES384", "e1"), claims),
		} {
			g, err := h.a.Verify(ctx, tok)
			wantUnauthorized(t, g, err, "not issued by this server")
		}
	})

	t.Run("ClientDeleted", func(t *testing.T) {
		h := newHarness(t)
		tok := h.issue(t, "system/*.rs")
		if err := h.clients.DeleteClient(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		g, err := h.a.Verify(ctx, tok)
		wantUnauthorized(t, g, err, "no longer registered")
	})

	t.Run("Issuer", func(t *testing.T) {
		h := newHarness(t)
		tok := h.issue(t, "system/*.rs")
		h.a.Issuer = "https://elsewhere.example"
		g, err := h.a.Verify(ctx, tok)
		wantUnauthorized(t, g, err, "not issued by this server")
	})
}

func TestSigner(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data", "signing-key.json")
	s1, err := auth.LoadOrCreateSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", fi.Mode().Perm())
	}
	s2, err := auth.LoadOrCreateSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	if s1.KeyID() == "" || s1.KeyID() != s2.KeyID() || s1.Algorithm() != "ES256" {
		t.Errorf("kids %q, %q, alg %s: want the same non-empty kid on reload and ES256", s1.KeyID(), s2.KeyID(), s1.Algorithm())
	}
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal(s1.PublicJWKS(), &set); err != nil || len(set.Keys) != 1 || set.Keys[0]["d"] != nil || set.Keys[0]["kid"] != s1.KeyID() {
		t.Errorf("PublicJWKS = %s, %v; want one public key with the kid", s1.PublicJWKS(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("data dir holds %d files, want only the key (no temporary files)", len(entries))
	}

	if runtime.GOOS != "windows" {
		os.Chmod(path, 0o644)
		if _, err := auth.LoadOrCreateSigner(path); bulk.ErrorCode(err) != bulk.EINVALID || !strings.Contains(bulk.ErrorMessage(err), "chmod 600") {
			t.Errorf("LoadOrCreateSigner of a world-readable key error = %v, want %s saying chmod 600", err, bulk.EINVALID)
		}
	}

	keys(t)
	for name, data := range map[string][]byte{
		"Public":   mustJSON(jwk(ecKey, "e1")),
		"RSA1024":  mustJSON(privateRSA(t, 1024)),
		"NotJSON":  []byte("-----BEGIN PRIVATE KEY-----"),
		"AlgWrong": mustJSON(withMember(privateRSA(t, 2048), "alg", "ES256")),
	} {
		if _, err := auth.NewSigner(data); bulk.ErrorCode(err) != bulk.EINVALID {
			t.Errorf("NewSigner(%s) error = %v, want %s", name, err, bulk.EINVALID)
		}
	}
	// A configured RSA key with a kid and alg.
	s, err := auth.NewSigner(mustJSON(withMember(withMember(privateRSA(t, 2048), "alg", "RS384"), "kid", "aws-1")))
	if err != nil || s.KeyID() != "aws-1" || s.Algorithm() != "RS384" {
		t.Errorf("NewSigner(RSA, kid aws-1, RS384) = kid %q alg %q, %v", s.KeyID(), s.Algorithm(), err)
	}
	h := newHarness(t)
	h.a.Signer = s
	if _, err := h.a.Verify(context.Background(), h.issue(t, "system/*.rs")); err != nil {
		t.Errorf("Verify of a token signed with an RS384 server key: %v", err)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func withMember(m map[string]any, name string, v any) map[string]any {
	m[name] = v
	return m
}

// privateRSA returns a private RSA JWK of rsaKey (2048) or rsaKey1024.
func privateRSA(t *testing.T, bits int) map[string]any {
	k := rsaKey
	if bits == 1024 {
		k = rsaKey1024
	}
	m := jwk(k, "")
	delete(m, "kid")
	m["d"] = b64.EncodeToString(k.D.Bytes())
	m["p"] = b64.EncodeToString(k.Primes[0].Bytes())
	m["q"] = b64.EncodeToString(k.Primes[1].Bytes())
	k.Precompute()
	m["dp"] = b64.EncodeToString(k.Precomputed.Dp.Bytes())
	m["dq"] = b64.EncodeToString(k.Precomputed.Dq.Bytes())
	m["qi"] = b64.EncodeToString(k.Precomputed.Qinv.Bytes())
	return m
}
