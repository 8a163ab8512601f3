package auth

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/tranchehq/tranche/internal/bulk"
)

// Signer is the server's access-token key. It is safe for concurrent use.
type Signer struct {
	key  crypto.Signer
	kid  string
	alg  string
	jwks []byte
}

// NewSigner returns a signer for a private JWK: EC P-256 (ES256), P-384
// (ES384), P-521 (ES512) or RSA of 2048 bits or more (RS256, or the JWK's
// alg). A missing kid is the key's RFC 7638 thumbprint. Use it for keys that
// configuration supplies (on AWS, from Secrets Manager).
func NewSigner(jwkJSON []byte) (*Signer, error) {
	key, kid, alg, err := parsePrivateJWK(jwkJSON)
	if err != nil {
		return nil, bulk.Wrapf(err, bulk.EINVALID, "The token signing key is not a usable private JWK: %v.", err)
	}
	jwks, err := publicJWKS(key, kid, alg)
	if err != nil {
		return nil, err
	}
	return &Signer{key: key, kid: kid, alg: alg, jwks: jwks}, nil
}

// LoadOrCreateSigner reads the private JWK at path, generating a P-256 key
// there (mode 0600) if the file does not exist: the local server's key lives
// in its data directory. An existing file that group or others may read is
// refused on Unix, as ssh refuses such keys. Two processes racing to create
// the file end up with the same key: the file appears atomically, and the
// loser reads the winner's.
func LoadOrCreateSigner(path string) (_ *Signer, err error) {
	defer bulk.Wrap(&err, "auth.LoadOrCreateSigner(%q)", path)
	data, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if data, err = createKeyFile(path); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	return NewSigner(data)
}

func readKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, bulk.Errorf(bulk.EINVALID, "The token signing key %s is readable by other users (mode %v); run chmod 600 on it.", path, fi.Mode().Perm())
	}
	return os.ReadFile(path)
}

// createKeyFile writes a new key to a temporary file and links it into
// place, which fails if path exists; then it reads whichever key won.
func createKeyFile(path string) ([]byte, error) {
	data, err := generatePrivateJWK()
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, ".signing-key-*") // mode 0600
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("installing the new key: %w", err)
	}
	return readKeyFile(path)
}

// KeyID returns the kid of the signing key.
func (s *Signer) KeyID() string { return s.kid }

// Algorithm returns the JWS algorithm the signer uses.
func (s *Signer) Algorithm() string { return s.alg }

// PublicJWKS returns the public key as a JWK Set, for publishing to
// resource servers that verify access tokens themselves.
func (s *Signer) PublicJWKS() []byte { return append([]byte(nil), s.jwks...) }

// sign returns a compact JWS of payload.
func (s *Signer) sign(typ string, payload []byte) (string, error) {
	return signJWS(s.alg, s.key, s.kid, typ, payload)
}

// verify checks a compact JWS signed by this key. The public key is parsed
// once, when the signer is made.
func (s *Signer) verify(token string) error {
	return verifyJWS(token, s.alg, s.key.Public())
}
