package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// AWS holds what only the AWS deployment reads: where its tables, bucket,
// state machine and secrets are. template.yaml sets these variables on the
// functions; secrets are given as ARNs, never as values.
type AWS struct {
	// Tables (TRANCHE_*_TABLE).
	JobsTable, JobItemsTable, ClientsTable, ReplayTable, ResourcesTable string
	// Bucket holds exports (ExportsPrefix), spilled resource bodies
	// (BodiesPrefix), files to import (IncomingPrefix) and import reports
	// (ReportsPrefix).
	Bucket                                                     string
	ExportsPrefix, BodiesPrefix, IncomingPrefix, ReportsPrefix string
	// S3PathStyle addresses the bucket in the path (LocalStack, emulators).
	S3PathStyle bool
	// GzipObjects stores output files gzip-compressed with
	// Content-Encoding: gzip.
	GzipObjects bool
	// SpillBytes is the body size above which resources are stored in S3.
	SpillBytes int
	// StateMachineARN is the export state machine; only the functions that
	// start, stop or describe executions have it: Kickoff, Status and Purge
	// (whose watchdog asks whether a job's execution still runs). The state
	// machine refers to the step functions, so they cannot refer back to it.
	StateMachineARN string
	// SigningKeySecret is the ARN of the secret holding the access-token
	// signing key (a private JWK). RegistrationTokenSecret is the ARN of
	// the secret holding the initial access token for POST /register;
	// empty disables registration.
	SigningKeySecret, RegistrationTokenSecret string
	// DownloadURLTTL is the lifetime of presigned download URLs (the spec
	// suggests about five minutes).
	DownloadURLTTL time.Duration
	// FileURLs is what a manifest lists (TRANCHE_FILE_URLS):
	// FileURLsRedirect (the /files route, which checks the token and
	// redirects to a presigned URL) or FileURLsPresigned (presigned S3
	// URLs, minted at every status poll, requiresAccessToken false).
	FileURLs string
}

// The values of TRANCHE_FILE_URLS.
const (
	// FileURLsRedirect lists the server's /files URLs
	// (requiresAccessToken: true): each download brings the bearer token
	// and is redirected to a presigned S3 URL (requirements appendix B,
	// option b).
	FileURLsRedirect = "redirect"
	// FileURLsPresigned lists presigned S3 URLs (requiresAccessToken:
	// false) that expire after DownloadURLTTL; every status poll mints
	// fresh ones (option a, R79).
	FileURLsPresigned = "presigned"
)

// DefaultAWS returns the AWS defaults: the bucket's prefixes and short
// download URLs.
func DefaultAWS() AWS {
	return AWS{
		ExportsPrefix:  "exports/",
		BodiesPrefix:   "bodies/",
		IncomingPrefix: "incoming/",
		ReportsPrefix:  "import-reports/",
		SpillBytes:     64 << 10,
		DownloadURLTTL: 5 * time.Minute,
		FileURLs:       FileURLsRedirect,
	}
}

// FromAWSEnv reads a Lambda function's whole configuration from the
// environment: Default() with the TRANCHE_* variables FromEnv reads, the
// AWS-only ones below, and the settings a local server takes as flags
// (shards, concurrency, quotas, token lifetime). Call it once at cold start
// and fail with its error.
func FromAWSEnv() (Config, AWS, error) {
	c := Default()
	c.Demo, c.PurgeEvery = false, 0
	c.DataDir = os.TempDir() // unused on AWS, but Validate wants one
	c, err := FromEnv(c)
	errs := []error{err}
	a := DefaultAWS()
	e := envReader{errs: &errs}
	e.str("TRANCHE_JOBS_TABLE", &a.JobsTable)
	e.str("TRANCHE_JOB_ITEMS_TABLE", &a.JobItemsTable)
	e.str("TRANCHE_CLIENTS_TABLE", &a.ClientsTable)
	e.str("TRANCHE_REPLAY_TABLE", &a.ReplayTable)
	e.str("TRANCHE_RESOURCES_TABLE", &a.ResourcesTable)
	e.str("TRANCHE_BUCKET", &a.Bucket)
	e.str("TRANCHE_EXPORTS_PREFIX", &a.ExportsPrefix)
	e.str("TRANCHE_BODIES_PREFIX", &a.BodiesPrefix)
	e.str("TRANCHE_INCOMING_PREFIX", &a.IncomingPrefix)
	e.str("TRANCHE_REPORTS_PREFIX", &a.ReportsPrefix)
	e.boolean("TRANCHE_S3_PATH_STYLE", &a.S3PathStyle)
	e.boolean("TRANCHE_GZIP_OBJECTS", &a.GzipObjects)
	e.integer("TRANCHE_SPILL_BYTES", &a.SpillBytes)
	e.str("TRANCHE_STATE_MACHINE_ARN", &a.StateMachineARN)
	e.str("TRANCHE_SIGNING_KEY_SECRET", &a.SigningKeySecret)
	e.str("TRANCHE_REGISTRATION_TOKEN_SECRET", &a.RegistrationTokenSecret)
	e.duration("TRANCHE_DOWNLOAD_URL_TTL", &a.DownloadURLTTL)
	e.str("TRANCHE_FILE_URLS", &a.FileURLs)
	days := 0
	e.integer("TRANCHE_RETENTION_DAYS", &days)
	if days > 0 {
		c.Export.Retention = time.Duration(days) * 24 * time.Hour
	}
	e.integer("TRANCHE_SHARDS", &c.Shards)
	e.integer("TRANCHE_MAX_CONCURRENCY", &c.Export.MaxConcurrency)
	e.integer("TRANCHE_MAX_CONCURRENT_EXPORTS", &c.Auth.MaxConcurrentExports)
	e.integer("TRANCHE_MAX_POLLS_PER_MINUTE", &c.Auth.MaxPollsPerMinute)
	e.duration("TRANCHE_TOKEN_LIFETIME", &c.Auth.TokenLifetime)
	// API Gateway is the proxy, and handler.HTTP sets the forwarded
	// headers from the request context.
	c.TrustProxy, c.GatewayHeaders = true, true
	if err := errors.Join(errs...); err != nil {
		return c, a, err
	}
	return c, a, errors.Join(c.Validate(), a.Validate(c))
}

// Validate reports every bad AWS setting at once.
func (a AWS) Validate(c Config) error {
	var errs []error
	for name, v := range map[string]string{
		"TRANCHE_JOBS_TABLE": a.JobsTable, "TRANCHE_JOB_ITEMS_TABLE": a.JobItemsTable,
		"TRANCHE_CLIENTS_TABLE": a.ClientsTable, "TRANCHE_REPLAY_TABLE": a.ReplayTable,
		"TRANCHE_RESOURCES_TABLE": a.ResourcesTable, "TRANCHE_BUCKET": a.Bucket,
	} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s must be set", name))
		}
	}
	for name, p := range map[string]string{
		"TRANCHE_EXPORTS_PREFIX": a.ExportsPrefix, "TRANCHE_BODIES_PREFIX": a.BodiesPrefix,
		"TRANCHE_INCOMING_PREFIX": a.IncomingPrefix, "TRANCHE_REPORTS_PREFIX": a.ReportsPrefix,
	} {
		if p == "" || !strings.HasSuffix(p, "/") || strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("%s=%q: want a key prefix such as exports/", name, p))
		}
	}
	if a.SpillBytes < 1 || a.SpillBytes > 300<<10 {
		errs = append(errs, fmt.Errorf("TRANCHE_SPILL_BYTES=%d: want 1..307200 (items are at most 400 KB)", a.SpillBytes))
	}
	if a.DownloadURLTTL < time.Second || a.DownloadURLTTL > time.Hour {
		errs = append(errs, fmt.Errorf("TRANCHE_DOWNLOAD_URL_TTL=%s: want 1s..1h (short-lived)", a.DownloadURLTTL))
	}
	if a.FileURLs != FileURLsRedirect && a.FileURLs != FileURLsPresigned {
		errs = append(errs, fmt.Errorf("TRANCHE_FILE_URLS=%q: want %s (manifests list the /files route, which redirects) or %s (manifests list presigned S3 URLs)", a.FileURLs, FileURLsRedirect, FileURLsPresigned))
	}
	if a.GzipObjects && c.Export.MaxFileBytes >= 4<<30 {
		errs = append(errs, fmt.Errorf("TRANCHE_GZIP_OBJECTS with TRANCHE_MAX_FILE_BYTES=%d: gzip files must stay under 4 GiB", c.Export.MaxFileBytes))
	}
	if !c.Auth.Open && a.SigningKeySecret == "" {
		errs = append(errs, errors.New("TRANCHE_SIGNING_KEY_SECRET must name the secret holding the token signing key"))
	}
	return errors.Join(errs...)
}

// envReader reads typed variables, collecting errors.
type envReader struct{ errs *[]error }

func (e envReader) str(name string, dst *string) {
	if v, ok := os.LookupEnv(name); ok {
		*dst = v
	}
}

func (e envReader) boolean(name string, dst *bool) {
	if v, ok := os.LookupEnv(name); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			*e.errs = append(*e.errs, fmt.Errorf("%s=%q: not true or false", name, v))
			return
		}
		*dst = b
	}
}

func (e envReader) integer(name string, dst *int) {
	if v, ok := os.LookupEnv(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			*e.errs = append(*e.errs, fmt.Errorf("%s=%q: not an integer", name, v))
			return
		}
		*dst = n
	}
}

func (e envReader) duration(name string, dst *time.Duration) {
	if v, ok := os.LookupEnv(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			*e.errs = append(*e.errs, fmt.Errorf("%s=%q: not a duration such as 5m", name, v))
			return
		}
		*dst = d
	}
}
