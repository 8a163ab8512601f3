package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/config"
)

// TestMaxOutputBytes: the output budget defaults to sizing itself from the
// disk (-1), TRANCHE_MAX_OUTPUT_BYTES sets it, 0 is unlimited, and anything
// below -1 is refused at start.
func TestMaxOutputBytes(t *testing.T) {
	if got := config.Default().MaxOutputBytes; got != config.AutoOutputBytes {
		t.Errorf("Default().MaxOutputBytes = %d, want %d", got, config.AutoOutputBytes)
	}
	for _, tc := range []struct {
		env     string
		want    int64
		wantErr string
	}{
		{"1073741824", 1 << 30, ""},
		{"0", 0, ""},
		{"-1", config.AutoOutputBytes, ""},
		{"-2", -2, "TRANCHE_MAX_OUTPUT_BYTES"},
	} {
		t.Setenv("TRANCHE_MAX_OUTPUT_BYTES", tc.env)
		c, err := config.FromEnv(config.Default())
		if err != nil {
			t.Fatalf("FromEnv() with %s: %v", tc.env, err)
		}
		if c.MaxOutputBytes != tc.want {
			t.Errorf("FromEnv() with %s: MaxOutputBytes = %d, want %d", tc.env, c.MaxOutputBytes, tc.want)
		}
		if err := c.Validate(); (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("Validate() with %s = %v, want error %q", tc.env, err, tc.wantErr)
		}
	}
}

// TestEnvSettings: the variables this round added reach the configuration,
// and a bad value is an error naming the variable.
func TestEnvSettings(t *testing.T) {
	t.Setenv("TRANCHE_ITEM_MARGIN", "45s")
	t.Setenv("TRANCHE_LENIENT_HEADERS", "true")
	c, err := config.FromEnv(config.Default())
	if err != nil || c.Export.ItemMargin != 45*time.Second || !c.LenientHeaders {
		t.Errorf("FromEnv() = margin %v, lenient headers %v, %v; want 45s, true", c.Export.ItemMargin, c.LenientHeaders, err)
	}
	t.Setenv("TRANCHE_LENIENT_HEADERS", "sometimes")
	if _, err := config.FromEnv(config.Default()); err == nil || !strings.Contains(err.Error(), "TRANCHE_LENIENT_HEADERS") {
		t.Errorf("FromEnv() with TRANCHE_LENIENT_HEADERS=sometimes = %v, want an error naming it", err)
	}
}

// TestBaseURLRules: TLS or --trust-proxy need --base-url (the token URL
// and issuer are configured, not taken from the Host), except behind API
// Gateway; plain HTTP beyond loopback needs --insecure-listen, --open
// included; a base URL must be absolute, without a trailing slash.
func TestBaseURLRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*config.Config)
		wantErr string
	}{
		{"loopback", func(*config.Config) {}, ""},
		{"trust proxy", func(c *config.Config) { c.TrustProxy = true }, "--base-url"},
		{"trust proxy with base", func(c *config.Config) { c.TrustProxy, c.BaseURL = true, "https://fhir.example.org" }, ""},
		{"gateway", func(c *config.Config) { c.TrustProxy, c.GatewayHeaders = true, true }, ""},
		{"open beyond loopback", func(c *config.Config) { c.Auth.Open, c.Addr = true, "0.0.0.0:8080" }, "--insecure-listen"},
		{"insecure listen", func(c *config.Config) { c.Addr, c.InsecureListen = "0.0.0.0:8080", true }, ""},
		{"trailing slash", func(c *config.Config) { c.BaseURL = "https://fhir.example.org/" }, "base url"},
		{"relative", func(c *config.Config) { c.BaseURL = "/fhir" }, "base url"},
	} {
		c := config.Default()
		c.DataDir = t.TempDir()
		tc.edit(&c)
		err := c.Validate()
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: Validate() = %v, want error %q", tc.name, err, tc.wantErr)
		}
	}
}

// TestGzipFiles: export files are stored as they are by default, and
// TRANCHE_GZIP_FILES turns gzip at write time on; a value that is not a
// boolean is an error naming the variable.
func TestGzipFiles(t *testing.T) {
	if config.Default().GzipFiles {
		t.Error("Default().GzipFiles = true, want false")
	}
	t.Setenv("TRANCHE_GZIP_FILES", "true")
	if c, err := config.FromEnv(config.Default()); err != nil || !c.GzipFiles {
		t.Errorf("FromEnv() with TRANCHE_GZIP_FILES=true = %v, %v; want true, nil", c.GzipFiles, err)
	}
	t.Setenv("TRANCHE_GZIP_FILES", "yes please")
	if _, err := config.FromEnv(config.Default()); err == nil || !strings.Contains(err.Error(), "TRANCHE_GZIP_FILES") {
		t.Errorf("FromEnv() with TRANCHE_GZIP_FILES=yes please = %v, want an error naming it", err)
	}
}
