package api

import (
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/auth"
)

// TestVerifiedTokens: a remembered token is never trusted past its own
// expiry nor longer than verifiedFor, and the cache stays bounded.
func TestVerifiedTokens(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var v verifiedTokens
	short := &auth.Grant{ClientID: "a", Expires: now.Add(10 * time.Second)}
	long := &auth.Grant{ClientID: "b", Expires: now.Add(5 * time.Minute)}
	v.put("short", short, now)
	v.put("long", long, now)
	for _, tc := range []struct {
		tok  string
		at   time.Duration
		want *auth.Grant
	}{
		{"short", 9 * time.Second, short},
		{"short", 10 * time.Second, nil}, // the token itself expired (R116)
		{"long", 29 * time.Second, long},
		{"long", verifiedFor, nil}, // re-verified after verifiedFor
		{"unknown", 0, nil},
	} {
		if got := v.get(tc.tok, now.Add(tc.at)); got != tc.want {
			t.Errorf("get(%q, +%s) = %v, want %v", tc.tok, tc.at, got, tc.want)
		}
	}
	for i := range verifiedTokenN + 10 {
		v.put(string(rune('a'+i%26))+time.Duration(i).String(), long, now)
	}
	if len(v.m) > verifiedTokenN {
		t.Errorf("cache holds %d tokens, want at most %d", len(v.m), verifiedTokenN)
	}
}
