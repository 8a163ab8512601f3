// Package config is Tranche's one configuration struct: flags and defaults
// locally, the environment on AWS (style.md rule 7).
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/fhir/defs"
)

// Config configures a Tranche process.
type Config struct {
	// Addr is the local server's listen address.
	Addr string
	// DataDir holds the embedded store (tranche.db) and output files.
	DataDir string
	// FHIRVersion is the FHIR release of the store (dstu2, stu3, r4, r5; or
	// 1.0.2, 3.0.2, 4.0.1, 5.0.0): recorded in a new store, checked against
	// an existing one. Empty: the store's, or for a new one its first
	// import's data's (R4 when that does not tell).
	FHIRVersion string
	// BaseURL is the public FHIR base URL; empty derives it per request.
	BaseURL string
	// TrustProxy honours X-Forwarded-Proto/Host when deriving the base URL.
	// Locally it needs BaseURL: the token endpoint, the assertions'
	// audience and the issuer come from configuration, never from what a
	// request says its host is.
	TrustProxy bool
	// InsecureListen allows plain HTTP on a non-loopback address (behind a
	// TLS-terminating proxy on the same host, say); without it such an
	// address needs TLS in every mode, --open included (R1).
	InsecureListen bool
	// GatewayHeaders says the forwarded headers are set by the deployment,
	// not a client: on AWS handler.HTTP sets them from API Gateway's
	// request context (its domain name), replacing any a client sent, so
	// TrustProxy needs no BaseURL there.
	GatewayHeaders bool
	// LenientHeaders accepts kick-offs without Accept or Prefer:
	// respond-async (TRANCHE_LENIENT_HEADERS, serve --lenient-headers);
	// by default they are 400, as Bulk Data test suites expect.
	LenientHeaders bool
	// Shards is the number of shards per resource type, fixed when the
	// store is created.
	Shards int
	// Demo loads generated demo data into an empty store at start.
	Demo         bool
	DemoPatients int
	// LogFormat is "json" (default, one object per line) or "text".
	LogFormat string
	LogLevel  string
	// PurgeEvery is how often expired jobs and their files are removed,
	// and the watchdog fails the jobs whose workflow died
	// (export.Service.Watchdog, after Export.WatchdogGrace).
	PurgeEvery time.Duration
	Export     export.Config
	Auth       Auth

	// MaxOutputBytes is the local output budget: the most bytes the files
	// of unexpired exports may hold. A kick-off while they hold it is 429
	// with Retry-After, and an export that would cross it fails. 0 is
	// unlimited; AutoOutputBytes (the default) is fsobj.Store.DefaultLimit,
	// the smaller of 50 GiB and half of what export files may take on the
	// data dir's file system at start. Local only: S3 has no limit.
	MaxOutputBytes int64
	// GzipFiles stores local export files gzip-encoded as they are written
	// (TRANCHE_GZIP_FILES, serve --gzip-files), as the S3 store's
	// GzipObjects does on AWS: a client accepting gzip downloads the file
	// as it is on disk (sendfile), others get it decompressed, and the
	// files take about a tenth of the disk and of the output budget, at
	// the cost of compressing during the export. Off by default
	// (docs/benchmarks.md, "Gzip at write time").
	GzipFiles bool
}

// Auth configures SMART Backend Services authorization.
type Auth struct {
	// Open disables authorization entirely (local experiments only).
	Open bool
	// TLSCert and TLSKey serve HTTPS (TLS ≥ 1.2, R1). Without them a server
	// with authorization listens on loopback only.
	TLSCert, TLSKey string
	// RegistrationToken protects POST /register; empty generates one into
	// the data dir on first start.
	RegistrationToken string
	// AllowLoopbackJWKS lets clients register jwks_uri on loopback (local
	// testing; never in a deployment).
	AllowLoopbackJWKS bool
	// MaxConcurrentExports and MaxPollsPerMinute are the quotas of clients
	// without their own; 0 is unlimited.
	MaxConcurrentExports int
	MaxPollsPerMinute    int
	// TokenLifetime is the access-token lifetime (at most 300 s, R104).
	TokenLifetime time.Duration
}

// AutoOutputBytes is the MaxOutputBytes that sizes the budget from the
// disk at start.
const AutoOutputBytes = -1

// Default returns the local defaults.
func Default() Config {
	return Config{
		Addr:         "127.0.0.1:8080",
		DataDir:      ".tranche",
		Shards:       16,
		Demo:         true,
		DemoPatients: 100,
		LogFormat:    "json",
		LogLevel:     "info",
		PurgeEvery:   time.Minute,
		Export:       export.DefaultConfig(),
		Auth: Auth{
			MaxConcurrentExports: 4,
			MaxPollsPerMinute:    600,
			TokenLifetime:        300 * time.Second,
		},
		MaxOutputBytes: AutoOutputBytes,
	}
}

// Validate reports every bad setting at once, so a misconfigured process
// fails at start with one clear message.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: want HOST:PORT", c.Addr))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir must be set"))
	}
	if c.FHIRVersion != "" {
		if _, err := defs.ParseVersion(c.FHIRVersion); err != nil {
			errs = append(errs, fmt.Errorf("FHIR version (TRANCHE_FHIR_VERSION, --fhir-version): %w", err))
		}
	}
	if c.Shards < 1 || c.Shards > 256 {
		errs = append(errs, fmt.Errorf("shards %d: want 1..256", c.Shards))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("log format %q: want json or text", c.LogFormat))
	}
	if c.Export.MaxFileResources < 1 {
		errs = append(errs, fmt.Errorf("max file resources %d: want at least 1", c.Export.MaxFileResources))
	}
	if c.Export.MaxFileBytes < 1024 {
		errs = append(errs, fmt.Errorf("max file bytes %d: want at least 1024", c.Export.MaxFileBytes))
	}
	if (c.Auth.TLSCert == "") != (c.Auth.TLSKey == "") {
		errs = append(errs, errors.New("tls cert and tls key go together"))
	}
	if c.Auth.TokenLifetime <= 0 || c.Auth.TokenLifetime > 300*time.Second {
		errs = append(errs, fmt.Errorf("token lifetime %s: want 1s..300s (SMART: short-lived)", c.Auth.TokenLifetime))
	}
	if c.Auth.TLSCert == "" && !c.InsecureListen {
		if host, _, err := net.SplitHostPort(c.Addr); err == nil && !isLoopback(host) {
			errs = append(errs, fmt.Errorf("addr %q is not loopback: serve TLS (--tls-cert, --tls-key), listen on 127.0.0.1, or say --insecure-listen (plain HTTP beyond this host)", c.Addr))
		}
	}
	if c.BaseURL == "" && ((c.TrustProxy && !c.GatewayHeaders) || c.Auth.TLSCert != "") && !c.Auth.Open {
		errs = append(errs, errors.New("--base-url (TRANCHE_BASE_URL) is required with --trust-proxy or TLS: the token endpoint, the audience of client assertions and the issuer come from it, not from the Host of each request"))
	}
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(c.BaseURL, "/") {
			errs = append(errs, fmt.Errorf("base url %q: want an absolute http(s) URL without a trailing slash, e.g. https://fhir.example.org/bulk", c.BaseURL))
		}
	}
	// An inline Map item costs about 11 history events (more with cursor
	// loops) of an execution's 25,000.
	if c.Export.InlineItems < 0 || c.Export.InlineItems > 2000 {
		errs = append(errs, fmt.Errorf("inline items %d (TRANCHE_INLINE_ITEMS): want 1..2000, or 0 for the default (more items go to a Distributed Map)", c.Export.InlineItems))
	}
	if c.Export.WatchdogGrace != 0 && c.Export.WatchdogGrace < time.Minute { // 0: the default
		errs = append(errs, fmt.Errorf("watchdog grace %s: want at least 1m (TRANCHE_WATCHDOG_GRACE; a job's execution may not have started yet)", c.Export.WatchdogGrace))
	}
	if c.MaxOutputBytes < AutoOutputBytes {
		errs = append(errs, fmt.Errorf("max output bytes %d (TRANCHE_MAX_OUTPUT_BYTES): want a byte count, 0 for unlimited or -1 for the default", c.MaxOutputBytes))
	}
	if c.Export.Retention < time.Minute {
		errs = append(errs, fmt.Errorf("retention %s: want at least 1m", c.Export.Retention))
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// FromEnv overlays TRANCHE_* environment variables on c (the AWS functions
// read only the environment; the local binary reads them under its flags).
func FromEnv(c Config) (Config, error) {
	var errs []error
	str := func(name string, dst *string) {
		if v, ok := os.LookupEnv(name); ok {
			*dst = v
		}
	}
	num := func(name string, dst *int64) {
		if v, ok := os.LookupEnv(name); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not an integer", name, v))
				return
			}
			*dst = n
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v, ok := os.LookupEnv(name); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a duration such as 24h", name, v))
				return
			}
			*dst = d
		}
	}
	str("TRANCHE_ADDR", &c.Addr)
	str("TRANCHE_DATA_DIR", &c.DataDir)
	str("TRANCHE_BASE_URL", &c.BaseURL)
	str("TRANCHE_LOG_FORMAT", &c.LogFormat)
	str("TRANCHE_LOG_LEVEL", &c.LogLevel)
	if v, ok := os.LookupEnv("TRANCHE_GZIP_FILES"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("TRANCHE_GZIP_FILES=%q: not true or false", v))
		}
		c.GzipFiles = b
	}
	if v, ok := os.LookupEnv("TRANCHE_LENIENT_HEADERS"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("TRANCHE_LENIENT_HEADERS=%q: not true or false", v))
		}
		c.LenientHeaders = b
	}
	num("TRANCHE_MAX_FILE_RESOURCES", &c.Export.MaxFileResources)
	pageFiles := int64(c.Export.ManifestPageFiles)
	num("TRANCHE_MANIFEST_PAGE_FILES", &pageFiles)
	c.Export.ManifestPageFiles = int(pageFiles)
	num("TRANCHE_MAX_FILE_BYTES", &c.Export.MaxFileBytes)
	num("TRANCHE_MAX_OUTPUT_BYTES", &c.MaxOutputBytes)
	num("TRANCHE_ATTACHMENT_INLINE_MAX", &c.Export.AttachmentInlineMax)
	dur("TRANCHE_RETENTION", &c.Export.Retention)
	dur("TRANCHE_ITEM_BUDGET", &c.Export.ItemBudget)
	dur("TRANCHE_ITEM_MARGIN", &c.Export.ItemMargin)
	dur("TRANCHE_WATCHDOG_GRACE", &c.Export.WatchdogGrace)
	inline := int64(c.Export.InlineItems)
	num("TRANCHE_INLINE_ITEMS", &inline)
	c.Export.InlineItems = int(inline)
	str("TRANCHE_TLS_CERT", &c.Auth.TLSCert)
	str("TRANCHE_FHIR_VERSION", &c.FHIRVersion)
	str("TRANCHE_TLS_KEY", &c.Auth.TLSKey)
	str("TRANCHE_REGISTRATION_TOKEN", &c.Auth.RegistrationToken)
	return c, errors.Join(errs...)
}
