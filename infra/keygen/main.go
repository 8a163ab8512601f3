// Command keygen prints a new access-token signing key, a private P-256
// JWK, for the Secrets Manager secret the stack reads
// (infra/create-secrets.sh). The key goes to stdout only; nothing is kept.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/tranchehq/tranche/internal/auth"
)

func main() {
	dir, err := os.MkdirTemp("", "tranche-keygen-")
	if err == nil {
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "key.jwk")
		if _, err = auth.LoadOrCreateSigner(path); err == nil {
			var key []byte
			if key, err = os.ReadFile(path); err == nil {
				_, err = os.Stdout.Write(key)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "keygen:", err)
		os.Exit(1)
	}
}
