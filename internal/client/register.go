package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// ClientFile is a registered client's credentials file: what `tranche
// serve` writes for its demo client and `tranche register` writes, and what
// `tranche export --client` reads.
type ClientFile struct {
	ClientID    string          `json:"client_id"`
	TokenURL    string          `json:"token_url,omitempty"`
	FHIRBaseURL string          `json:"fhir_base_url,omitempty"`
	PrivateJWK  json.RawMessage `json:"private_jwk,omitempty"`
	Scope       string          `json:"scope,omitempty"`
}

// LoadClientFile reads a client file.
func LoadClientFile(path string) (*ClientFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cf ClientFile
	if err := json.Unmarshal(raw, &cf); err != nil {
		return nil, fmt.Errorf("client file %s: %w", path, err)
	}
	if cf.ClientID == "" {
		return nil, fmt.Errorf("client file %s: no client_id", path)
	}
	return &cf, nil
}

// Key returns the client file's private key (nil if it has none).
func (cf *ClientFile) Key() (*Key, error) {
	if len(cf.PrivateJWK) == 0 || string(cf.PrivateJWK) == "null" {
		return nil, nil
	}
	return ParseJWK(cf.PrivateJWK)
}

// Save writes the client file, readable by its owner only: it holds a
// private key.
func (cf *ClientFile) Save(path string) error {
	raw, err := json.MarshalIndent(cf, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(raw, '\n'), 0o600)
}

// RegisterRequest is an RFC 7591 dynamic client registration for SMART
// Backend Services: private_key_jwt with a JWKS (inline) or a JWKS URL.
type RegisterRequest struct {
	FHIRBase string
	// InitialToken is the initial access token (RFC 7591 §3), sent as a
	// bearer token.
	InitialToken string
	ClientName   string
	Scope        string
	// Exactly one of JWKS and JWKSURI is set.
	JWKS    []JWK
	JWKSURI string
	HTTP    *http.Client
}

// Registration is the server's answer: the new client id, and the token
// endpoint when discovery found one.
type Registration struct {
	ClientID      string
	TokenEndpoint string
	// Metadata is the registration response as returned.
	Metadata json.RawMessage
}

// Register registers a client at the registration_endpoint of
// [base]/.well-known/smart-configuration, or [base]/register when the
// server advertises none.
func Register(ctx context.Context, r RegisterRequest) (*Registration, error) {
	if (len(r.JWKS) == 0) == (r.JWKSURI == "") {
		return nil, errors.New("register: give exactly one of a JWKS and a JWKS URL")
	}
	hc := r.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	base := strings.TrimRight(r.FHIRBase, "/")
	endpoint := base + "/register"
	var tokenEndpoint string
	if cfg, err := Discover(ctx, hc, base); err == nil {
		if cfg.RegistrationEndpoint != "" {
			endpoint = cfg.RegistrationEndpoint
		}
		tokenEndpoint = cfg.TokenEndpoint
	}
	scope := r.Scope
	if scope == "" {
		scope = "system/*.read"
	}
	meta := map[string]any{
		"client_name":                r.ClientName,
		"token_endpoint_auth_method": "private_key_jwt",
		"grant_types":                []string{"client_credentials"},
		"scope":                      scope,
	}
	if r.JWKSURI != "" {
		meta["jwks_uri"] = r.JWKSURI
	} else {
		meta["jwks"] = map[string]any{"keys": r.JWKS}
	}
	body, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if r.InitialToken != "" {
		req.Header.Set("Authorization", "Bearer "+r.InitialToken)
	}
	hcSafe := *hc
	hcSafe.CheckRedirect = SafeRedirect(hc.CheckRedirect)
	res, err := hcSafe.Do(req)
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("register: POST %s: %w", endpoint, err)
	}
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			msg = e.Error
			if e.Description != "" {
				msg += ": " + e.Description
			}
		} else if oo := (OperationOutcome{}); json.Unmarshal(raw, &oo) == nil && oo.ResourceType == "OperationOutcome" {
			msg = oo.Text()
		}
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return nil, fmt.Errorf("register: POST %s: %d %s: %s", endpoint, res.StatusCode, http.StatusText(res.StatusCode), msg)
	}
	var out struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.ClientID == "" {
		return nil, fmt.Errorf("register: POST %s: the response has no client_id: %s", endpoint, raw)
	}
	return &Registration{ClientID: out.ClientID, TokenEndpoint: tokenEndpoint, Metadata: raw}, nil
}
