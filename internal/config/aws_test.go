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

// envCase is one value of an AWS-only variable: unset when env is "".
type envCase[T comparable] struct {
	name, env string
	want      T
	wantErr   string // a part of the error FromAWSEnv must return
}

// testAWSEnv sets variable to each case's value over a valid AWS
// environment and checks what FromAWSEnv reads (get) or its error.
func testAWSEnv[T comparable](t *testing.T, variable string, get func(config.Config, config.AWS) T, cases []envCase[T]) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setAWSEnv(t)
			if tc.env != "" {
				t.Setenv(variable, tc.env)
			}
			c, a, err := config.FromAWSEnv()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("FromAWSEnv() with %s=%q: error = %v, want one containing %s", variable, tc.env, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromAWSEnv() with %s=%q: error = %v", variable, tc.env, err)
			}
			if got := get(c, a); got != tc.want {
				t.Errorf("FromAWSEnv() with %s=%q read %v, want %v", variable, tc.env, got, tc.want)
			}
		})
	}
}

func TestFromAWSEnv_FileURLs(t *testing.T) {
	testAWSEnv(t, "TRANCHE_FILE_URLS", func(_ config.Config, a config.AWS) string { return a.FileURLs }, []envCase[string]{
		{name: "Default", want: config.FileURLsRedirect},
		{name: "Redirect", env: "redirect", want: config.FileURLsRedirect},
		{name: "Presigned", env: "presigned", want: config.FileURLsPresigned},
		{name: "ErrUnknown", env: "signed", wantErr: `TRANCHE_FILE_URLS="signed": want redirect`},
		{name: "ErrCase", env: "Presigned", wantErr: `TRANCHE_FILE_URLS="Presigned"`},
	})
}

func TestFromAWSEnv_WatchdogGrace(t *testing.T) {
	testAWSEnv(t, "TRANCHE_WATCHDOG_GRACE", func(c config.Config, _ config.AWS) time.Duration { return c.Export.WatchdogGrace }, []envCase[time.Duration]{
		{name: "Default", want: 15 * time.Minute},
		{name: "Set", env: "30m", want: 30 * time.Minute},
		{name: "ErrShort", env: "10s", wantErr: "watchdog grace 10s: want at least 1m"},
		{name: "ErrSyntax", env: "soon", wantErr: `TRANCHE_WATCHDOG_GRACE="soon"`},
	})
}

func TestFromAWSEnv_InlineItems(t *testing.T) {
	testAWSEnv(t, "TRANCHE_INLINE_ITEMS", func(c config.Config, _ config.AWS) int { return c.Export.InlineItems }, []envCase[int]{
		{name: "Default", want: 1000},
		{name: "Set", env: "500", want: 500},
		{name: "ErrTooMany", env: "5000", wantErr: "TRANCHE_INLINE_ITEMS"},
		{name: "ErrNegative", env: "-1", wantErr: "TRANCHE_INLINE_ITEMS"},
		{name: "ErrSyntax", env: "many", wantErr: "TRANCHE_INLINE_ITEMS"},
	})
}

func TestFromAWSEnv_AttachmentInlineMax(t *testing.T) {
	testAWSEnv(t, "TRANCHE_ATTACHMENT_INLINE_MAX", func(c config.Config, _ config.AWS) int64 { return c.Export.AttachmentInlineMax }, []envCase[int64]{
		{name: "Default", want: 64 << 10},
		{name: "Set", env: "1048576", want: 1 << 20},
		{name: "Never", env: "-1", want: -1},
		{name: "ErrSyntax", env: "big", wantErr: "TRANCHE_ATTACHMENT_INLINE_MAX"},
	})
}
