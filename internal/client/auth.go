package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TokenSource supplies the bearer token for each request. Implementations
// must be safe for concurrent use (downloads run in parallel).
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a fixed bearer token (`--token`).
type StaticToken string

// Token returns the token.
func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }

// SMARTConfig is the part of [base]/.well-known/smart-configuration the
// client reads.
type SMARTConfig struct {
	TokenEndpoint        string `json:"token_endpoint"`
	RegistrationEndpoint string `json:"registration_endpoint"`
	// TokenEndpointAuthSigningAlgs is
	// token_endpoint_auth_signing_alg_values_supported.
	TokenEndpointAuthSigningAlgs []string `json:"token_endpoint_auth_signing_alg_values_supported"`
}

// Discover reads [base]/.well-known/smart-configuration.
func Discover(ctx context.Context, hc *http.Client, base string) (*SMARTConfig, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	u := strings.TrimRight(base, "/") + "/.well-known/smart-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("SMART discovery: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("SMART discovery: GET %s: %w", u, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("SMART discovery: GET %s: %d %s", u, res.StatusCode, http.StatusText(res.StatusCode))
	}
	var cfg SMARTConfig
	if err := json.Unmarshal(body, &cfg); err != nil {
		return nil, fmt.Errorf("SMART discovery: GET %s: not JSON: %w", u, err)
	}
	return &cfg, nil
}

// BackendServices is a SMART Backend Services TokenSource (client
// credentials with a signed JWT assertion, requirements 6.3–6.6). It
// caches the access token and fetches a new one RenewBefore its expiry, so
// long exports keep polling and downloading with a valid token.
type BackendServices struct {
	ClientID string
	Key      *Key
	// TokenURL is the token endpoint; when empty it is discovered from
	// FHIRBase's .well-known/smart-configuration on first use.
	TokenURL string
	FHIRBase string
	// Scope is the requested scope (default "system/*.read").
	Scope string
	HTTP  *http.Client
	Now   func() time.Time
	// AssertionLifetime is the assertion's exp - now: at most 5 minutes
	// (default 4 minutes, leaving room for clock skew).
	AssertionLifetime time.Duration
	// RenewBefore is how long before expiry the token is renewed
	// (default 30 s; at most half the token's lifetime).
	RenewBefore time.Duration

	mu      sync.Mutex
	token   string
	expires time.Time
	scope   string
}

// TokenError is an RFC 6749 §5.2 error from the token endpoint.
type TokenError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
	URI         string `json:"error_uri"`
}

func (e *TokenError) Error() string {
	msg := fmt.Sprintf("token request: %d", e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

func (b *BackendServices) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// Token returns a cached access token, or requests a new one when there is
// none or it expires within RenewBefore.
func (b *BackendServices) Token(ctx context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.token != "" && b.now().Before(b.expires) {
		return b.token, nil
	}
	if err := b.fetch(ctx); err != nil {
		return "", err
	}
	return b.token, nil
}

// Invalidate drops the cached token (after a 401): the next Token call
// requests a new one.
func (b *BackendServices) Invalidate() {
	b.mu.Lock()
	b.token = ""
	b.mu.Unlock()
}

// GrantedScope is the scope of the current token, as the server granted it.
func (b *BackendServices) GrantedScope() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.scope
}

// fetch runs the client_credentials grant. b.mu is held.
func (b *BackendServices) fetch(ctx context.Context) error {
	if b.Key == nil || b.ClientID == "" {
		return errors.New("SMART Backend Services needs a client id and a private key")
	}
	hc := b.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	if err := b.discoverTokenURL(ctx, hc); err != nil {
		return err
	}
	now := b.now()
	assertion, err := b.assertion(now)
	if err != nil {
		return err
	}
	body, err := b.requestToken(ctx, hc, assertion)
	if err != nil {
		return err
	}
	tr, err := parseTokenResponse(body)
	if err != nil {
		return err
	}
	// expires_in is required; some servers send it as a string.
	secs, err := strconv.ParseFloat(strings.Trim(string(tr.ExpiresIn), `"`), 64)
	if err != nil || secs <= 0 {
		secs = 300 // the SMART recommended lifetime
	}
	lifetime := time.Duration(secs * float64(time.Second))
	early := b.RenewBefore
	if early <= 0 {
		early = 30 * time.Second
	}
	early = min(early, lifetime/2)
	// Count from before the request was sent: the token cannot outlive that.
	b.token, b.expires, b.scope = tr.AccessToken, now.Add(lifetime-early), tr.Scope
	return nil
}

// discoverTokenURL sets an empty TokenURL from FHIRBase's
// .well-known/smart-configuration.
func (b *BackendServices) discoverTokenURL(ctx context.Context, hc *http.Client) error {
	if b.TokenURL != "" {
		return nil
	}
	if b.FHIRBase == "" {
		return errors.New("SMART Backend Services: no token URL and no FHIR base URL to discover it from")
	}
	cfg, err := Discover(ctx, hc, b.FHIRBase)
	if err != nil {
		return err
	}
	if cfg.TokenEndpoint == "" {
		return fmt.Errorf("SMART discovery: %s/.well-known/smart-configuration has no token_endpoint", strings.TrimRight(b.FHIRBase, "/"))
	}
	b.TokenURL = cfg.TokenEndpoint
	return nil
}

// assertion signs the client_assertion of a token request made at now
// (SMART Backend Services: iss and sub the client id, aud the token URL,
// exp at most 5 minutes away, a random jti).
func (b *BackendServices) assertion(now time.Time) (string, error) {
	life := b.AssertionLifetime
	if life <= 0 || life > 5*time.Minute {
		life = 4 * time.Minute
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	return b.Key.SignJWT(map[string]any{
		"iss": b.ClientID,
		"sub": b.ClientID,
		"aud": b.TokenURL,
		"exp": now.Add(life).Unix(),
		"iat": now.Unix(),
		"jti": hex.EncodeToString(jti[:]),
	})
}

// requestToken posts the client_credentials grant with assertion and
// returns the 200 response's body; another status is a *TokenError.
func (b *BackendServices) requestToken(ctx context.Context, hc *http.Client, assertion string) ([]byte, error) {
	scope := b.Scope
	if scope == "" {
		scope = "system/*.read"
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("token request: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("token request: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		te := &TokenError{Status: res.StatusCode}
		if json.Unmarshal(body, te) != nil || te.Code == "" {
			te.Description = strings.TrimSpace(string(body))
			if len(te.Description) > 300 {
				te.Description = te.Description[:300] + "…"
			}
		}
		return nil, te
	}
	return body, nil
}

// tokenResponse is an RFC 6749 §5.1 access token response.
type tokenResponse struct {
	AccessToken string          `json:"access_token"`
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
	Scope       string          `json:"scope"`
}

// parseTokenResponse reads a token response, which must hold a bearer
// access token.
func parseTokenResponse(body []byte) (*tokenResponse, error) {
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("token response is not JSON: %w", err)
	}
	if tr.AccessToken == "" {
		return nil, errors.New("token response has no access_token")
	}
	if !strings.EqualFold(tr.TokenType, "bearer") {
		return nil, fmt.Errorf("token response token_type %q, want bearer", tr.TokenType)
	}
	return &tr, nil
}
