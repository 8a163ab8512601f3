package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/search"
)

// Authz is the authorization side of the server: SMART Backend Services
// (requirements 6). A nil *Authz on Server means the server is open.
type Authz struct {
	Authority *auth.Authority
	// RegistrationToken is the operator's initial access token that
	// protects POST /register (RFC 7591 §3); empty disables registration.
	RegistrationToken string
	// Registration is the contract a dynamically registered client gets.
	Registration auth.RegistrationDefaults
	// MaxConcurrentExports and MaxPollsPerMinute are the quotas of clients
	// that have none of their own; 0 means unlimited.
	MaxConcurrentExports int
	MaxPollsPerMinute    int
	// Polls counts status polls per client in one-minute windows; on AWS
	// it is shared by every Lambda instance (a table), so the quota is the
	// client's, not one instance's. Nil allows every poll.
	Polls bulk.RateCounter

	verified verifiedTokens
}

// smartConfiguration is `GET [base]/.well-known/smart-configuration`
// (R95–R99): JSON whatever Accept says, absolute URLs.
func (s *Server) smartConfiguration(w http.ResponseWriter, r *http.Request) {
	base := s.base(r)
	doc := map[string]any{
		"issuer":                                base,
		"token_endpoint":                        base + "/token",
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384"},
		"scopes_supported": []string{"system/*.rs", "system/*.read"},
		"capabilities":     []string{"client-confidential-asymmetric", "permission-v1", "permission-v2"},
		// Required by SMART 2.x even for a backend-only server (R99).
		"code_challenge_methods_supported": []string{"S256"},
		"response_types_supported":         []string{"token"},
	}
	if s.Authz.RegistrationToken != "" {
		doc["registration_endpoint"] = base + "/register"
	}
	if s.BaseURL != "" {
		w.Header().Set("Cache-Control", "public, max-age=300")
	} else {
		// Derived from the request (a test server, or API Gateway's
		// domain): no shared cache may hand one host's answer to another.
		w.Header().Set("Cache-Control", "private, max-age=300")
		w.Header().Set("Vary", "Host, X-Forwarded-Host, X-Forwarded-Proto")
	}
	writeJSON(w, "application/json", http.StatusOK, doc)
}

// token is the SMART Backend Services token endpoint (requirements 6.3–6.6).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		writeOAuth(w, auth.ErrInvalidRequest.WithDescription("The token request must be application/x-www-form-urlencoded."))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeOAuth(w, auth.ErrInvalidRequest.WithDescription("The token request is too large or unreadable."))
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeOAuth(w, auth.ErrInvalidRequest.WithDescription("The token request body is not valid form encoding."))
		return
	}
	res, err := s.Authz.Authority.Token(r.Context(), form, s.base(r)+"/token")
	if err != nil {
		oe := auth.AsOAuthError(err)
		if oe.Status >= 500 {
			s.Logger.ErrorContext(r.Context(), "token request failed", "err", err)
		} else {
			s.Logger.InfoContext(r.Context(), "token refused", "error", oe.Code, "reason", err)
		}
		writeOAuth(w, oe)
		return
	}
	// RFC 6749 §5.1.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, "application/json", http.StatusOK, res)
}

// register is RFC 7591 dynamic client registration, protected by the
// operator's initial access token (R100, R101).
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	bearer, ok := bearerToken(r)
	if s.Authz.RegistrationToken == "" || !ok ||
		subtle.ConstantTimeCompare([]byte(bearer), []byte(s.Authz.RegistrationToken)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, "application/json", http.StatusUnauthorized, map[string]string{
			"error": "invalid_token", "error_description": "Registration needs the operator's initial access token as a Bearer token."})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, auth.MaxMetadataBytes))
	if err != nil {
		writeOAuth(w, auth.ErrInvalidClientMetadata.WithDescription("The client metadata is too large or unreadable."))
		return
	}
	c, res, err := s.Authz.Authority.Register(r.Context(), body, s.Authz.Registration)
	if err != nil {
		writeOAuth(w, auth.AsOAuthError(err))
		return
	}
	s.Logger.InfoContext(r.Context(), "client registered", "client", c.ID, "name", c.Name)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(res)
}

func writeOAuth(w http.ResponseWriter, e *auth.OAuthError) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	b, _ := json.Marshal(e)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// authenticate verifies the bearer token of a FHIR route (R41, R43, R73,
// R116).
func (a *Authz) authenticate(r *http.Request) (*Principal, error) {
	tok, ok := bearerToken(r)
	if !ok {
		return nil, bulk.Errorf(bulk.EUNAUTHORIZED, "This server requires a SMART Backend Services access token (Authorization: Bearer).")
	}
	now := time.Now()
	if g := a.verified.get(tok, now); g != nil {
		return &Principal{ClientID: g.ClientID, Grant: g, cached: true}, nil
	}
	g, err := a.Authority.Verify(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	a.verified.put(tok, g, now)
	return &Principal{ClientID: g.ClientID, Grant: g}, nil
}

// withGroup returns p, or, when p's cached contract does not include
// Group id, p verified again with the contract as stored now: a client's
// new cohort (ContractClients) is its Group at once on every instance, not
// after verifiedFor. Only a refusal pays for the read; the fresh grant
// replaces the cached one.
func (s *Server) withGroup(r *http.Request, p *Principal, id string) *Principal {
	c := contractGroups(p)
	if s.Authz == nil || !p.cached || c == nil || c.AllowsGroup(id) {
		return p
	}
	tok, _ := bearerToken(r)
	g, err := s.Authz.Authority.Verify(r.Context(), tok)
	if err != nil {
		return p // the cached grant's answer stands
	}
	s.Authz.verified.put(tok, g, time.Now())
	return &Principal{ClientID: g.ClientID, Grant: g}
}

// verifiedTokens remembers access tokens verified in the last
// verifiedFor, so a client polling every second does not pay a signature
// check and a client lookup each time (two thirds of a status poll's CPU).
// A token is never trusted past its own expiry; a client removed while the
// server runs loses access within verifiedFor.
type verifiedTokens struct {
	mu sync.Mutex
	m  map[string]verifiedToken
}

type verifiedToken struct {
	grant *auth.Grant
	until time.Time
}

const (
	verifiedFor    = 30 * time.Second
	verifiedTokenN = 10_000
)

func (v *verifiedTokens) get(tok string, now time.Time) *auth.Grant {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.m[tok]
	if !ok || !now.Before(e.until) {
		return nil
	}
	return e.grant
}

func (v *verifiedTokens) put(tok string, g *auth.Grant, now time.Time) {
	until := now.Add(verifiedFor)
	if g.Expires.Before(until) {
		until = g.Expires
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[string]verifiedToken{}
	}
	if len(v.m) >= verifiedTokenN {
		for k, e := range v.m {
			if !now.Before(e.until) {
				delete(v.m, k)
			}
		}
		if len(v.m) >= verifiedTokenN {
			clear(v.m) // all fresh: start over rather than grow
		}
	}
	v.m[tok] = verifiedToken{grant: g, until: until}
}

// authorizeKickoff applies the client's scopes and contract to a request:
// `_type` outside the scopes fails (R42), no `_type` means the authorized
// types only (R15), the contract's Groups, types and look-back bound every
// level (applyContract), and a Group needs read scope on Group and the
// contract's permission (R37). The concurrency quota (R39) is
// exportQuota's, applied when the job is created.
func (s *Server) authorizeKickoff(r *http.Request, p *Principal, req *bulk.ExportRequest) error {
	g := p.Grant
	if g == nil {
		return nil
	}
	for _, t := range req.Types {
		if !g.Allows(t) {
			return bulk.Errorf(bulk.EFORBIDDEN, "The access token's scopes do not allow exporting %s.", t)
		}
	}
	if !allowsAll(g) {
		req.Allowed = []string{}
		for _, sc := range g.Scopes {
			if sc.Type != "*" && sc.Allows(sc.Type) && !slices.Contains(req.Allowed, sc.Type) {
				req.Allowed = append(req.Allowed, sc.Type)
			}
		}
	}
	// v2 scopes restricted by search parameters act as an implicit
	// _typeFilter AND-ed with the export's own (requirements 6.8, R114).
	req.Restrictions = restrictions(g)
	if req.Associated != "" && !g.Allows("Provenance") {
		// Associated data never widens what the scopes allow (R93).
		msg := "includeAssociatedData adds Provenance, which the access token's scopes do not allow exporting."
		if !req.Lenient {
			return bulk.Errorf(bulk.EFORBIDDEN, "%s", msg)
		}
		req.Associated = ""
		req.Ignored = append(req.Ignored, msg+" It was ignored (Prefer: handling=lenient).")
	}
	if err := s.applyContract(g.Client, req); err != nil {
		return err
	}
	if req.Level == bulk.LevelGroup {
		if !g.Allows("Group") {
			return bulk.Errorf(bulk.EFORBIDDEN, "A Group export needs read access to Group (system/Group.rs).")
		}
		if g.Client == nil || !(contains(g.Client.Groups, "*") || contains(g.Client.Groups, req.GroupID)) {
			return bulk.Errorf(bulk.EFORBIDDEN, "This client's contract does not include Group/%s.", req.GroupID)
		}
		if err := s.groupInRestriction(r, req); err != nil {
			return err
		}
	}
	return nil
}

// exportQuota is the most exports p may have running (R39), 0 for no
// limit: the client's own, else the server's. Kickoff enforces it with the
// job's creation (export.Service.KickoffWithin), not with a count before,
// which simultaneous kick-offs would all pass.
func (s *Server) exportQuota(p *Principal) int {
	if s.Authz == nil || p.Grant == nil {
		return 0
	}
	if c := p.Grant.Client; c != nil && c.MaxConcurrentExports > 0 {
		return c.MaxConcurrentExports
	}
	return s.Authz.MaxConcurrentExports
}

// groupInRestriction checks a Group export against scopes that restrict
// Group by search parameters: the Group must match one of them, as reading
// it would (requirements 1.6, R37). An unknown Group is left to Kickoff's
// 404.
func (s *Server) groupInRestriction(r *http.Request, req *bulk.ExportRequest) error {
	qs, ok := req.Restrictions["Group"]
	if !ok {
		qs = req.Restrictions["*"]
	}
	if len(qs) == 0 {
		return nil
	}
	grp, err := s.Resources.Get(r.Context(), "Group", req.GroupID)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	for _, q := range qs {
		if f, err := search.Parse("Group?" + q); err == nil && f.Match(grp.Body) {
			return nil
		}
	}
	return bulk.Errorf(bulk.EFORBIDDEN, "The access token's scopes do not allow reading Group/%s.", req.GroupID)
}

// restrictions returns the search restrictions of a grant's scopes in the
// shape of bulk.ExportRequest.Restrictions: nil when some scope allows
// every type without restriction, or no scope is restricted.
func restrictions(g *auth.Grant) map[string][]string {
	var star []string
	byType := map[string][]string{}
	open := map[string]bool{}
	restricted := false
	for _, sc := range g.Scopes {
		if !sc.Allows(sc.Type) {
			continue
		}
		switch {
		case sc.Query == "" && sc.Type == "*":
			return nil // a union with "everything" is everything
		case sc.Query == "":
			open[sc.Type] = true
		case sc.Type == "*":
			restricted = true
			star = append(star, sc.Query)
		default:
			restricted = true
			byType[sc.Type] = append(byType[sc.Type], sc.Query)
		}
	}
	if !restricted {
		return nil
	}
	m := map[string][]string{}
	if len(star) > 0 {
		m["*"] = star
	}
	for t, qs := range byType {
		m[t] = append(qs, star...)
	}
	for t := range open {
		if _, ok := m[t]; ok || len(star) > 0 {
			m[t] = []string{} // an unrestricted scope for t: the union is all of t
		}
	}
	return m
}

func allowsAll(g *auth.Grant) bool {
	for _, sc := range g.Scopes {
		if sc.Type == "*" && sc.Allows("*") {
			return true
		}
	}
	return false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// limitPolls counts a client's status polls per minute (R48).
func (a *Authz) limitPolls(ctx context.Context, p *Principal) error {
	limit := a.MaxPollsPerMinute
	if p.Grant != nil && p.Grant.Client != nil && p.Grant.Client.MaxPollsPerMinute > 0 {
		limit = p.Grant.Client.MaxPollsPerMinute
	}
	if limit <= 0 || a.Polls == nil {
		return nil
	}
	wait, err := a.Polls.Take(ctx, "polls#"+p.ClientID, limit, time.Minute)
	if err != nil {
		return err
	}
	if wait > 0 {
		return &bulk.Error{Code: bulk.ETOOMANYREQUESTS, Message: "Too many status requests; wait for Retry-After before polling again.",
			Err: retryAfter(wait)}
	}
	return nil
}

// retryAfter carries a Retry-After hint to writeError.
type retryAfter time.Duration

func (r retryAfter) Error() string { return "retry after " + time.Duration(r).String() }
