package auth

// This file is the only one in Tranche that imports lestrrat-go/jwx (style
// rule 9): JWK parsing, JWS signing and verification. Everything else in the
// package works with standard-library keys, so a library upgrade touches
// only this file.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// publicKey is a validated public JWK.
type publicKey struct {
	kid string
	kty string // "RSA" or "EC"
	crv string // EC only
	alg string // the JWK's own alg member, if any
	key crypto.PublicKey
}

// RSA key limits: SMART clients use 2048 bits or more, and a cap keeps a
// hostile key from making each verification expensive.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// privateMembers are JWK members that only a private or symmetric key has
// (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parseKeySet parses a JWK Set ({"keys": [...]}). Strict parsing, used at
// registration, fails on the first key that is not a bare RSA or EC public
// signing key with a kid, or on a repeated kid (SMART Backend Services,
// "Registering a client"). Lenient parsing, used for key sets fetched at
// token time, skips such keys, so one unusual key in a client's set does not
// lock the client out; duplicates are then refused when a kid selects more
// than one key.
func parseKeySet(data []byte, strict bool) ([]publicKey, error) {
	var set struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil || set.Keys == nil {
		return nil, fmt.Errorf(`it is not a JSON Web Key Set (an object with a "keys" array)`)
	}
	if strict && len(*set.Keys) == 0 {
		return nil, fmt.Errorf("the key set has no keys")
	}
	var keys []publicKey
	for i, raw := range *set.Keys {
		k, err := parsePublicJWK(raw, strict)
		if err != nil {
			if strict {
				return nil, fmt.Errorf("key %d: %w", i, err)
			}
			continue
		}
		if strict && slices.ContainsFunc(keys, func(o publicKey) bool { return o.kid == k.kid }) {
			return nil, fmt.Errorf("key %d: kid %q is used by another key; kids must be unique", i, k.kid)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// parsePublicJWK parses one public signing JWK. The error text is client
// safe. Strict parsing also rejects keys meant for encryption.
func parsePublicJWK(raw json.RawMessage, strict bool) (publicKey, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return publicKey{}, fmt.Errorf("it is not a JSON object")
	}
	str := func(name string) (string, bool) {
		var s string
		v, ok := m[name]
		if !ok || json.Unmarshal(v, &s) != nil {
			return "", false
		}
		return s, true
	}
	kty, ok := str("kty")
	if !ok || kty == "" {
		return publicKey{}, fmt.Errorf("kty is required")
	}
	kid, ok := str("kid")
	if !ok || kid == "" {
		return publicKey{}, fmt.Errorf("kid is required")
	}
	for _, name := range privateMembers {
		if _, ok := m[name]; ok {
			return publicKey{}, fmt.Errorf("kid %q: private key member %q must not be registered; register the public key only", kid, name)
		}
	}
	var required []string
	switch kty {
	case "RSA":
		required = []string{"n", "e"}
	case "EC":
		required = []string{"crv", "x", "y"}
	default:
		return publicKey{}, fmt.Errorf("kid %q: kty %q is not supported; use RSA or EC", kid, kty)
	}
	for _, name := range required {
		if s, ok := str(name); !ok || s == "" {
			return publicKey{}, fmt.Errorf("kid %q: an %s key needs %q", kid, kty, name)
		}
	}
	if crv, _ := str("crv"); kty == "EC" && curveFor(crv) == nil {
		return publicKey{}, fmt.Errorf("kid %q: crv %q is not supported; use P-256, P-384 or P-521", kid, crv)
	}
	use, _ := str("use")
	if use != "" && use != "sig" && strict {
		return publicKey{}, fmt.Errorf(`kid %q: use must be "sig", not %q`, kid, use)
	}
	alg, _ := str("alg")
	if alg != "" && keyTypeFor(alg) != kty {
		return publicKey{}, fmt.Errorf("kid %q: alg %q is not a signature algorithm for an %s key", kid, alg, kty)
	}

	k, err := jwk.ParseKey(raw)
	if err != nil {
		return publicKey{}, fmt.Errorf("kid %q: the key parameters are invalid", kid)
	}
	var rawKey any
	if err := k.Raw(&rawKey); err != nil {
		return publicKey{}, fmt.Errorf("kid %q: the key parameters are invalid", kid)
	}
	pk := publicKey{kid: kid, kty: kty, alg: alg}
	if use != "" && use != "sig" {
		pk.alg = "-" // matches no algorithm: never used to verify
	}
	switch key := rawKey.(type) {
	case *rsa.PublicKey:
		if bits := key.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return publicKey{}, fmt.Errorf("kid %q: an RSA key must have %d to %d bits, not %d", kid, minRSABits, maxRSABits, bits)
		}
		if key.E < 3 || key.E%2 == 0 || key.E > 1<<31-1 {
			return publicKey{}, fmt.Errorf("kid %q: the RSA exponent is invalid", kid)
		}
		pk.key = key
	case *ecdsa.PublicKey:
		pk.crv, _ = str("crv")
		if _, err := key.ECDH(); err != nil {
			return publicKey{}, fmt.Errorf("kid %q: the EC point is not on the curve", kid)
		}
		pk.key = key
	default:
		return publicKey{}, fmt.Errorf("kid %q: the key parameters are invalid", kid)
	}
	return pk, nil
}

// verifyJWS checks the signature of a compact JWS with key under alg. The
// caller has already checked the header's alg against its allow list and
// rejected the crit and b64 headers, so jwx verifies exactly what the
// caller decoded.
func verifyJWS(token, alg string, key crypto.PublicKey) error {
	_, err := jws.Verify([]byte(token), jws.WithKey(jwa.SignatureAlgorithm(alg), key), jws.WithCompact())
	return err
}

// signJWS returns a compact JWS of payload with the kid and typ headers.
func signJWS(alg string, key crypto.Signer, kid, typ string, payload []byte) (string, error) {
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, kid); err != nil {
		return "", err
	}
	if err := h.Set(jws.TypeKey, typ); err != nil {
		return "", err
	}
	b, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(alg), key, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// generatePrivateJWK returns a new P-256 private JWK for ES256 with its
// RFC 7638 thumbprint as kid.
func generatePrivateJWK() ([]byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	k, err := jwk.FromRaw(priv)
	if err != nil {
		return nil, err
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	for name, v := range map[string]any{jwk.KeyIDKey: base64.RawURLEncoding.EncodeToString(tp), jwk.AlgorithmKey: "ES256", jwk.KeyUsageKey: "sig"} {
		if err := k.Set(name, v); err != nil {
			return nil, err
		}
	}
	return json.Marshal(k)
}

// parsePrivateJWK parses a private signing JWK: EC P-256, P-384 or P-521,
// or RSA of at least 2048 bits. kid defaults to the RFC 7638 thumbprint and
// alg to ES256, ES384, ES512 by curve, or RS256 for RSA.
func parsePrivateJWK(data []byte) (key crypto.Signer, kid, alg string, err error) {
	k, err := jwk.ParseKey(data)
	if err != nil {
		return nil, "", "", fmt.Errorf("the key is not a valid JWK: %w", err)
	}
	var rawKey any
	if err := k.Raw(&rawKey); err != nil {
		return nil, "", "", err
	}
	switch p := rawKey.(type) {
	case *ecdsa.PrivateKey:
		switch p.Curve {
		case elliptic.P256():
			alg = "ES256"
		case elliptic.P384():
			alg = "ES384"
		case elliptic.P521():
			alg = "ES512"
		default:
			return nil, "", "", fmt.Errorf("the EC key's curve is not supported")
		}
		key = p
	case *rsa.PrivateKey:
		if p.N.BitLen() < minRSABits {
			return nil, "", "", fmt.Errorf("the RSA key has %d bits; at least %d are needed", p.N.BitLen(), minRSABits)
		}
		alg, key = "RS256", p
	default:
		return nil, "", "", fmt.Errorf("the JWK is not an EC or RSA private key")
	}
	if a, ok := k.Get(jwk.AlgorithmKey); ok {
		s := fmt.Sprint(a)
		if keyTypeFor(s) != k.KeyType().String() || curveName(key) != curveForAlg(s) {
			return nil, "", "", fmt.Errorf("the JWK's alg %q does not suit the key", s)
		}
		alg = s
	}
	kid = k.KeyID()
	if kid == "" {
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, "", "", err
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	return key, kid, alg, nil
}

// publicJWKS returns a JWK Set holding the public half of key.
func publicJWKS(key crypto.Signer, kid, alg string) ([]byte, error) {
	k, err := jwk.PublicKeyOf(key.Public())
	if err != nil {
		return nil, err
	}
	for name, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: alg, jwk.KeyUsageKey: "sig"} {
		if err := k.Set(name, v); err != nil {
			return nil, err
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(k); err != nil {
		return nil, err
	}
	return json.Marshal(set)
}
