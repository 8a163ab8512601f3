package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"strings"
)

// Signature algorithms (RFC 7518 §3.1). SMART Backend Services servers must
// verify RS384 or ES384 and clients must support both; the others may be
// enabled with Authority.Algorithms. "none" and the HMAC algorithms are
// never accepted: an HMAC "signature" keyed with a public key proves nothing.
const (
	RS256 = "RS256"
	RS384 = "RS384"
	RS512 = "RS512"
	PS256 = "PS256"
	PS384 = "PS384"
	PS512 = "PS512"
	ES256 = "ES256"
	ES384 = "ES384"
	ES512 = "ES512"
)

// DefaultAlgorithms are the assertion algorithms accepted when
// Authority.Algorithms is empty: the two SMART requires.
var DefaultAlgorithms = []string{RS384, ES384}

// supportedAlgorithms are those Authority.Algorithms may list.
var supportedAlgorithms = []string{RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512}

// keyTypeFor returns the JWK kty an algorithm needs, or "" if the algorithm
// is not a supported asymmetric signature algorithm.
func keyTypeFor(alg string) string {
	switch alg {
	case RS256, RS384, RS512, PS256, PS384, PS512:
		return "RSA"
	case ES256, ES384, ES512:
		return "EC"
	}
	return ""
}

// curveForAlg returns the JWK crv an ES algorithm needs (RFC 7518 §3.4).
func curveForAlg(alg string) string {
	switch alg {
	case ES256:
		return "P-256"
	case ES384:
		return "P-384"
	case ES512:
		return "P-521"
	}
	return ""
}

func curveFor(crv string) elliptic.Curve {
	switch crv {
	case "P-256":
		return elliptic.P256()
	case "P-384":
		return elliptic.P384()
	case "P-521":
		return elliptic.P521()
	}
	return nil
}

func curveName(key crypto.Signer) string {
	if k, ok := key.(*ecdsa.PrivateKey); ok {
		return k.Curve.Params().Name
	}
	return ""
}

// suits reports whether a public key may verify a signature made with alg:
// the key type and curve match, and the key's own alg member, if any, agrees
// (SMART: "kid" picks a key of the kty that suits "alg").
func (k publicKey) suits(alg string) bool {
	if k.kty != keyTypeFor(alg) || (k.alg != "" && k.alg != alg) {
		return false
	}
	return k.kty != "EC" || k.crv == curveForAlg(alg)
}

// isHMACOrNone reports whether alg is one the specification singles out as
// never acceptable, for a more helpful description.
func isHMACOrNone(alg string) bool {
	return strings.EqualFold(alg, "none") || strings.HasPrefix(strings.ToUpper(alg), "HS")
}
