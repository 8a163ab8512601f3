package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/client"
)

// tokenServer is a fake SMART authorization server: discovery, and a token
// endpoint that checks the client assertion the way requirements 6.5 says
// (signature with the registered key, iss = sub = client id, aud = the
// token URL, exp at most 5 minutes ahead, a fresh jti, the kid).
type tokenServer struct {
	t        *testing.T
	clientID string
	pub      any
	kid      string
	now      func() time.Time
	life     int // expires_in
	url      string

	mu     sync.Mutex
	issued int
	jtis   map[string]bool
	errs   []string
}

func newTokenServer(t *testing.T, clientID string, key *client.Key, now func() time.Time) *tokenServer {
	ts := &tokenServer{t: t, clientID: clientID, pub: key.Signer.Public(), kid: key.KeyID, now: now, life: 300, jtis: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token_endpoint":%q,"registration_endpoint":%q,"token_endpoint_auth_signing_alg_values_supported":["RS384","ES384"]}`,
			ts.url+"/auth/token", ts.url+"/auth/register")
	})
	mux.HandleFunc("POST /auth/token", ts.token)
	srv := serve(t, mux)
	ts.url = srv.URL
	return ts
}

func (ts *tokenServer) fail(w http.ResponseWriter, code, format string, a ...any) {
	ts.mu.Lock()
	ts.errs = append(ts.errs, fmt.Sprintf(format, a...))
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `{"error":%q,"error_description":%q}`, code, fmt.Sprintf(format, a...))
}

func (ts *tokenServer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		ts.fail(w, "invalid_request", "not a form")
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		ts.fail(w, "unsupported_grant_type", "grant_type %q", r.PostForm.Get("grant_type"))
		return
	}
	if r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || r.PostForm.Get("scope") == "" {
		ts.fail(w, "invalid_request", "assertion type or scope")
		return
	}
	hdr, claims, err := verifyJWT(r.PostForm.Get("client_assertion"), ts.pub)
	if err != nil {
		ts.fail(w, "invalid_client", "signature: %v", err)
		return
	}
	now := ts.now()
	exp, _ := claims["exp"].(float64)
	jti, _ := claims["jti"].(string)
	ts.mu.Lock()
	replay := ts.jtis[jti]
	ts.jtis[jti] = true
	ts.mu.Unlock()
	switch {
	case hdr["typ"] != "JWT" || hdr["kid"] != ts.kid:
		ts.fail(w, "invalid_client", "header %v", hdr)
	case claims["iss"] != ts.clientID || claims["sub"] != ts.clientID:
		ts.fail(w, "invalid_client", "iss %v sub %v", claims["iss"], claims["sub"])
	case claims["aud"] != ts.url+"/auth/token":
		ts.fail(w, "invalid_client", "aud %v", claims["aud"])
	case exp <= float64(now.Unix()) || exp > float64(now.Add(5*time.Minute).Unix()):
		ts.fail(w, "invalid_client", "exp %v not within 5 minutes of %v", exp, now.Unix())
	case jti == "" || replay:
		ts.fail(w, "invalid_client", "jti %q missing or replayed", jti)
	default:
		ts.mu.Lock()
		ts.issued++
		n := ts.issued
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		// expires_in as a string: some servers send it so.
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":"%d","scope":%q}`, n, ts.life, r.PostForm.Get("scope"))
	}
}

func (ts *tokenServer) errors() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.errs
}

func rsaKey(t *testing.T) *client.Key {
	t.Helper()
	pk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &client.Key{Signer: pk, Alg: client.RS384, KeyID: "rsa-1"}
}

func TestBackendServices(t *testing.T) {
	es, err := client.GenerateES384()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []*client.Key{rsaKey(t), es} {
		t.Run(key.Alg, func(t *testing.T) {
			clk := newClock()
			ts := newTokenServer(t, "client-1", key, clk.Now)
			bs := &client.BackendServices{ClientID: "client-1", Key: key, FHIRBase: ts.url + "/fhir", Scope: "system/*.rs", Now: clk.Now}
			tok := func() string {
				t.Helper()
				s, err := bs.Token(context.Background())
				if err != nil {
					t.Fatalf("Token() error = %v (server saw: %v)", err, ts.errors())
				}
				return s
			}
			var got []string
			got = append(got, tok()) // discovery, then the first token
			clk.Advance(269 * time.Second)
			got = append(got, tok()) // cached: 31 s left
			clk.Advance(2 * time.Second)
			got = append(got, tok()) // 29 s left: renewed 30 s early
			clk.Advance(10 * time.Minute)
			got = append(got, tok()) // long expired
			if diff := cmp.Diff([]string{"tok-1", "tok-1", "tok-2", "tok-3"}, got); diff != "" {
				t.Errorf("tokens over time (-want +got):\n%s", diff)
			}
			if bs.TokenURL != ts.url+"/auth/token" || bs.GrantedScope() != "system/*.rs" {
				t.Errorf("TokenURL %q, scope %q: want the discovered endpoint and the granted scope", bs.TokenURL, bs.GrantedScope())
			}
			bs.Invalidate()
			if s := tok(); s != "tok-4" {
				t.Errorf("Token() after Invalidate = %q, want a new token", s)
			}
		})
	}
}

func TestBackendServicesErrors(t *testing.T) {
	key := rsaKey(t)
	clk := newClock()
	ts := newTokenServer(t, "client-1", key, clk.Now)
	bs := &client.BackendServices{ClientID: "someone-else", Key: key, TokenURL: ts.url + "/auth/token", Now: clk.Now}
	_, err := bs.Token(context.Background())
	var te *client.TokenError
	if !errors.As(err, &te) || te.Code != "invalid_client" || !strings.Contains(err.Error(), "iss someone-else") {
		t.Errorf("Token() error = %v, want invalid_client with the description", err)
	}
	bs = &client.BackendServices{ClientID: "c", Key: key, FHIRBase: "http://127.0.0.1:1"}
	if _, err := bs.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "discovery") {
		t.Errorf("Token() with an unreachable server = %v, want a discovery error", err)
	}
}

// TestClientRenewsTokenDuringExport: an export that outlives its token
// polls with a renewed one, and a 401 makes the client fetch a new token
// and retry once.
func TestClientRenewsTokenDuringExport(t *testing.T) {
	key := rsaKey(t)
	clk := newClock()
	ts := newTokenServer(t, "client-1", key, clk.Now)
	var mu sync.Mutex
	var seen []string
	polls := 0
	bulk := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		polls++
		n := polls
		mu.Unlock()
		switch {
		case n == 3: // the server refuses tok-2
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			outcome(w, http.StatusUnauthorized, "login", "Token expired.")
		case n < 5:
			w.Header().Set("Retry-After", "200")
			w.WriteHeader(http.StatusAccepted)
		default:
			done(t)(w, r)
		}
	}))
	c := &client.Client{Base: bulk.URL, Now: clk.Now, Sleep: clk.Sleep,
		Auth: &client.BackendServices{ClientID: "client-1", Key: key, TokenURL: ts.url + "/auth/token", Now: clk.Now}}
	if _, err := c.Poll(context.Background(), bulk.URL+"/status", nil); err != nil {
		t.Fatalf("Poll() error = %v (token server: %v)", err, ts.errors())
	}
	// t=0 tok-1; t=200 tok-1 still; t=400 tok-1 has expired: tok-2, which
	// the server refuses: tok-3 at once; t=600 tok-3.
	want := []string{"Bearer tok-1", "Bearer tok-1", "Bearer tok-2", "Bearer tok-3", "Bearer tok-3"}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("Authorization per poll (-want +got):\n%s", diff)
	}
}

func TestKeys(t *testing.T) {
	t.Run("RFC 7638 thumbprint", func(t *testing.T) {
		// The example key of RFC 7638 §3.1.
		n := "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
		raw := fmt.Sprintf(`{"kty":"RSA","n":%q,"e":"AQAB"}`, n)
		var j client.JWK
		_ = json.Unmarshal([]byte(raw), &j)
		pub := rsaPublic(t, j)
		if got := client.Thumbprint(pub); got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
			t.Errorf("Thumbprint() = %q", got)
		}
	})
	t.Run("JWK round trip", func(t *testing.T) {
		es, _ := client.GenerateES384()
		for _, k := range []*client.Key{rsaKey(t), es} {
			j, err := k.PrivateJWK()
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(j)
			back, err := client.ParseJWK(raw)
			if err != nil {
				t.Fatalf("ParseJWK(%s) error = %v", k.Alg, err)
			}
			if back.KeyID != k.KeyID || back.Alg != k.Alg || client.Thumbprint(back.Signer.Public()) != client.Thumbprint(k.Signer.Public()) {
				t.Errorf("ParseJWK(PrivateJWK()) = kid %q alg %q, want %q %q and the same key", back.KeyID, back.Alg, k.KeyID, k.Alg)
			}
			pub := k.PublicJWK()
			if pub.D != "" || pub.P != "" {
				t.Errorf("PublicJWK() carries private members")
			}
			if _, err := client.ParseJWK(mustJSON(pub)); err == nil {
				t.Errorf("ParseJWK(public key) succeeded, want an error")
			}
		}
	})
	t.Run("PEM", func(t *testing.T) {
		rk, _ := rsa.GenerateKey(rand.Reader, 2048)
		ek, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		pk8, _ := x509.MarshalPKCS8PrivateKey(rk)
		sec1, _ := x509.MarshalECPrivateKey(ek)
		p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		sec1p256, _ := x509.MarshalECPrivateKey(p256)
		for _, tc := range []struct {
			name, typ string
			der       []byte
			wantAlg   string
		}{
			{"PKCS8 RSA", "PRIVATE KEY", pk8, client.RS384},
			{"PKCS1 RSA", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk), client.RS384},
			{"SEC1 P-384", "EC PRIVATE KEY", sec1, client.ES384},
			{"SEC1 P-256", "EC PRIVATE KEY", sec1p256, ""},
		} {
			k, err := client.ParseKey(pem.EncodeToMemory(&pem.Block{Type: tc.typ, Bytes: tc.der}), "")
			if tc.wantAlg == "" {
				if err == nil {
					t.Errorf("%s: ParseKey succeeded, want an error (ES384 needs P-384)", tc.name)
				}
				continue
			}
			if err != nil || k.Alg != tc.wantAlg || k.KeyID != client.Thumbprint(k.Signer.Public()) {
				t.Errorf("%s: ParseKey() = %+v, %v; want %s with the thumbprint as kid", tc.name, k, err, tc.wantAlg)
			}
		}
	})
}

func rsaPublic(t *testing.T, j client.JWK) *rsa.PublicKey {
	t.Helper()
	n, err := base64.RawURLEncoding.DecodeString(j.N)
	if err != nil || j.E != "AQAB" {
		t.Fatalf("bad test key: %v", err)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestRegister(t *testing.T) {
	var got map[string]any
	var authz string
	mux := http.NewServeMux()
	var url string
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"token_endpoint":%q,"registration_endpoint":%q}`, url+"/oauth/token", url+"/oauth/register")
	})
	mux.HandleFunc("POST /oauth/register", func(w http.ResponseWriter, r *http.Request) {
		authz = r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &got)
		if authz != "Bearer init-1" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_token","error_description":"bad initial token"}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"client_id":"new-client","client_name":"x"}`)
	})
	srv := serve(t, mux)
	url = srv.URL
	key, _ := client.GenerateES384()
	reg, err := client.Register(context.Background(), client.RegisterRequest{FHIRBase: srv.URL + "/fhir", InitialToken: "init-1", ClientName: "test", JWKS: []client.JWK{key.PublicJWK()}})
	if err != nil {
		t.Fatalf("Register() error = %v", err)
	}
	if reg.ClientID != "new-client" || reg.TokenEndpoint != srv.URL+"/oauth/token" {
		t.Errorf("Register() = %+v", reg)
	}
	keys := got["jwks"].(map[string]any)["keys"].([]any)
	if got["token_endpoint_auth_method"] != "private_key_jwt" || got["scope"] != "system/*.read" || len(keys) != 1 ||
		keys[0].(map[string]any)["d"] != nil || keys[0].(map[string]any)["kid"] != key.KeyID {
		t.Errorf("registration metadata = %v", got)
	}
	if gt := got["grant_types"].([]any); len(gt) != 1 || gt[0] != "client_credentials" {
		t.Errorf("grant_types = %v", gt)
	}
	_, err = client.Register(context.Background(), client.RegisterRequest{FHIRBase: srv.URL + "/fhir", InitialToken: "wrong", JWKSURI: "https://keys.example/jwks.json"})
	if err == nil || !strings.Contains(err.Error(), "bad initial token") || got["jwks_uri"] != "https://keys.example/jwks.json" {
		t.Errorf("Register(bad token) error = %v (metadata %v)", err, got)
	}
}

func TestClientFile(t *testing.T) {
	key, _ := client.GenerateES384()
	jwk, _ := key.PrivateJWK()
	cf := &client.ClientFile{ClientID: "c1", TokenURL: "https://a/token", FHIRBaseURL: "http://b", PrivateJWK: mustJSON(jwk), Scope: "system/*.read"}
	path := filepath.Join(t.TempDir(), "client.json")
	if err := cf.Save(path); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("client file mode = %v, want 0600", st.Mode().Perm())
	}
	back, err := client.LoadClientFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := back.Key()
	if err != nil || k.KeyID != key.KeyID || k.Alg != client.ES384 {
		t.Errorf("Key() = %+v, %v", k, err)
	}
}
