package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/config"
)

// setAWSEnv sets the variables FromAWSEnv requires.
func setAWSEnv(t *testing.T) {
	t.Helper()
	for k, v := range map[string]string{
		"TRANCHE_JOBS_TABLE": "jobs", "TRANCHE_JOB_ITEMS_TABLE": "items", "TRANCHE_CLIENTS_TABLE": "clients",
		"TRANCHE_REPLAY_TABLE": "replay", "TRANCHE_RESOURCES_TABLE": "resources", "TRANCHE_BUCKET": "bucket",
		"TRANCHE_SIGNING_KEY_SECRET": "arn:aws:secretsmanager:us-east-1:123456789012:secret:key",
	} {
		t.Setenv(k, v)
	}
}

func TestFromAWSEnv_FileURLs(t *testing.T) {
	for _, tc := range []struct {
		name, env string // env "" leaves TRANCHE_FILE_URLS unset
		want      string
		wantErr   string
	}{
		{name: "Default", want: config.FileURLsRedirect},
		{name: "Redirect", env: "redirect", want: config.FileURLsRedirect},
		{name: "Presigned", env: "presigned", want: config.FileURLsPresigned},
		{name: "ErrUnknown", env: "signed", wantErr: `TRANCHE_FILE_URLS="signed": want redirect`},
		{name: "ErrCase", env: "Presigned", wantErr: `TRANCHE_FILE_URLS="Presigned"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setAWSEnv(t)
			if tc.env != "" {
				t.Setenv("TRANCHE_FILE_URLS", tc.env)
			}
			_, a, err := config.FromAWSEnv()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("FromAWSEnv() error = %v, want one containing %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromAWSEnv() error = %v", err)
			}
			if a.FileURLs != tc.want {
				t.Errorf("FromAWSEnv() FileURLs = %q, want %q", a.FileURLs, tc.want)
			}
		})
	}
}

func TestFromAWSEnv_WatchdogGrace(t *testing.T) {
	for _, tc := range []struct {
		name, env string // env "" leaves TRANCHE_WATCHDOG_GRACE unset
		want      time.Duration
		wantErr   string
	}{
		{name: "Default", want: 15 * time.Minute},
		{name: "Set", env: "30m", want: 30 * time.Minute},
		{name: "ErrShort", env: "10s", wantErr: "watchdog grace 10s: want at least 1m"},
		{name: "ErrSyntax", env: "soon", wantErr: `TRANCHE_WATCHDOG_GRACE="soon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setAWSEnv(t)
			if tc.env != "" {
				t.Setenv("TRANCHE_WATCHDOG_GRACE", tc.env)
			}
			c, _, err := config.FromAWSEnv()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("FromAWSEnv() error = %v, want one containing %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromAWSEnv() error = %v", err)
			}
			if c.Export.WatchdogGrace != tc.want {
				t.Errorf("FromAWSEnv() WatchdogGrace = %s, want %s", c.Export.WatchdogGrace, tc.want)
			}
		})
	}
}
