package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"
)

// jwt is a compact JWS decoded without verifying it (requirements 6.5 step
// 2). Members are read by exact name, as JOSE requires, not by
// encoding/json's case-insensitive match.
type jwt struct {
	header map[string]json.RawMessage
	claims map[string]json.RawMessage
}

var errMalformed = errors.New("not a compact JWS with a JSON header and JSON claims")

// decodeJWT splits and decodes a compact JWS: three base64url parts (no
// padding), a JSON object header and a JSON object payload. The signature is
// checked later, by whoever knows the key.
func decodeJWT(token string) (*jwt, error) {
	h, rest, ok1 := strings.Cut(token, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	// An empty signature passes here so that alg "none" gets its own
	// refusal; it never verifies.
	if !ok1 || !ok2 || h == "" || p == "" || strings.Contains(sig, ".") {
		return nil, errMalformed
	}
	if _, err := b64.DecodeString(sig); err != nil {
		return nil, errMalformed
	}
	var t jwt
	for _, part := range []struct {
		enc string
		dst *map[string]json.RawMessage
	}{{h, &t.header}, {p, &t.claims}} {
		raw, err := b64.DecodeString(part.enc)
		if err != nil {
			return nil, errMalformed
		}
		if err := json.Unmarshal(raw, part.dst); err != nil || *part.dst == nil {
			return nil, errMalformed
		}
	}
	return &t, nil
}

// b64 is base64url without padding, refusing non-zero trailing bits so each
// token has one encoding.
var b64 = base64.RawURLEncoding.Strict()

// stringMember returns a string member: its value, whether it is present, and
// whether it is a string if present.
func stringMember(m map[string]json.RawMessage, name string) (s string, present, ok bool) {
	v, present := m[name]
	if !present {
		return "", false, true
	}
	return s, true, json.Unmarshal(v, &s) == nil
}

// dateMember returns a NumericDate member (RFC 7519 §2): seconds since the
// epoch, possibly fractional. ok is false if it is present and not a number.
func dateMember(m map[string]json.RawMessage, name string) (t time.Time, present, ok bool) {
	v, present := m[name]
	if !present {
		return time.Time{}, false, true
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil || math.IsNaN(f) {
		return time.Time{}, true, false
	}
	// Clamp to ±30000 years, far beyond any check, before converting.
	f = max(-1e12, min(1e12, f))
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true, true
}

// audience returns the aud claim as a list: RFC 7519 §4.1.3 allows a string
// or an array of strings.
func audience(m map[string]json.RawMessage) ([]string, bool) {
	v, present := m["aud"]
	if !present {
		return nil, true
	}
	var one string
	if json.Unmarshal(v, &one) == nil {
		return []string{one}, true
	}
	var many []string
	if json.Unmarshal(v, &many) == nil {
		return many, true
	}
	return nil, false
}

// unsafeHeaders reports header members that would change what the signature
// covers or how it must be processed: crit (RFC 7515 §4.1.11) and b64
// (RFC 7797). Neither is used by SMART, so both are refused.
func (t *jwt) unsafeHeaders() string {
	for _, name := range []string{"crit", "b64"} {
		if _, ok := t.header[name]; ok {
			return name
		}
	}
	return ""
}
