// Package auth is Tranche's SMART Backend Services authorization server:
// RFC 7591 client registration, the client_credentials token endpoint with
// RFC 7523 JWT client assertions, access tokens and their verification, the
// SMART scopes, and the fetching of clients' key sets. It is the only package
// that imports lestrrat-go/jwx, and only in jwx.go. HTTP is internal/api's
// business: it calls Authority and writes OAuthError and TokenResponse.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// Protocol constants (RFC 6749, RFC 7521, RFC 7523, RFC 9068, SMART Backend
// Services).
const (
	GrantTypeClientCredentials = "client_credentials"
	ClientAssertionType        = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// AccessTokenType is the typ header of access tokens (RFC 9068), which
	// no client assertion may carry, so neither is taken for the other.
	AccessTokenType = "at+jwt"

	// MaxAssertionBytes bounds client_assertion; longer ones are refused
	// before decoding.
	MaxAssertionBytes = 16 << 10
	// MaxAssertionLifetime is how far ahead an assertion's exp may be
	// (SMART: "no more than five minutes in the future").
	MaxAssertionLifetime = 5 * time.Minute
	// ClockSkew is the tolerance for the client's clock in exp, nbf and iat.
	ClockSkew = 60 * time.Second
	// MaxTokenLifetime is the default and maximum access-token lifetime
	// (SMART: expires_in SHOULD NOT exceed 300; R104).
	MaxTokenLifetime = 300 * time.Second

	maxJTILength         = 256
	maxAccessTokenBytes  = 8 << 10
	maxDescriptionString = 100
)

// Authority validates client assertions and issues and verifies access
// tokens. Set the fields, then use it from any number of goroutines; do not
// copy it after first use.
type Authority struct {
	// Clients holds registered clients; Replay the assertion jtis seen.
	Clients bulk.ClientStore
	Replay  bulk.ReplayCache
	// Signer signs access tokens.
	Signer *Signer
	// Fetcher fetches jwks_uri key sets. Nil uses a JWKSFetcher with
	// default settings.
	Fetcher *JWKSFetcher
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// TokenLifetime is the access-token lifetime: default and at most
	// MaxTokenLifetime.
	TokenLifetime time.Duration
	// Algorithms are the accepted assertion algorithms (default
	// DefaultAlgorithms). Only the asymmetric algorithms of alg.go take
	// effect: "none" and HMAC are refused whatever this says.
	Algorithms []string
	// Issuer is the iss of access tokens, checked by Verify when set.
	// Empty uses the scheme and host of the token URL and checks nothing.
	Issuer string

	inline keySetCache
}

// keySetCache remembers parsed inline key sets by their JSON, so a token
// request does not parse the client's keys again: parsing was a third of
// an RS384 request. A changed registration has different JSON and misses.
type keySetCache struct {
	mu sync.Mutex
	m  map[string][]publicKey
}

// maxCachedKeySets bounds the cache; it starts over when full.
const maxCachedKeySets = 1024

func (c *keySetCache) parse(jwks []byte) ([]publicKey, error) {
	c.mu.Lock()
	keys, ok := c.m[string(jwks)]
	c.mu.Unlock()
	if ok {
		return keys, nil
	}
	keys, err := parseKeySet(jwks, false)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedKeySets {
		c.m = make(map[string][]publicKey)
	}
	c.m[string(jwks)] = keys
	c.mu.Unlock()
	return keys, nil
}

// TokenResponse is the RFC 6749 §5.1 success response. There is no refresh
// token (SMART: "SHOULD NOT"; R105).
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"` // "bearer"
	ExpiresIn   int    `json:"expires_in"` // seconds, ≤ 300
	Scope       string `json:"scope"`      // granted scopes
}

// Grant is what a verified access token allows.
type Grant struct {
	ClientID string
	Scopes   []Scope
	Expires  time.Time
	// Client is the registered client as stored now, with its contract
	// (Groups, quotas).
	Client *bulk.Client
}

// Allows reports whether any granted scope lets the client export
// resources of resourceType.
func (g *Grant) Allows(resourceType string) bool {
	return slices.ContainsFunc(g.Scopes, func(s Scope) bool { return s.Allows(resourceType) })
}

// Token handles a client_credentials token request authenticated by a JWT
// client assertion (SMART Backend Services; RFC 6749 §4.4, RFC 7521, RFC
// 7523). form is the request body; tokenURL is this endpoint's absolute URL,
// which the assertion's aud must equal. The checks run in the order of
// requirements.md 6.5 and the first failure is returned as an *OAuthError
// with a client-safe description: unsupported_grant_type, invalid_request,
// invalid_client (every assertion failure), unauthorized_client,
// invalid_scope, or server_error wrapping a store failure.
func (a *Authority) Token(ctx context.Context, form url.Values, tokenURL string) (*TokenResponse, error) {
	// Step 1: the form parameters (RFC 6749 §3.2: none may repeat).
	for _, name := range []string{"grant_type", "client_assertion_type", "client_assertion", "scope", "client_id"} {
		if len(form[name]) > 1 {
			return nil, ErrInvalidRequest.WithDescription("The %s parameter is repeated.", name)
		}
	}
	switch gt := form.Get("grant_type"); gt {
	case GrantTypeClientCredentials:
	case "":
		return nil, ErrInvalidRequest.WithDescription("The grant_type parameter is required; use client_credentials.")
	default:
		return nil, ErrUnsupportedGrantType.WithDescription("The grant_type %q is not supported; use client_credentials.", clip(gt))
	}
	switch at := form.Get("client_assertion_type"); at {
	case ClientAssertionType:
	case "":
		return nil, ErrInvalidRequest.WithDescription("The client_assertion_type parameter is required; use %s.", ClientAssertionType)
	default:
		return nil, ErrInvalidRequest.WithDescription("The client_assertion_type %q is not supported; use %s.", clip(at), ClientAssertionType)
	}
	assertion := form.Get("client_assertion")
	if assertion == "" {
		return nil, ErrInvalidRequest.WithDescription("The client_assertion parameter is required.")
	}
	scope := form.Get("scope")
	if strings.TrimSpace(scope) == "" {
		// RFC 6749 §5.2: a missing or empty scope is invalid_scope, as
		// the Bulk Data test suites expect.
		return nil, ErrInvalidScope.WithDescription("The scope parameter is required, e.g. system/*.rs.")
	}
	if len(assertion) > MaxAssertionBytes {
		return nil, ErrInvalidClient.WithDescription("The client_assertion is longer than %d bytes.", MaxAssertionBytes)
	}

	client, err := a.authenticate(ctx, assertion, form, tokenURL)
	if err != nil {
		return nil, err
	}

	// Step 9: the grant type and scopes the client may have.
	if !allowsClientCredentials(client) {
		return nil, ErrUnauthorizedClient.WithDescription("This client is not registered for the client_credentials grant.")
	}
	granted, err := a.grant(scope, client)
	if err != nil {
		return nil, err
	}

	// Step 10: the access token (6.6).
	return a.issue(client, granted, tokenURL)
}

// authenticate runs steps 2 to 8 of requirements.md 6.5 and returns the
// authenticated client.
func (a *Authority) authenticate(ctx context.Context, assertion string, form url.Values, tokenURL string) (*bulk.Client, error) {
	// Step 2: decode without verifying.
	t, err := decodeJWT(assertion)
	if err != nil {
		return nil, ErrInvalidClient.WithDescription("The client_assertion is not a valid JWT (a compact JWS with JSON header and claims).").WithWrap(err)
	}
	alg, _, algOK := stringMember(t.header, "alg")
	kid, _, kidOK := stringMember(t.header, "kid")
	typ, _, typOK := stringMember(t.header, "typ")
	jku, hasJKU, jkuOK := stringMember(t.header, "jku")
	iss, _, issOK := stringMember(t.claims, "iss")
	sub, _, subOK := stringMember(t.claims, "sub")
	switch {
	case !algOK || !kidOK || !typOK || !jkuOK:
		return nil, ErrInvalidClient.WithDescription("The assertion header's alg, kid, typ and jku must be strings.")
	case !a.accepts(alg):
		return nil, a.algError(alg)
	case kid == "":
		return nil, ErrInvalidClient.WithDescription("The assertion header must have a kid naming the signing key.")
	case typ != "" && !strings.EqualFold(typ, "JWT"):
		return nil, ErrInvalidClient.WithDescription("The assertion header's typ must be JWT, not %q.", clip(typ))
	case t.unsafeHeaders() != "":
		return nil, ErrInvalidClient.WithDescription("The assertion header must not have %s.", t.unsafeHeaders())
	case !issOK || !subOK:
		return nil, ErrInvalidClient.WithDescription("The assertion's iss and sub must be strings.")
	}

	// Step 3: iss == sub == a registered client (and client_id, if sent).
	switch {
	case iss == "":
		return nil, ErrInvalidClient.WithDescription("The assertion must have an iss claim: the client_id.")
	case sub != iss:
		return nil, ErrInvalidClient.WithDescription("The assertion's sub must equal its iss (both the client_id).")
	case form.Has("client_id") && form.Get("client_id") != iss:
		return nil, ErrInvalidClient.WithDescription("The client_id parameter does not match the assertion's iss.")
	}
	client, err := a.Clients.GetClient(ctx, iss)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return nil, ErrInvalidClient.WithDescription("The client %q is not registered.", clip(iss)).WithWrap(err)
	} else if err != nil {
		return nil, ErrServerError.WithWrap(err)
	}

	// Steps 4 to 6: the key set, the one key, the signature.
	if hasJKU && (client.JWKSURI == "" || jku != client.JWKSURI) {
		return nil, ErrInvalidClient.WithDescription("The assertion's jku must be the client's registered jwks_uri.")
	}
	key, err := a.findKey(ctx, client, kid, alg)
	if err != nil {
		return nil, err
	}
	if err := verifyJWS(assertion, alg, key.key); err != nil {
		return nil, ErrInvalidClient.WithDescription("The assertion's signature does not verify with the client's key %q.", clip(kid)).WithWrap(err)
	}

	// Step 7: the claims.
	now := a.now()
	exp, err := checkClaims(t, tokenURL, now)
	if err != nil {
		return nil, err
	}

	// Step 8: the jti is single-use while the assertion could be accepted.
	jti, _, jtiOK := stringMember(t.claims, "jti")
	switch {
	case !jtiOK || jti == "":
		return nil, ErrInvalidClient.WithDescription("The assertion must have a jti claim, a string unique to this assertion.")
	case len(jti) > maxJTILength:
		return nil, ErrInvalidClient.WithDescription("The assertion's jti is longer than %d characters.", maxJTILength)
	}
	err = a.Replay.MarkUsed(ctx, iss+"#"+jti, exp.Add(ClockSkew))
	if bulk.ErrorCode(err) == bulk.ECONFLICT {
		return nil, ErrInvalidClient.WithDescription("The assertion's jti has been used before; sign a new assertion with a new jti for each token request.").WithWrap(err)
	} else if err != nil {
		return nil, ErrServerError.WithWrap(err)
	}
	return client, nil
}

// findKey resolves the client's key set and picks the one key with kid
// whose type suits alg (steps 4 and 5). A jwks_uri set is fetched again
// once if kid is unknown, so a client can rotate keys without registering
// again; the fetcher limits how often that happens per URL.
func (a *Authority) findKey(ctx context.Context, client *bulk.Client, kid, alg string) (publicKey, error) {
	var keys []publicKey
	if len(client.JWKS) > 0 {
		inline, err := a.inline.parse(client.JWKS)
		if err != nil {
			return publicKey{}, ErrInvalidClient.WithDescription("The client's registered key set is not usable: %v.", err)
		}
		keys = inline
	}
	var fetched []publicKey
	if client.JWKSURI != "" {
		r, fresh, err := a.fetcher().get(ctx, client.JWKSURI, false)
		if err != nil {
			return publicKey{}, ErrInvalidClient.WithDescription("The client's jwks_uri could not be used: %s", bulk.ErrorMessage(err)).WithWrap(err)
		}
		fetched = r.keys
		if !fresh && len(matchKeys(keys, kid, alg))+len(matchKeys(fetched, kid, alg)) == 0 {
			if r, _, err := a.fetcher().get(ctx, client.JWKSURI, true); err == nil {
				fetched = r.keys
			}
		}
	}
	matches := append(matchKeys(keys, kid, alg), matchKeys(fetched, kid, alg)...)
	switch len(matches) {
	case 0:
		return publicKey{}, ErrInvalidClient.WithDescription("The client has no %s key with kid %q for alg %s.", keyTypeFor(alg), clip(kid), alg)
	case 1:
		return matches[0], nil
	default:
		return publicKey{}, ErrInvalidClient.WithDescription("The client's key set has more than one %s key with kid %q; kids must be unique.", keyTypeFor(alg), clip(kid))
	}
}

// matchKeys returns the keys with kid that suit alg.
func matchKeys(keys []publicKey, kid, alg string) []publicKey {
	var out []publicKey
	for _, k := range keys {
		if k.kid == kid && k.suits(alg) {
			out = append(out, k)
		}
	}
	return out
}

// checkClaims validates aud, exp, nbf and iat (step 7) and returns exp.
func checkClaims(t *jwt, tokenURL string, now time.Time) (time.Time, error) {
	aud, ok := audience(t.claims)
	if !ok || !slices.Contains(aud, tokenURL) {
		return time.Time{}, ErrInvalidClient.WithDescription("The assertion's aud must be the token endpoint URL, %s.", tokenURL)
	}
	exp, hasExp, expOK := dateMember(t.claims, "exp")
	nbf, hasNBF, nbfOK := dateMember(t.claims, "nbf")
	iat, hasIAT, iatOK := dateMember(t.claims, "iat")
	switch {
	case !expOK || !nbfOK || !iatOK:
		return time.Time{}, ErrInvalidClient.WithDescription("The assertion's exp, nbf and iat must be numbers of seconds since the epoch.")
	case !hasExp:
		return time.Time{}, ErrInvalidClient.WithDescription("The assertion must have an exp claim.")
	case !now.Before(exp.Add(ClockSkew)):
		return time.Time{}, ErrInvalidClient.WithDescription("The assertion expired at %s (server time %s).", exp.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case exp.After(now.Add(MaxAssertionLifetime + ClockSkew)):
		return time.Time{}, ErrInvalidClient.WithDescription("The assertion's exp is more than 5 minutes in the future (exp %s, server time %s).", exp.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case hasNBF && nbf.After(now.Add(ClockSkew)):
		return time.Time{}, ErrInvalidClient.WithDescription("The assertion is not valid before %s (server time %s).", nbf.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case hasIAT && iat.After(now.Add(ClockSkew)):
		return time.Time{}, ErrInvalidClient.WithDescription("The assertion's iat %s is in the future (server time %s).", iat.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case hasIAT && iat.After(exp):
		return time.Time{}, ErrInvalidClient.WithDescription("The assertion's iat is after its exp.")
	}
	return exp, nil
}

// grant intersects the requested scopes with the client's (step 9).
func (a *Authority) grant(scope string, client *bulk.Client) ([]Scope, error) {
	requested, err := ParseScopes(scope)
	if err != nil {
		return nil, ErrInvalidScope.WithDescription("%s", bulk.ErrorMessage(err))
	}
	for _, s := range requested {
		if err := s.CheckQuery(); err != nil {
			return nil, ErrInvalidScope.WithDescription("The scope %q has a search restriction this server cannot enforce: %s", clip(s.String()), bulk.ErrorMessage(err))
		}
	}
	// A read-only server but for Bulk Cohort Groups: write permissions
	// (v1 .write, v2 c, u, d) are granted only on Group (GrantablePerms).
	// A request for only other writes is invalid_scope; a mixed one is
	// narrowed to its grantable part (RFC 6749 §3.3).
	readable := requested[:0:0]
	for _, r := range requested {
		if r.Perms = GrantablePerms(r); r.Perms != "" {
			r.V1 = r.V1 && hasV1Spelling(r.Perms)
			readable = append(readable, r)
		}
	}
	if len(readable) == 0 {
		return nil, ErrInvalidScope.WithDescription("This server grants read access only (system/Type.rs or system/Type.read), and writes only of cohort Groups (system/Group.cud or system/Group.write); the requested scopes ask for other writes only.")
	}
	allowed := clientScopes(client)
	granted := GrantScopes(readable, allowed)
	if len(granted) == 0 {
		return nil, ErrInvalidScope.WithDescription("None of the requested scopes is allowed for this client; it may request %q.", FormatScopes(allowed))
	}
	kept := granted[:0]
	for _, g := range granted {
		// The client's own scopes may be wider (registered with writes),
		// and an overlap may carry a restriction no write may have.
		if g.Perms = GrantablePerms(g); g.Perms != "" {
			g.V1 = g.V1 && hasV1Spelling(g.Perms)
			kept = append(kept, g)
		}
	}
	granted = kept
	if len(granted) == 0 {
		return nil, ErrInvalidScope.WithDescription("None of the requested scopes is allowed for this client; it may request %q.", FormatScopes(allowed))
	}
	return granted, nil
}

// clientScopes parses the client's registered scopes, skipping any that do
// not parse or carry a restriction that cannot be enforced: those grant
// nothing.
func clientScopes(c *bulk.Client) []Scope {
	var out []Scope
	for _, s := range c.Scopes {
		for _, f := range strings.Fields(s) {
			if sc, err := ParseScope(f); err == nil && sc.CheckQuery() == nil {
				out = append(out, sc)
			}
		}
	}
	return out
}

// allowsClientCredentials reports whether the client's registration allows
// the client_credentials grant. Clients registered without metadata (by an
// operator) do.
func allowsClientCredentials(c *bulk.Client) bool {
	if len(c.Metadata) == 0 {
		return true
	}
	var m struct {
		GrantTypes *[]string `json:"grant_types"`
	}
	if json.Unmarshal(c.Metadata, &m) != nil || m.GrantTypes == nil {
		return true
	}
	return slices.Contains(*m.GrantTypes, GrantTypeClientCredentials)
}

// accessClaims are the claims of an access token (RFC 9068 §2.2).
type accessClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	IssuedAt int64  `json:"iat"`
	Expires  int64  `json:"exp"`
	ID       string `json:"jti"`
}

// issue signs an access token for client with the granted scopes.
func (a *Authority) issue(client *bulk.Client, granted []Scope, tokenURL string) (*TokenResponse, error) {
	if a.Signer == nil {
		return nil, ErrServerError.WithWrap(errors.New("auth.Authority has no Signer"))
	}
	now := a.now()
	lifetime := a.TokenLifetime
	if lifetime <= 0 || lifetime > MaxTokenLifetime {
		lifetime = MaxTokenLifetime
	}
	lifetime = lifetime.Truncate(time.Second)
	c := accessClaims{
		Issuer:   a.issuer(tokenURL),
		Subject:  client.ID,
		ClientID: client.ID,
		Scope:    FormatScopes(granted),
		IssuedAt: now.Unix(),
		Expires:  now.Add(lifetime).Unix(),
		ID:       randomID(),
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return nil, ErrServerError.WithWrap(err)
	}
	tok, err := a.Signer.sign(AccessTokenType, payload)
	if err != nil {
		return nil, ErrServerError.WithWrap(err)
	}
	return &TokenResponse{AccessToken: tok, TokenType: "bearer", ExpiresIn: int(lifetime / time.Second), Scope: c.Scope}, nil
}

// Verify checks a bearer access token (without the "Bearer " prefix) on a
// FHIR route (SMART Backend
// Services, "Using the access token"; RFC 6750) and returns what it grants.
// Any problem (missing, malformed, forged, signed by another key or
// algorithm, expired, or its client since deleted) is EUNAUTHORIZED with a
// client-safe message; store failures keep their own code.
func (a *Authority) Verify(ctx context.Context, bearer string) (*Grant, error) {
	invalid := func(format string, args ...any) (*Grant, error) {
		return nil, bulk.Errorf(bulk.EUNAUTHORIZED, format, args...)
	}
	if bearer == "" {
		return invalid("An access token is required.")
	}
	if a.Signer == nil {
		return nil, errors.New("auth.Authority.Verify: no Signer")
	}
	if len(bearer) > maxAccessTokenBytes {
		return invalid("The access token is malformed.")
	}
	t, err := decodeJWT(bearer)
	if err != nil {
		return invalid("The access token is malformed.")
	}
	alg, _, _ := stringMember(t.header, "alg")
	kid, _, _ := stringMember(t.header, "kid")
	typ, _, _ := stringMember(t.header, "typ")
	if alg != a.Signer.alg || kid != a.Signer.kid || typ != AccessTokenType || t.unsafeHeaders() != "" {
		return invalid("The access token was not issued by this server.")
	}
	if err := a.Signer.verify(bearer); err != nil {
		return invalid("The access token's signature is invalid.")
	}
	var c accessClaims
	payload, _ := b64.DecodeString(bearer[strings.IndexByte(bearer, '.')+1 : strings.LastIndexByte(bearer, '.')])
	if err := json.Unmarshal(payload, &c); err != nil || c.Subject == "" || c.Expires == 0 {
		return invalid("The access token is malformed.")
	}
	expires := time.Unix(c.Expires, 0).UTC()
	if !a.now().Before(expires) {
		return invalid("The access token has expired; request a new one.")
	}
	if a.Issuer != "" && c.Issuer != a.Issuer {
		return invalid("The access token was not issued by this server.")
	}
	scopes, err := ParseScopes(c.Scope)
	if err != nil {
		return invalid("The access token is malformed.")
	}
	client, err := a.Clients.GetClient(ctx, c.Subject)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return invalid("The client this access token was issued to is no longer registered.")
	} else if err != nil {
		return nil, fmt.Errorf("auth.Authority.Verify: %w", err)
	}
	return &Grant{ClientID: c.Subject, Scopes: scopes, Expires: expires, Client: client}, nil
}

// accepts reports whether alg is an accepted assertion algorithm.
func (a *Authority) accepts(alg string) bool {
	algs := a.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	return keyTypeFor(alg) != "" && slices.Contains(algs, alg)
}

func (a *Authority) algError(alg string) *OAuthError {
	algs := a.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	var ok []string
	for _, x := range algs {
		if keyTypeFor(x) != "" {
			ok = append(ok, x)
		}
	}
	use := strings.Join(ok, " or ")
	switch {
	case alg == "":
		return ErrInvalidClient.WithDescription("The assertion header must have an alg; use %s.", use)
	case isHMACOrNone(alg):
		return ErrInvalidClient.WithDescription("The assertion alg %q is never accepted: assertions must be signed with the client's private key; use %s.", clip(alg), use)
	}
	return ErrInvalidClient.WithDescription("The assertion alg %q is not accepted; use %s.", clip(alg), use)
}

func (a *Authority) issuer(tokenURL string) string {
	if a.Issuer != "" {
		return a.Issuer
	}
	if u, err := url.Parse(tokenURL); err == nil && u.Scheme != "" {
		return u.Scheme + "://" + u.Host
	}
	return tokenURL
}

func (a *Authority) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// defaultFetcher serves Authorities without a Fetcher.
var defaultFetcher = &JWKSFetcher{}

func (a *Authority) fetcher() *JWKSFetcher {
	if a.Fetcher != nil {
		return a.Fetcher
	}
	return defaultFetcher
}

// randomID returns 128 random bits in hex.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24)
	return hex.EncodeToString(b[:])
}

// clip shortens client input echoed in a description.
func clip(s string) string {
	if len(s) > maxDescriptionString {
		return s[:maxDescriptionString] + "..."
	}
	return s
}
