package bulk

import (
	"context"
	"encoding/json"
	"time"
)

// Client is a registered SMART Backend Services client and its contract:
// what it may export and how much (requirements 6.2, 1.6).
type Client struct {
	ID   string `json:"client_id"`
	Name string `json:"client_name,omitempty"`
	// JWKS is an inline public key set; JWKSURI the URL of one. Exactly one
	// is set (RFC 7591: never both).
	JWKS    json.RawMessage `json:"jwks,omitempty"`
	JWKSURI string          `json:"jwks_uri,omitempty"`
	// Scopes are the scopes the client may be granted (SMART v1 or v2
	// syntax, e.g. "system/*.rs" or "system/Observation.read").
	Scopes []string `json:"scopes"`
	// Groups are the Group ids the client may export; "*" allows every
	// Group. Empty allows none (business contracts, requirements 1.6).
	Groups []string `json:"groups"`
	// Types, when not empty, are the only resource types the client may
	// export, whatever its scopes allow: an export naming another in
	// `_type` is refused, and one without `_type` covers only these.
	Types []string `json:"types,omitempty"`
	// MaxLookback, when positive, bounds how far back an export may reach:
	// each needs a `_since` no earlier than kick-off time minus
	// MaxLookback (an export without `_since` reaches back forever).
	MaxLookback time.Duration `json:"max_lookback,omitempty"`
	// MaxConcurrentExports and MaxPollsPerMinute are quotas; 0 means the
	// server default.
	MaxConcurrentExports int `json:"max_concurrent_exports,omitempty"`
	MaxPollsPerMinute    int `json:"max_polls_per_minute,omitempty"`
	// Metadata is the RFC 7591 metadata as registered, echoed back.
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// AllGroups reports whether the client's contract allows every Group
// ("*"). A client limited to some Groups exports only their members'
// data at every level (requirements 1.6, R37, R93).
func (c *Client) AllGroups() bool {
	for _, g := range c.Groups {
		if g == "*" {
			return true
		}
	}
	return false
}

// AllowsGroup reports whether the client's contract allows Group id.
func (c *Client) AllowsGroup(id string) bool {
	for _, g := range c.Groups {
		if g == "*" || g == id {
			return true
		}
	}
	return false
}

// AllowsType reports whether the client's contract allows exporting
// resources of typ (Types empty: every type).
func (c *Client) AllowsType(typ string) bool {
	if len(c.Types) == 0 {
		return true
	}
	for _, t := range c.Types {
		if t == typ {
			return true
		}
	}
	return false
}

// ClientStore persists registered clients.
type ClientStore interface {
	// CreateClient stores a new client. Returns ECONFLICT if the id exists.
	CreateClient(ctx context.Context, c *Client) error
	// GetClient returns a client. Returns ENOTFOUND if it does not exist.
	GetClient(ctx context.Context, id string) (*Client, error)
	// UpdateClient replaces a stored client. Returns ENOTFOUND if it does
	// not exist.
	UpdateClient(ctx context.Context, c *Client) error
	// DeleteClient removes a client. Returns ENOTFOUND if it does not exist.
	DeleteClient(ctx context.Context, id string) error
	// ListClients visits every client in id order.
	ListClients(ctx context.Context, fn func(*Client) error) error
}

// RateCounter counts a key's events in windows, shared by every process
// that uses the same store: the per-client status poll quota (R48) holds
// across Lambda instances as it does in one local server. A window opens
// at the first event after the previous window closed.
type RateCounter interface {
	// Take counts one event for key. It returns zero when the event is
	// within limit in the key's current window of length window, else how
	// long until that window closes (and counts nothing).
	Take(ctx context.Context, key string, limit int, window time.Duration) (time.Duration, error)
}

// ReplayCache remembers one-time values (assertion `jti`s) until they
// expire (requirements 6.5 step 8, R107).
type ReplayCache interface {
	// MarkUsed records key until expires. Returns ECONFLICT if key is
	// already recorded and has not expired; an expired record is replaced.
	MarkUsed(ctx context.Context, key string, expires time.Time) error
}
