package client

// This file is the only one in the client that imports lestrrat-go/jwx
// (style rule 9): JWK reading and writing, thumbprints, and the RS384/ES384
// compact JWS of SMART Backend Services client assertions. Everything else
// works with standard-library keys (crypto.Signer), so a library upgrade
// touches only this file. PEM keys are read with crypto/x509.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Signing algorithms SMART Backend Services recommends (requirements 6.4).
const (
	RS384 = "RS384"
	ES384 = "ES384"
)

// Key is a private signing key with its JWK key id and algorithm.
type Key struct {
	Signer crypto.Signer
	KeyID  string
	Alg    string
}

// JWK is a JSON Web Key (RFC 7517) with the RSA and EC members this client
// uses. Private members are empty in a public key.
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
	// RSA
	N  string `json:"n,omitempty"`
	E  string `json:"e,omitempty"`
	P  string `json:"p,omitempty"`
	Q  string `json:"q,omitempty"`
	DP string `json:"dp,omitempty"`
	DQ string `json:"dq,omitempty"`
	QI string `json:"qi,omitempty"`
	// EC
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	// D is the private exponent (RSA) or scalar (EC).
	D string `json:"d,omitempty"`
}

// ParseJWK reads a private JWK (RSA, or EC on P-384) into a signing key.
// The algorithm is the JWK's alg, or RS384/ES384 from the key type; the
// kid, when the JWK has none, is its RFC 7638 thumbprint.
func ParseJWK(raw []byte) (*Key, error) {
	jk, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, fmt.Errorf("private JWK: %w", err)
	}
	var key any
	if err := jk.Raw(&key); err != nil {
		return nil, fmt.Errorf("private JWK: %w", err)
	}
	k := &Key{KeyID: jk.KeyID()}
	if a := jk.Algorithm(); a != nil {
		k.Alg = a.String()
	}
	switch s := key.(type) {
	case *rsa.PrivateKey:
		k.Signer = s
		if k.Alg == "" {
			k.Alg = RS384
		}
	case *ecdsa.PrivateKey:
		k.Signer = s
		if k.Alg == "" {
			k.Alg = ES384
		}
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return nil, errors.New("private JWK: no private key (d); a public key cannot sign")
	default:
		return nil, fmt.Errorf("private JWK: key type %q; want RSA or EC", jk.KeyType())
	}
	if err := k.check(); err != nil {
		return nil, err
	}
	if k.KeyID == "" {
		k.KeyID = Thumbprint(k.Signer.Public())
	}
	return k, nil
}

// ParsePEMKey reads a PEM private key (PKCS #8, PKCS #1 RSA or SEC 1 EC).
// PEM carries no key id: kid, when empty, is the key's RFC 7638 thumbprint.
func ParsePEMKey(raw []byte, kid string) (*Key, error) {
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			return nil, errors.New("PEM key: no private key block found")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue // e.g. "EC PARAMETERS" before the key
		}
		if err != nil {
			return nil, fmt.Errorf("PEM key: %w", err)
		}
		k := &Key{KeyID: kid}
		switch s := key.(type) {
		case *rsa.PrivateKey:
			k.Signer, k.Alg = s, RS384
		case *ecdsa.PrivateKey:
			k.Signer, k.Alg = s, ES384
		default:
			return nil, fmt.Errorf("PEM key: %T keys are not supported; use RSA or EC P-384", key)
		}
		if err := k.check(); err != nil {
			return nil, err
		}
		if k.KeyID == "" {
			k.KeyID = Thumbprint(k.Signer.Public())
		}
		return k, nil
	}
}

// ParseKey reads a private key file: a JWK (JSON) or PEM. A non-empty kid
// replaces the key's own.
func ParseKey(raw []byte, kid string) (*Key, error) {
	if t := strings.TrimSpace(string(raw)); strings.HasPrefix(t, "{") {
		k, err := ParseJWK(raw)
		if err == nil && kid != "" {
			k.KeyID = kid
		}
		return k, err
	}
	return ParsePEMKey(raw, kid)
}

func (k *Key) check() error {
	switch pub := k.Signer.Public().(type) {
	case *rsa.PublicKey:
		if k.Alg != RS384 {
			return fmt.Errorf("key: an RSA key signs RS384 here, not %q", k.Alg)
		}
		if pub.N.BitLen() < 2048 {
			return fmt.Errorf("key: RSA key of %d bits; use 2048 or more", pub.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if k.Alg != ES384 {
			return fmt.Errorf("key: an EC key signs ES384 here, not %q", k.Alg)
		}
		if pub.Curve != elliptic.P384() {
			return fmt.Errorf("key: EC curve %s; ES384 needs P-384", pub.Curve.Params().Name)
		}
	default:
		return fmt.Errorf("key: %T keys are not supported", pub)
	}
	return nil
}

// GenerateES384 makes a new P-384 key whose kid is its thumbprint.
func GenerateES384() (*Key, error) {
	pk, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Key{Signer: pk, Alg: ES384, KeyID: Thumbprint(pk.Public())}, nil
}

// PublicJWK returns the key's public JWK (for a JWKS).
func (k *Key) PublicJWK() JWK {
	j, err := k.jwk(k.Signer.Public())
	if err != nil {
		return JWK{}
	}
	return j
}

// PrivateJWK returns the key as a private JWK (for a client file).
func (k *Key) PrivateJWK() (JWK, error) {
	return k.jwk(k.Signer)
}

func (k *Key) jwk(raw any) (JWK, error) {
	jk, err := jwk.FromRaw(raw)
	if err != nil {
		return JWK{}, fmt.Errorf("key: %w", err)
	}
	for name, v := range map[string]any{jwk.KeyIDKey: k.KeyID, jwk.AlgorithmKey: jwa.SignatureAlgorithm(k.Alg), jwk.KeyUsageKey: "sig"} {
		if err := jk.Set(name, v); err != nil {
			return JWK{}, fmt.Errorf("key: %w", err)
		}
	}
	b, err := json.Marshal(jk)
	if err != nil {
		return JWK{}, err
	}
	var j JWK
	err = json.Unmarshal(b, &j)
	return j, err
}

// Thumbprint is the RFC 7638 SHA-256 JWK thumbprint of a public key,
// base64url: a stable kid for keys that have none.
func Thumbprint(pub crypto.PublicKey) string {
	jk, err := jwk.FromRaw(pub)
	if err != nil {
		return ""
	}
	sum, err := jk.Thumbprint(crypto.SHA256)
	if err != nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// SignJWT returns the compact JWS of claims signed with k, with the header
// alg, kid and typ "JWT" (requirements 6.4). The claims are serialized as
// given (aud stays a string).
func (k *Key) SignJWT(claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, k.KeyID); err != nil {
		return "", err
	}
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	var alg jwa.SignatureAlgorithm
	if err := alg.Accept(k.Alg); err != nil || (alg != jwa.RS384 && alg != jwa.ES384) {
		return "", fmt.Errorf("sign assertion: algorithm %q; want RS384 or ES384", k.Alg)
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, k.Signer, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("sign assertion: %w", err)
	}
	return string(out), nil
}
