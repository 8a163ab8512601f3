package config_test

import (
	"strings"
	"testing"

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
