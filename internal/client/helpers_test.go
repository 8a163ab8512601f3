package client_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/client"
)

// clock is an injected clock whose Sleep advances time instantly and
// records each wait: retry and renewal timing is checked without waiting.
type clock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newClock() *clock { return &clock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *clock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

func newClient(t *testing.T, base string) (*client.Client, *clock) {
	t.Helper()
	clk := newClock()
	return &client.Client{Base: base, HTTP: &http.Client{}, Now: clk.Now, Sleep: clk.Sleep}, clk
}

// outcome writes an OperationOutcome.
func outcome(w http.ResponseWriter, status int, code, text string) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":%q,"details":{"text":%q}}]}`, code, text)
}

// script serves a sequence of handlers, one per request, repeating the
// last; it counts requests.
type script struct {
	mu    sync.Mutex
	steps []http.HandlerFunc
	n     int
	reqs  []*http.Request
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := min(s.n, len(s.steps)-1)
	s.n++
	s.reqs = append(s.reqs, r.Clone(context.Background()))
	s.mu.Unlock()
	s.steps[i](w, r)
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func ptr(n int64) *int64 { return &n }

func manifestJSON(t *testing.T, m client.Manifest) string {
	t.Helper()
	if m.Output == nil {
		m.Output = []client.File{}
	}
	if m.Error == nil {
		m.Error = []client.File{}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// verifyJWT checks a compact JWS with an RSA (RS384) or EC P-384 (ES384)
// public key, independently of the client's signing code, and returns its
// header and claims.
func verifyJWT(token string, pub any) (header, claims map[string]any, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, fmt.Errorf("not a compact JWS: %d parts", len(parts))
	}
	dec := base64.RawURLEncoding
	hb, err1 := dec.DecodeString(parts[0])
	cb, err2 := dec.DecodeString(parts[1])
	sig, err3 := dec.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, nil, fmt.Errorf("bad base64url")
	}
	if err := json.Unmarshal(hb, &header); err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(cb, &claims); err != nil {
		return nil, nil, err
	}
	sum := sha512.Sum384([]byte(parts[0] + "." + parts[1]))
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if header["alg"] != "RS384" {
			return nil, nil, fmt.Errorf("alg %v for an RSA key", header["alg"])
		}
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA384, sum[:], sig); err != nil {
			return nil, nil, err
		}
	case *ecdsa.PublicKey:
		if header["alg"] != "ES384" || len(sig) != 96 {
			return nil, nil, fmt.Errorf("alg %v, signature of %d bytes for an EC key", header["alg"], len(sig))
		}
		r, s := new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])
		if !ecdsa.Verify(k, sum[:], r, s) {
			return nil, nil, fmt.Errorf("bad ES384 signature")
		}
	default:
		return nil, nil, fmt.Errorf("unsupported key %T", pub)
	}
	return header, claims, nil
}
