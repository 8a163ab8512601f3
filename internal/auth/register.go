package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// MaxMetadataBytes bounds a registration request.
const MaxMetadataBytes = 64 << 10

// DefaultMaxScopes are the scopes a dynamically registered client may hold
// when RegistrationDefaults.MaxScopes is empty: read and search of every
// type, all that an export needs. Creating cohorts (system/Group.cud)
// costs the server evaluations, so the operator grants it
// (`tranche clients add --scope`).
var DefaultMaxScopes = []string{"system/*.rs"}

// RegistrationDefaults is the contract a dynamically registered client
// gets: the operator's policy, not the client's wish.
type RegistrationDefaults struct {
	// MaxScopes bounds the client's scopes: it holds the requested scopes
	// intersected with these (GrantScopes), or all of these if it
	// requested none. Empty means DefaultMaxScopes.
	MaxScopes []string
	// Groups are the Group ids the client may export ("*" for all; empty
	// for none). MaxConcurrentExports and MaxPollsPerMinute are its quotas
	// (0: the server default).
	Groups               []string
	MaxConcurrentExports int
	MaxPollsPerMinute    int
	// Types, when not empty, are the only resource types the client may
	// export; MaxLookback, when positive, how far back `_since` may reach
	// (bulk.Client.Types, bulk.Client.MaxLookback).
	Types       []string
	MaxLookback time.Duration
}

// clientMetadata is the RFC 7591 §2 metadata the server keeps and echoes.
// Members it does not understand are dropped, as §2 requires ("MUST ignore
// any client metadata ... that it does not understand").
type clientMetadata struct {
	ClientName              string          `json:"client_name,omitempty"`
	ClientURI               string          `json:"client_uri,omitempty"`
	Contacts                []string        `json:"contacts,omitempty"`
	SoftwareID              string          `json:"software_id,omitempty"`
	SoftwareVersion         string          `json:"software_version,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	GrantTypes              []string        `json:"grant_types"`
	Scope                   string          `json:"scope"`
}

// registration is the RFC 7591 §3.2.1 response body.
type registration struct {
	ClientID       string `json:"client_id"`
	ClientIDIssued int64  `json:"client_id_issued_at"`
	clientMetadata
}

// Register validates RFC 7591 client metadata (SMART Backend Services,
// "Registering a client"; R100, R101), stores the new client and returns it
// with the 201 response body: client_id (128 random bits),
// client_id_issued_at and the metadata as stored. The server fills in
// token_endpoint_auth_method private_key_jwt and grant_types
// [client_credentials], and the scope is the requested one intersected with
// defaults.MaxScopes. Invalid metadata is ErrInvalidClientMetadata with a
// description; store failures are ErrServerError.
//
// The metadata must have exactly one of jwks and jwks_uri. Every key must be
// a bare RSA (n, e; 2048 to 8192 bits) or EC (crv, x, y; P-256, P-384 or
// P-521) public signing key with a unique kid. A jwks_uri must pass the
// Fetcher's rules and is fetched and checked now, so a typo fails here and
// not at the first token request.
func (a *Authority) Register(ctx context.Context, metadata []byte, defaults RegistrationDefaults) (*bulk.Client, []byte, error) {
	md, err := decodeMetadata(metadata)
	if err != nil {
		return nil, nil, err
	}
	if err := a.checkKeys(ctx, &md); err != nil {
		return nil, nil, err
	}
	if err := checkGrant(&md); err != nil {
		return nil, nil, err
	}
	if defaults.MaxLookback < 0 {
		return nil, nil, invalidMetadata("The contract's maximum look-back must not be negative.")
	}
	scopes, err := registeredScopes(md.Scope, defaults.MaxScopes)
	if err != nil {
		return nil, nil, err
	}
	md.Scope = FormatScopes(scopes)
	return a.createClient(ctx, md, scopes, defaults)
}

// invalidMetadata is ErrInvalidClientMetadata with a description.
func invalidMetadata(format string, args ...any) error {
	return ErrInvalidClientMetadata.WithDescription(format, args...)
}

// decodeMetadata reads the members of a registration request that the
// server keeps; a member of the wrong type is invalid, a null one absent.
func decodeMetadata(metadata []byte) (clientMetadata, error) {
	var md clientMetadata
	if len(metadata) > MaxMetadataBytes {
		return md, invalidMetadata("The client metadata is larger than %d bytes.", MaxMetadataBytes)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(metadata, &m); err != nil || m == nil {
		return md, invalidMetadata("The client metadata must be a JSON object.")
	}
	fields := []struct {
		name string
		dst  any
	}{
		{"client_name", &md.ClientName}, {"client_uri", &md.ClientURI}, {"contacts", &md.Contacts},
		{"software_id", &md.SoftwareID}, {"software_version", &md.SoftwareVersion},
		{"jwks", &md.JWKS}, {"jwks_uri", &md.JWKSURI},
		{"token_endpoint_auth_method", &md.TokenEndpointAuthMethod}, {"grant_types", &md.GrantTypes}, {"scope", &md.Scope},
	}
	for _, f := range fields {
		v, ok := m[f.name]
		if !ok || string(v) == "null" {
			continue
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			return md, invalidMetadata("The %s member has the wrong type.", f.name)
		}
	}
	return md, nil
}

// checkKeys checks the client's keys: exactly one of jwks and jwks_uri
// (RFC 7591 §2). A jwks is stored compacted; a jwks_uri is fetched and
// its key set checked now.
func (a *Authority) checkKeys(ctx context.Context, md *clientMetadata) error {
	switch {
	case len(md.JWKS) > 0 && md.JWKSURI != "":
		return invalidMetadata("The jwks and jwks_uri members must not both be present; register one.")
	case len(md.JWKS) == 0 && md.JWKSURI == "":
		return invalidMetadata("A jwks_uri (preferred) or jwks member with the client's public keys is required.")
	case len(md.JWKS) > 0:
		if _, err := parseKeySet(md.JWKS, true); err != nil {
			return invalidMetadata("The jwks is invalid: %v.", err)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, md.JWKS); err != nil {
			return invalidMetadata("The jwks is invalid.")
		}
		md.JWKS = buf.Bytes()
		return nil
	default:
		return a.checkKeySetURL(ctx, md.JWKSURI)
	}
}

// checkKeySetURL checks a jwks_uri against the Fetcher's rules, fetches it
// and checks the key set it holds.
func (a *Authority) checkKeySetURL(ctx context.Context, jwksURI string) error {
	f := a.fetcher()
	u, err := f.checkURL(jwksURI)
	if err != nil {
		return invalidMetadata("%s", bulk.ErrorMessage(err))
	}
	if u.Fragment != "" {
		return invalidMetadata("The jwks_uri must not have a fragment.")
	}
	raw, err := f.Fetch(ctx, jwksURI)
	if err != nil {
		return invalidMetadata("%s", bulk.ErrorMessage(err))
	}
	if _, err := parseKeySet(raw, true); err != nil {
		return invalidMetadata("The key set at the jwks_uri is invalid: %v.", err)
	}
	return nil
}

// checkGrant checks the authentication method and grant types, filling
// them in: private_key_jwt and client_credentials are all this server
// offers. RFC 7591's defaults (client_secret_basic, authorization_code)
// would be wrong here, so absent members default to these instead. It
// also checks that a client_uri is absolute.
func checkGrant(md *clientMetadata) error {
	switch md.TokenEndpointAuthMethod {
	case "":
		md.TokenEndpointAuthMethod = "private_key_jwt"
	case "private_key_jwt":
	default:
		return invalidMetadata("The token_endpoint_auth_method %q is not supported; use private_key_jwt.", clip(md.TokenEndpointAuthMethod))
	}
	if md.GrantTypes != nil && !slices.Contains(md.GrantTypes, GrantTypeClientCredentials) {
		return invalidMetadata("The grant_types must include client_credentials, the only grant this server offers.")
	}
	md.GrantTypes = []string{GrantTypeClientCredentials}
	if md.ClientURI != "" {
		if u, err := url.Parse(md.ClientURI); err != nil || !u.IsAbs() {
			return invalidMetadata("The client_uri must be an absolute URL.")
		}
	}
	return nil
}

// registeredScopes returns the scopes a client registers: the requested
// ones within the operator's bound maxScopes (DefaultMaxScopes if empty),
// or the whole bound if none were requested.
func registeredScopes(requestedScope string, maxScopes []string) ([]Scope, error) {
	if len(maxScopes) == 0 {
		maxScopes = DefaultMaxScopes
	}
	bound, err := ParseScopes(strings.Join(maxScopes, " "))
	if err != nil {
		return nil, ErrServerError.WithWrap(err)
	}
	if strings.TrimSpace(requestedScope) == "" {
		return bound, nil
	}
	requested, err := ParseScopes(requestedScope)
	if err != nil {
		return nil, invalidMetadata("%s", bulk.ErrorMessage(err))
	}
	for _, s := range requested {
		if err := s.CheckQuery(); err != nil {
			return nil, invalidMetadata("The scope %q has a search restriction this server cannot enforce: %s", clip(s.String()), bulk.ErrorMessage(err))
		}
	}
	scopes := GrantScopes(requested, bound)
	if len(scopes) == 0 {
		return nil, invalidMetadata("None of the requested scopes may be registered; this server allows %q.", FormatScopes(bound))
	}
	return scopes, nil
}

// createClient stores the client of md under a new random id, with the
// contract of defaults, and returns it with its registration response
// body.
func (a *Authority) createClient(ctx context.Context, md clientMetadata, scopes []Scope, defaults RegistrationDefaults) (*bulk.Client, []byte, error) {
	now := a.now().UTC()
	for attempt := 0; ; attempt++ {
		resp := registration{ClientID: randomID(), ClientIDIssued: now.Unix(), clientMetadata: md}
		body, err := json.Marshal(resp)
		if err != nil {
			return nil, nil, ErrServerError.WithWrap(err)
		}
		c := &bulk.Client{
			ID:                   resp.ClientID,
			Name:                 md.ClientName,
			JWKS:                 md.JWKS,
			JWKSURI:              md.JWKSURI,
			Groups:               slices.Clone(defaults.Groups),
			MaxConcurrentExports: defaults.MaxConcurrentExports,
			MaxPollsPerMinute:    defaults.MaxPollsPerMinute,
			Types:                slices.Clone(defaults.Types),
			MaxLookback:          defaults.MaxLookback,
			Metadata:             body,
			CreatedAt:            now,
		}
		for _, s := range scopes {
			c.Scopes = append(c.Scopes, s.String())
		}
		err = a.Clients.CreateClient(ctx, c)
		if bulk.ErrorCode(err) == bulk.ECONFLICT && attempt == 0 {
			continue // a 128-bit collision: astronomically unlikely, but cheap to handle
		} else if err != nil {
			return nil, nil, ErrServerError.WithWrap(err)
		}
		return c, body, nil
	}
}
